"""How a trained reader would choose and decline, measured on every eval suite beside today's answerer.

    python evals/reader_check.py --reader DIR [--suite NAME ...] [--candidates N] [--answer] [--out FILE]

For each question of each suite, the same retrieval and the same sentences the answerer ranks are
read by the reader (rag/reader, trained by `rag train-reader`): the top N sentences by cosine
similarity to the question, the plain way to shortlist. Per suite it reports:
- how often the single best sentence answers the question when chosen by the reader, by the
  answerer's own ranking, by cosine similarity alone, and by the reader's and the answerer's
  rankings fused (reciprocal rank fusion, k = 60 as its authors set it: nothing fitted);
- how well the reader's best logit tells right candidates from wrong ones (AUC), beside the
  answerer's confidence on its own candidate, and how well the reader's logit on that same
  candidate does;
- what answering only above a reader logit would give (answer accuracy, answered precision,
  abstention) at a few cuts.
With --answer, each suite is also answered whole twice, with the answerer's ranking and with the
reader's fused into it (the answerer composing, scoring and declining as usual), and the eval's
figures are reported side by side. With --out, every question's row is written too, for analyses
the summary does not make.
The suites are test sets: nothing here is fitted on a suite and measured on it. The one fit, of the
reader's logit beside the answerer's confidence (when several suites are checked), is made on the
other suites and measured on the one left out, as `rag calibrate` reports its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from rag.assistant import Assistant, Final
from rag.evals.runner import evaluate
from rag.evals.scoring import is_correct
from rag.evals.suites import SUITES_FILE, pick_suites
from rag.ingest.chunking import split_sentences
from rag.reader.model import Reader, reading_text
from rag.reader.training import auc
from rag.settings import Settings

LOGIT_CUTS = (-2.0, -1.0, 0.0, 1.0)


def read_question(assistant: Assistant, reader: Reader, question, candidates: int) -> dict:
    """One question: the answerer's own result and what the reader makes of the same sentences."""
    final = next(e for e in assistant.stream(question.question) if isinstance(e, Final))
    row = {"answerable": question.answerable, "should_abstain": question.abstain, "hard": bool(final.decision.hard)}
    if final.decision.hard:
        return row
    searched = final.answer.searched or final.answer.question
    retrieval = assistant.retriever.with_neighbours(assistant.retriever.search(searched))
    ranked = assistant.ranker.rank(searched, retrieval)
    if not ranked:
        return row | {"hard": True}
    shortlist, logits = read_shortlist(reader, searched, ranked, retrieval, candidates)
    best = shortlist[int(np.argmax(logits))]
    fused = _fused_best(shortlist, logits, ranked)

    def right(text: str) -> bool:
        return bool(question.answerable and is_correct(question, text, False)[0])

    own = " ".join(s.claim or s.text for s in final.decision.sentences)
    return row | {
        "reader_logit": float(logits.max()),
        "reader_logit_on_answer": float(reader.logits(searched, [own])[0]) if own else None,
        "reader_right": right(best.text),
        "ranking_right": right(ranked[0].text),
        "fused_right": right(fused.text),
        "cosine_right": right(shortlist[0].text),
        "answerer_right": right(own),
        "answerer_confidence": final.decision.confidence,
    }


def read_shortlist(reader: Reader, question: str, ranked, retrieval, candidates: int):
    """The `candidates` sentences closest to the question by cosine, and the reader's logit for each."""
    shortlist = sorted(ranked, key=lambda s: -s.similarity)[:candidates]
    return shortlist, reader.logits(question, [as_read(reader, s, retrieval.passages[s.passage]) for s in shortlist])


RRF_K = 60


def _fused_best(shortlist, logits, ranked):
    """The sentence whose two ranks, the reader's and the answerer's, together rank it highest."""
    return _fused_order(shortlist, logits, ranked)[0]


def _fused_order(shortlist, logits, ranked):
    """`ranked` in the order of the reader's and the answerer's ranks fused; a sentence the
    reader did not read has only the answerer's."""
    reader_rank = {id(shortlist[i]): r for r, i in enumerate(np.argsort(-np.asarray(logits), kind="stable"))}
    answerer_rank = {id(s): r for r, s in enumerate(ranked)}

    def fused(sentence) -> float:
        by_reader = reader_rank.get(id(sentence))
        return 1 / (RRF_K + answerer_rank[id(sentence)]) + (0 if by_reader is None else 1 / (RRF_K + by_reader))

    return sorted(ranked, key=fused, reverse=True)


class FusedRanker:
    """The answerer's sentence ranking with the reader's fused in, for answering a whole suite
    with it (--answer): the answerer then composes, scores and declines as it does today."""

    def __init__(self, ranker, reader: Reader, candidates: int):
        self.ranker, self.reader, self.candidates = ranker, reader, candidates

    def rank(self, question: str, retrieval):
        ranked = self.ranker.rank(question, retrieval)
        if len(ranked) < 2:
            return ranked
        return _fused_order(*read_shortlist(self.reader, question, ranked, retrieval, self.candidates), ranked)


