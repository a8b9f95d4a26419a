"""Eval suites: the SQuAD v2 import, scoring by gold span, and several suites reported side by side."""

from __future__ import annotations

import json
import shutil

import pytest

from rag.evals import squad
from rag.evals.dataset import Question, parse_question
from rag.evals.runs import run_eval, run_suites
from rag.evals.scoring import is_correct, same_source
from tests.conftest import CORPUS, PROJECT_ROOT

TINY_SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Harbour_Wind_Farm",
            "paragraphs": [
                {
                    "context": "The Harbour wind farm was opened in 2019 by the port authority. "
                    "Its forty turbines produce 320 megawatts, enough for 250,000 homes.",
                    "qas": [
                        {
                            "id": "a1",
                            "question": "How many megawatts do the Harbour wind farm turbines produce?",
                            "answers": [{"text": "320 megawatts", "answer_start": 99}, {"text": "320", "answer_start": 99}],
                            "is_impossible": False,
                        },
                        {
                            "id": "a2",
                            "question": "How many turbines does the Harbour wind farm have?",
                            "answers": [{"text": "forty", "answer_start": 68}],
                            "is_impossible": False,
                        },
                        {
                            "id": "u1",
                            "question": "Who paid for the Harbour wind farm's turbines?",
                            "answers": [],
                            "plausible_answers": [{"text": "the port authority", "answer_start": 44}],
                            "is_impossible": True,
                        },
                    ],
                }
            ],
        }
    ],
}


def write_squad(path, data=TINY_SQUAD):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_squad_normalisation_follows_the_official_script():
    assert squad.normalize_answer("The  Port-Authority, (of) A city!") == "portauthority of city"
    assert squad.contains_span("It was opened by the port authority in 2019.", ["Port Authority"])
    assert not squad.contains_span("It was opened by the port authorities.", ["port authority"])
    assert not squad.contains_span("anything", ["", "the"])  # spans that normalise to nothing match nothing


def test_a_squad_file_is_told_from_a_json_lines_dataset(tmp_path):
    assert squad.is_squad(write_squad(tmp_path / "s.json"))
    lines = tmp_path / "q.jsonl"
    lines.write_text('{"id": "q1", "question": "Why?"}\n{"id": "q2", "question": "How?"}\n')
    assert not squad.is_squad(lines)
    assert not squad.is_squad(tmp_path / "missing.json")


def test_squad_questions_become_dataset_records():
    records = squad.questions(TINY_SQUAD, "corpus")
    by_id = {r["id"]: r for r in records}
    assert by_id["a1"]["spans"] == ["320 megawatts", "320"]
    assert by_id["a1"]["gold_sources"] == ["corpus/harbour-wind-farm.txt"] and not by_id["a1"]["abstain"]
    assert by_id["u1"]["abstain"] and by_id["u1"]["spans"] == [] and by_id["u1"]["type"] == "unanswerable"
    question = parse_question(by_id["a1"])
    assert question.answerable and question.spans


def test_a_span_question_is_right_only_when_the_answer_contains_a_gold_span():
    question = Question("a1", "How many megawatts?", spans=["320 megawatts"])
    assert is_correct(question, "Its forty turbines produce 320 megawatts [1].", False)[0]
    assert not is_correct(question, "Its forty turbines produce 320 MW [1].", False)[0]
    assert not is_correct(question, "Its forty turbines produce 320 megawatts [1].", True)[0]


def test_squad_articles_become_corpus_files_rewritten_only_when_changed(tmp_path):
    squad.write_corpus(TINY_SQUAD, tmp_path)
    article = tmp_path / "harbour-wind-farm.txt"
    assert article.read_text().startswith("Harbour Wind Farm\n\nThe Harbour wind farm was opened")
    stamp = article.stat().st_mtime_ns
    squad.write_corpus(TINY_SQUAD, tmp_path)
    assert article.stat().st_mtime_ns == stamp


def test_sources_in_different_sections_with_the_same_file_name_are_different():
    assert same_source("bbc/business/001.txt", "bbc/business/001.txt")
    assert not same_source("bbc/business/001.txt", "bbc/sport/001.txt")
    assert same_source("corpus/a.txt", "/tmp/copy/corpus/a.txt")
    assert same_source("corpus/a.txt", "elsewhere/a.txt")


