"""The eval runner: scoring functions on hand-made predictions, then `rag eval` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.evals import dataset, runner, runs, scoring
from rag.settings import Settings

ANI = "corpus/ani-2026-critical-minerals-ministerial-project-vault.txt"
FORGE = "corpus/us-launches-global-critical-minerals-initiative-forge.txt"
FOX = "corpus/foxbusiness-us-japan-critical-minerals-rare-earths-deal.txt"
GREEN = "corpus/greenwatch-2024-10-04-us-india-critical-minerals-mou.txt"


def question(**fields) -> dataset.Question:
    return dataset.parse_question({"id": "q", "question": "?", **fields})


def citation(n: int, source: str, text: str, quote: str | None = None) -> dict:
    return {"n": n, "source": source, "text": text, "quote": quote if quote is not None else text}


def prediction(answer: str, citations: list[dict] | None = None, abstained: bool = False, ms: float = 10.0):
    return {"answer": answer, "abstained": abstained, "citations": citations or [], "timings": {"total_ms": ms}}


# -- answers -----------------------------------------------------------------------------------


def test_every_group_must_match_and_any_alternative_will_do():
    q = question(answers=[["10 billion", r"\$10 ?bn"], ["loan"]])
    assert scoring.is_correct(q, "EXIM approved a $10bn LOAN [1]", False) == (True, [True, True])
    assert scoring.is_correct(q, "EXIM approved USD 10 billion [1]", False) == (False, [True, False])
    assert scoring.is_correct(q, "a grant", False) == (False, [False, False])


def test_markers_are_stripped_but_the_raw_text_counts_too():
    assert scoring.group_matches([["Washington DC"]], "held in Washington [1] DC") == [True]
    assert scoring.group_matches([[r"\[2\]"]], "see [2]") == [True]


def test_an_abstention_on_an_answerable_question_is_wrong_even_if_the_text_matches():
    q = question(answers=[["Rubio"]])
    assert scoring.is_correct(q, "Not in these articles. The closest passage mentions Rubio.", True)[0] is False


def test_abstain_questions_are_correct_when_declined():
    q = question(abstain=True)
    assert scoring.is_correct(q, "Not in these articles.", True) == (True, [])
    assert scoring.is_correct(q, "Some answer [1]", False) == (False, [])


def test_abstention_precision_and_accuracy_are_reported_separately():
    answerable = question(answers=[["Rubio"]], gold_sources=[ANI])
    declinable = question(abstain=True)
    scores = [
        scoring.score_prediction(answerable, prediction("Rubio hosted it [1]", [citation(1, ANI, "Rubio hosted it")])),
        scoring.score_prediction(answerable, prediction("Rubio hosted it [1]", [citation(1, ANI, "Rubio hosted it")])),
        scoring.score_prediction(answerable, prediction("Vance hosted it [1]", [citation(1, ANI, "Vance hosted it")])),
        scoring.score_prediction(answerable, prediction("Not in these articles.", abstained=True)),
        scoring.score_prediction(declinable, prediction("Not in these articles.", abstained=True)),
        scoring.score_prediction(declinable, prediction("A guess [1]", [citation(1, FOX, "A guess")])),
    ]
    m = scoring.aggregate(scores)
    assert m["answer_accuracy"] == 0.5  # 2 correct of 4 answerable
    assert m["answer_precision"] == pytest.approx(2 / 3, abs=1e-4)  # 2 correct of 3 answered
    assert m["answer_rate"] == 0.75
    assert m["abstention_accuracy"] == 0.5  # 1 of 2 declinable declined
    assert m["abstention_recall"] == 0.5
    assert m["abstention_precision"] == 0.5  # 1 of the 2 abstentions was on a declinable question
    assert m["overall_accuracy"] == 0.5  # (2 + 1) / 6


def test_coverage_at_precision_keeps_the_most_confident_answers():
    answerable = question(answers=[["Rubio"]], gold_sources=[ANI])
    declinable = question(abstain=True)

    def shown(q, text, confidence, abstained=False):
        return scoring.score_prediction(q, {**prediction(text, abstained=abstained), "confidence": confidence})

    scores = [
        shown(answerable, "Rubio", 0.9), shown(answerable, "Rubio", 0.8), shown(declinable, "A guess", 0.7),
        shown(answerable, "Rubio", 0.6), shown(answerable, "Not in these articles.", 0.5, abstained=True),
    ]
    assert scoring.coverage_at_precision(scores, 0.9) == 0.4  # the two surest answers, of 5 questions
    assert scoring.coverage_at_precision(scores, 0.75) == 0.8  # all four: 3 of 4 right
    scores[2].shown_confidence = 0.8  # tied with a right answer: both kept or neither
    assert scoring.coverage_at_precision(scores, 0.9) == 0.2


# -- retrieval ---------------------------------------------------------------------------------


def test_recall_and_mrr_with_one_gold_source():
    recall, hit, rr = scoring.retrieval_scores([ANI], [FOX, FOX, ANI, GREEN, ANI])
    assert recall == {1: 0.0, 3: 1.0, 5: 1.0}
    assert hit == {1: False, 3: True, 5: True}
    assert rr == pytest.approx(1 / 3)


def test_recall_and_hit_with_two_gold_sources():
    recall, hit, rr = scoring.retrieval_scores([ANI, FORGE], [ANI, FOX, GREEN, FORGE, FOX])
    assert recall == {1: 0.5, 3: 0.5, 5: 1.0}
    assert hit == {1: True, 3: True, 5: True}  # either source suffices for the any-gold hit rate
    assert rr == 1.0


def test_no_gold_source_retrieved_scores_zero():
    recall, hit, rr = scoring.retrieval_scores([GREEN], [ANI, FOX])
    assert recall[5] == 0.0 and not hit[5] and rr == 0.0


def test_sources_match_by_file_name_whatever_the_corpus_folder():
    assert scoring.same_source("corpus/a.txt", "/tmp/project/articles/a.txt")
    assert not scoring.same_source("corpus/a.txt", "corpus/b.txt")


def test_recall_means_over_questions_and_context_recall():
    q = question(answers=[["x"]], gold_sources=[ANI, FORGE])
    score = scoring.score_prediction(q, prediction("x [1]", [citation(1, ANI, "x")]), [ANI, FOX], [ANI, FOX, FORGE])
    assert score.recall[1] == 0.5 and score.context_recall == 1.0
    m = scoring.aggregate([score, scoring.score_prediction(q, prediction("x"), [FOX], [FOX])])
    assert m["recall@1"] == 0.25
    assert m["hit@1"] == 0.5
    assert m["mrr"] == 0.5
    assert m["context_recall"] == 0.5


# -- citations and numbers ---------------------------------------------------------------------


def test_citation_precision_and_hit_rate():
    q = question(answers=[["Korea"]], gold_sources=[ANI])
    both = prediction("Korea chairs it [1] [2]", [citation(1, ANI, "Korea chairs"), citation(2, FOX, "Korea")])
    off = prediction("Korea chairs it [1]", [citation(1, FOX, "Korea chairs")])
    declined = prediction("Not in these articles.", abstained=True)
    m = scoring.aggregate([scoring.score_prediction(q, p) for p in (both, off, declined)])
    assert m["citations"] == 3
    assert m["citation_precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["citation_hit_rate"] == 0.5  # of the two answered questions, one cites a gold source


def test_the_quote_hit_rate_asks_whether_the_highlighted_sentences_hold_a_right_answer():
    q = question(answers=[["Lakhani"]], gold_sources=[ANI])
    text = "The KSE rose 112%. KSE chairman Yaseen Lakhani dismissed it."
    holding = prediction("Lakhani dismissed it [1]", [citation(1, ANI, text, quote="KSE chairman Yaseen Lakhani dismissed it.")])
    beside = prediction("Lakhani dismissed it [1]", [citation(1, ANI, text, quote="The KSE rose 112%.")])
    wrong = prediction("Nobody dismissed it [1]", [citation(1, ANI, text, quote="The KSE rose 112%.")])
    scores = [scoring.score_prediction(q, p) for p in (holding, beside, wrong)]
    assert [s.quote_holds_answer for s in scores] == [True, False, None]
    assert scoring.aggregate(scores)["quote_hit_rate"] == 0.5


def test_fabricated_numbers_are_numbers_in_no_cited_passage():
    cited = ["EXIM approved a Direct Loan of up to USD 10 billion.", "It drew 54 countries."]
    assert scoring.unsupported_numbers("A $10bn loan [1] for 54 countries [2].", cited) == []
    assert scoring.unsupported_numbers("A loan of USD 12 billion [1]", cited) == ["12", "12,000,000,000"]
    assert scoring.unsupported_numbers("Forty ministers came [7]", cited) == ["40"]  # the [7] marker is no number
    assert scoring.unsupported_numbers("One of the 54 countries was Japan. [2]", cited) == []  # a pronoun
    assert scoring.unsupported_numbers("One minister came. [2]", cited) == ["1"]


def test_a_prediction_with_a_fabricated_number_is_counted_once():
    q = question(answers=[["loan"]], gold_sources=[ANI])
    fabricated = prediction("A loan of USD 12 billion and 3 banks [1]", [citation(1, ANI, "A loan of USD 10 billion")])
    honest = prediction("A loan of USD 10 billion [1]", [citation(1, ANI, "A loan of USD 10 billion")])
    scores = [scoring.score_prediction(q, p) for p in (fabricated, honest)]
    assert scores[0].fabricated_numbers and not scores[1].fabricated_numbers
    assert scoring.aggregate(scores)["fabricated_number_answers"] == 1


def test_lexical_support_of_each_claim():
    cites = [citation(1, ANI, "EXIM approved a loan of USD 10 billion for Project Vault.")]
    supports = scoring.claim_support("EXIM approved a USD 10 billion loan. [1] Japan agreed too. [2]", cites)
    assert [s.supported for s in supports] == [True, False]  # [2] names no known citation
    weak = scoring.claim_support("Korea will chair FORGE until 2027. [1]", cites)[0]
    assert weak.overlap < scoring.SUPPORT_MIN_OVERLAP and not weak.numbers_ok and not weak.supported


# -- aggregates --------------------------------------------------------------------------------


def test_percentiles_interpolate_like_numpy():
    assert scoring.percentile([4, 1, 3, 2], 50) == 2.5
    assert scoring.percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert scoring.percentile([7.0], 95) == 7.0
    assert scoring.percentile([], 50) is None


def test_breakdown_by_type_keeps_the_known_order():
    scores = [
        scoring.score_prediction(question(type="unanswerable", abstain=True), prediction("", abstained=True)),
        scoring.score_prediction(question(type="factoid", answers=[["a"]]), prediction("a")),
    ]
    assert list(scoring.metrics_by_type(scores)) == ["factoid", "unanswerable"]


# -- the dataset -------------------------------------------------------------------------------


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_a_line_with_only_id_and_question_is_answered_and_timed_but_not_scored(tmp_path):
    [q] = dataset.load_dataset(write_lines(tmp_path / "d.jsonl", [{"id": "x1", "question": "What is FORGE?"}]))
    assert not q.scored and not q.retrieval_scored and q.type == dataset.UNTYPED
    score = scoring.score_prediction(q, prediction("FORGE is a forum [1]", [citation(1, ANI, "FORGE is a forum")], ms=42))
    assert score.correct is None
    m = scoring.aggregate([score])
    assert m["unscored"] == 1 and m["answer_accuracy"] is None and m["abstention_accuracy"] is None
    assert m["latency_ms"]["p50"] == 42


def test_an_unscored_line_goes_through_the_runner(tmp_path):
    from rag.answer.result import Answer
    from rag.assistant import Final, Sources

    class FakeAssistant:
        class retriever:  # noqa: N801 - stands in for the attribute
            @staticmethod
            def refresh():
                return None

        def stream(self, text):
            yield Sources([], text)
            yield Final(Answer(text, "An answer.", False, [], "extractive", {"total_ms": 5.0}))

        def search(self, text, k=None):
            raise AssertionError("no gold sources: nothing to search")

    questions = [dataset.Question("x1", "What is FORGE?")]
    result = runner.evaluate(Settings(), questions, "fake", assistant=FakeAssistant())
    [row] = result.predictions
    assert row["id"] == "x1" and row["correct"] is None and row["timings"]["total_ms"] == 5.0
    assert result.metrics["overall"]["unscored"] == 1
    assert result.metrics["overall"]["latency_ms"]["p50"] == 5.0


def test_an_error_on_one_question_is_recorded_and_scored_wrong():
    class Broken:
        def stream(self, text):
            raise RuntimeError("boom")
            yield  # pragma: no cover

        def search(self, text, k=None):
            raise RuntimeError("boom")

    q = question(answers=[["x"]], gold_sources=[ANI])
    pred, ranked, _ = runner.predict(Broken(), q)
    score = scoring.score_prediction(q, pred, ranked)
    assert "boom" in pred["error"] and score.correct is False and score.recall[5] == 0.0


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": "a"}], "'question' is required"),
        ([{"id": "a", "question": "?"}, {"id": "a", "question": "!"}], "duplicate id"),
        ([{"id": "a", "question": "?", "answers": [["("]]}], "line 1"),
        (["not json"], "line 1"),
        ([{"id": "a", "question": "?", "answers": [["x"]], "abstain": True}], "cannot also list answers"),
    ],
)
def test_bad_dataset_lines_are_reported_with_their_line(tmp_path, rows, message):
    with pytest.raises(dataset.DatasetError, match=message):
        dataset.load_dataset(write_lines(tmp_path / "d.jsonl", rows))


def test_limit_and_blank_lines(tmp_path):
    rows = [{"id": f"q{i}", "question": "?"} for i in range(5)]
    path = write_lines(tmp_path / "d.jsonl", [rows[0], "", *rows[1:]])
    assert [q.id for q in dataset.load_dataset(path, limit=2)] == ["q0", "q1"]


# -- presets -----------------------------------------------------------------------------------


def test_presets_that_cut_chunks_get_their_own_index_and_unconfigured_backends_are_skipped(tmp_path):
    base = Settings(corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index", openai_base_url=None)
    plans = {p.name: p for p in runs.plan_presets(["bm25", "chunk400", "openai", "nope", "bm25"], base, tmp_path)}
    assert list(plans) == ["bm25", "chunk400", "openai", "nope"]
    assert plans["bm25"].settings.index_dir == base.index_dir and not plans["bm25"].needs_index
    assert plans["chunk400"].settings.index_dir == tmp_path / "indexes" / "chunk400"
    assert plans["chunk400"].settings.chunk_chars == 400 and plans["chunk400"].needs_index
    assert plans["chunk400"].settings.corpus_dir == base.corpus_dir
    assert plans["openai"].settings is None and "RAG_OPENAI_BASE_URL" in plans["openai"].skipped
    assert "unknown preset" in plans["nope"].skipped


# -- end to end --------------------------------------------------------------------------------

SMALL = [
    {"id": "e1", "question": "Who hosted the 2026 Critical Minerals Ministerial?", "type": "factoid",
     "answers": [["Rubio"]], "gold_sources": [ANI, FORGE], "abstain": False},
    {"id": "e2", "question": "How many countries were represented at the 2026 Critical Minerals Ministerial?",
     "type": "numeric", "answers": [[r"\b54\b"]], "gold_sources": [ANI, FORGE], "abstain": False},
    {"id": "e3", "question": "What were global cobalt prices in 2023?", "type": "unanswerable", "answers": [],
     "gold_sources": [], "abstain": True},
    {"id": "e4", "question": "In which building was the US-Japan critical minerals deal signed?", "type": "factoid",
     "answers": [["Akasaka"]], "gold_sources": [FOX], "abstain": False},
    {"id": "e5", "question": "What is Project Vault?"},
]


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    return write_lines(tmp_path_factory.mktemp("evalset") / "small.jsonl", SMALL)


def eval_args(dataset: Path, out: Path, settings) -> list[str]:
    return ["eval", "--dataset", str(dataset), "--out", str(out),
            "--corpus-dir", str(settings.corpus_dir), "--index-dir", str(settings.index_dir)]


def test_rag_eval_writes_predictions_metrics_report_and_plot(corpus_settings, small_dataset, tmp_path, capsys):
    from rag.cli import main

    out = tmp_path / "run"
    assert main(eval_args(small_dataset, out, corpus_settings)) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [q["id"] for q in SMALL]
    for row in rows:
        assert {"question", "answer", "abstained", "citations", "backend", "timings"} <= set(row)
        assert row["timings"]["total_ms"] > 0
    assert rows[-1]["correct"] is None  # e5 has no gold fields
    metrics = json.loads((out / "metrics.json").read_text())
    overall = metrics["overall"]
    assert overall["questions"] == 5 and overall["answerable"] == 3 and overall["unscored"] == 1
    assert overall["retrieval_questions"] == 3 and 0 <= overall["recall@5"] <= 1
    assert overall["hit@5"] == 1.0  # these gold articles are easy to find
    assert set(metrics["by_type"]) == {"factoid", "numeric", "unanswerable", "untyped"}
    assert "not entailment" in overall["lexical_support"]["note"]
    report = (out / "report.md").read_text()
    assert "## By type" in report and "## Misses" in report and "metrics.png" in report
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "ALL" in printed and "factoid" in printed


def test_rag_eval_compare_puts_each_preset_in_one_table(corpus_settings, small_dataset, tmp_path):
    from rag.cli import main

    out = tmp_path / "compare"
    assert main([*eval_args(small_dataset, out, corpus_settings), "--compare", "hybrid", "bm25", "--limit", "3"]) == 0
    table = json.loads((out / "compare.json").read_text())
    assert [row["preset"] for row in table["presets"]] == ["hybrid", "bm25"]
    assert table["questions"] == 3
    markdown = (out / "compare.md").read_text()
    assert "| `hybrid` |" in markdown and "| `bm25` |" in markdown
    assert (out / "compare.png").stat().st_size > 0
    assert (out / "presets" / "bm25" / "metrics.json").exists()
    assert json.loads((out / "metrics.json").read_text())["overall"]["questions"] == 3