ANSWER_FIGURES = ("answer_accuracy", "abstention_accuracy", "answered_precision", "overall_accuracy", "coverage_at_90",
                  "fabricated_number_answers")


def answered_with_fusion(suite, assistant: Assistant, reader: Reader, candidates: int) -> dict:
    """The suite's eval figures with the rules' ranking (`assistant`'s), and with the reader's fused into it."""
    fused = Assistant(assistant.settings)
    fused.ranker = FusedRanker(fused.ranker, reader, candidates)
    figures = {}
    for label, answering in (("rules", assistant), ("fused", fused)):
        overall = evaluate(assistant.settings, suite.questions(), f"{suite.name} {label}", answering).metrics["overall"]
        figures[label] = {k: overall[k] for k in ANSWER_FIGURES}
    return figures


def as_read(reader: Reader, sentence, passage) -> str:
    if not reader.context:
        return sentence.text
    before = [passage.text[s.start : s.end] for s in split_sentences(passage.text[: sentence.start])]
    return reading_text(sentence.text, before[-1] if before else "", passage.title)


def summarise(rows: list[dict]) -> dict:
    read = [r for r in rows if not r["hard"]]
    answered = [r for r in read if r["reader_logit_on_answer"] is not None]
    answerable = sum(r["answerable"] for r in rows)
    unanswerable = sum(r["should_abstain"] for r in rows)
    summary = {
        "questions": len(rows),
        "read": len(read),
        "best sentence right: reader": sum(r["reader_right"] for r in read),
        "best sentence right: answerer's ranking": sum(r["ranking_right"] for r in read),
        "best sentence right: cosine": sum(r["cosine_right"] for r in read),
        "best sentence right: fused": sum(r["fused_right"] for r in read),
        "answerer's candidate right": sum(r["answerer_right"] for r in read),
        "AUC reader logit": auc([r["reader_logit"] for r in read], [r["reader_right"] for r in read]),
        "AUC answerer confidence": auc([r["answerer_confidence"] for r in read], [r["answerer_right"] for r in read]),
        "AUC reader logit on the answerer's answer": auc(
            [r["reader_logit_on_answer"] for r in answered], [r["answerer_right"] for r in answered]
        ),
        "cuts": {},
    }
    for cut in LOGIT_CUTS:
        kept = [r for r in read if r["reader_logit"] >= cut]
        right = sum(r["reader_right"] for r in kept)
        summary["cuts"][str(cut)] = {
            "answer_accuracy": round(right / max(1, answerable), 3),
            "answered_precision": round(right / len(kept), 3) if kept else None,
            "abstention_accuracy": round(1 - sum(r["should_abstain"] for r in kept) / max(1, unanswerable), 3),
        }
    return summary


def confidence_with_reader(results: dict) -> dict[str, float | None]:
    """Whether the reader's logit on the answerer's own answer adds to the answerer's confidence:
    a logistic model of the two, fitted on every other suite's rows, and its AUC on this suite's."""
    from sklearn.linear_model import LogisticRegression

    def rows(name: str) -> list[dict]:
        return [r for r in results[name]["rows"] if not r["hard"] and r["reader_logit_on_answer"] is not None]

    def inputs(some: list[dict]) -> np.ndarray:
        confidence = np.clip([r["answerer_confidence"] for r in some], 1e-4, 1 - 1e-4)
        return np.column_stack([np.log(confidence / (1 - confidence)), [r["reader_logit_on_answer"] for r in some]])

    held_out = {}
    for name in results:
        train = [r for other in results if other != name for r in rows(other)]
        labels = [r["answerer_right"] for r in train]
        test = rows(name)
        if len(set(labels)) < 2 or not test:
            continue
        model = LogisticRegression().fit(inputs(train), labels)
        held_out[name] = auc(model.predict_proba(inputs(test))[:, 1].tolist(), [r["answerer_right"] for r in test])
    return held_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reader", type=Path, required=True, help="a folder holding reader.onnx and tokenizer.json")
    parser.add_argument("--suite", nargs="+", default=["all"])
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    parser.add_argument("--answer", action="store_true",
                        help="also answer every suite with the reader's ranking fused into the answerer's, beside the rules'")
    args = parser.parse_args(argv)
    reader = Reader(args.reader)
    results = {}
    for suite in pick_suites(args.suite, SUITES_FILE):
        settings = suite.settings(Settings(llm="extractive"))
        suite.prepare(settings)
        assistant = Assistant(settings)
        rows = [read_question(assistant, reader, q, args.candidates) for q in suite.questions()]
        results[suite.name] = summarise(rows) | {"rows": rows}
        if args.answer:
            results[suite.name]["answered"] = answered_with_fusion(suite, assistant, reader, args.candidates)
        shown = {k: v for k, v in results[suite.name].items() if k != "rows"}
        print(suite.name, json.dumps(shown, indent=1), file=sys.stderr)
    if len(results) > 1:
        for name, auc_with_reader in confidence_with_reader(results).items():
            results[name]["AUC answerer confidence with the reader's logit, fitted on the other suites"] = auc_with_reader
            print(name, "AUC answerer confidence with the reader's logit, fitted on the other suites:", auc_with_reader,
                  file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