def test_rag_eval_scores_a_squad_file_against_its_own_articles(corpus_settings, tmp_path):
    dataset = write_squad(tmp_path / "tiny-squad.json")
    out = tmp_path / "run"
    assert run_eval(corpus_settings, dataset, out) == 0
    metrics = json.loads((out / "metrics.json").read_text())["overall"]
    assert metrics["questions"] == 3 and metrics["answerable"] == 2 and metrics["should_abstain"] == 1
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    cited = {c["source"] for p in predictions for c in p["citations"]}
    assert cited <= {"corpus/harbour-wind-farm.txt"}, "answers come from the SQuAD article, not the configured corpus"
    assert metrics["recall@1"] == 1.0


@pytest.fixture
def two_suites(tmp_path):
    """A suites file naming a copy of the bundled corpus with a few of its questions, and a SQuAD file."""
    evals = tmp_path / "evals"
    evals.mkdir()
    shutil.copytree(CORPUS, tmp_path / "corpus")
    questions = (PROJECT_ROOT / "evals" / "questions.jsonl").read_text().splitlines()
    (evals / "few.jsonl").write_text("\n".join(questions[:6] + questions[-4:]) + "\n")
    write_squad(evals / "tiny-squad.json")
    entries = {
        "news": {"dataset": "evals/few.jsonl", "corpus": "corpus"},
        "tiny": {"dataset": "evals/tiny-squad.json"},
        "absent": {"dataset": "evals/nothing.jsonl", "corpus": "nowhere"},
        "absent-squad": {"dataset": "evals/no-squad.json"},
    }
    (evals / "suites.json").write_text(json.dumps(entries))
    return evals / "suites.json"


def test_suites_are_reported_side_by_side_each_against_its_own_index(two_suites, corpus_settings, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_suites(corpus_settings, ["all"], out, suites_file=two_suites) == 0
    summary = json.loads((out / "suites.json").read_text())
    assert list(summary) == ["news", "tiny"], "a suite whose corpus is not here is skipped"
    assert summary["news"]["questions"] == 10 and summary["tiny"]["questions"] == 3
    for name in ("news", "tiny"):
        assert (out / name / "report.md").exists() and (out / name / "metrics.json").exists()
        assert summary[name]["risk_coverage"], "every suite has a risk-coverage curve"
        coverages = [point[0] for point in summary[name]["risk_coverage"]]
        assert coverages == sorted(coverages) and coverages[-1] <= 1.0
    assert (two_suites.parent / ".cache" / "news" / "index" / "manifest.json").exists()
    assert (two_suites.parent / ".cache" / "tiny" / "corpus" / "harbour-wind-farm.txt").exists()
    table = (out / "suites.md").read_text()
    assert "| metric | news | tiny |" in table and "answered precision" in table
    assert (out / "suites.png").stat().st_size > 10_000
    skipped = capsys.readouterr().err
    assert "skipping suite absent: its dataset" in skipped
    assert "skipping suite absent-squad: its dataset" in skipped


def test_an_unknown_suite_is_a_clear_error(two_suites, corpus_settings, tmp_path):
    from rag.evals.suites import SuiteError

    with pytest.raises(SuiteError, match="unknown suite nope; choose from news, tiny, absent, absent-squad or all"):
        run_suites(corpus_settings, ["nope"], tmp_path / "run", suites_file=two_suites)


@pytest.mark.llm
def test_one_command_sets_both_backends_side_by_side_on_every_suite(two_suites, corpus_settings, llm_server, tmp_path):
    settings = corpus_settings.with_overrides(
        llm="extractive", openai_base_url=llm_server.base_url, openai_model="gemma", llm_max_tokens=48
    )
    out = tmp_path / "run"
    assert run_suites(settings, ["all"], out, compare=["extractive", "openai"], limit=2, suites_file=two_suites) == 0
    compared = json.loads((out / "compare.json").read_text())
    assert list(compared) == ["news", "tiny"]
    for rows in compared.values():
        extractive, model = rows  # the run's own settings are the extractive preset's: one row
        assert (extractive["preset"], model["preset"]) == ("extractive", "openai")
        assert model["settings"]["llm"] == "openai" and model["settings"]["llm_check_answerable"] is True
        assert model["latency_p50_ms"] > extractive["latency_p50_ms"]  # a model writing, not rules
        assert model["first_token_p50_ms"] is not None and model["fabricated_number_answers"] == 0
    table = (out / "compare.md").read_text()
    assert "| news | openai |" in table and "| tiny | extractive |" in table and "first token p50 ms" in table
