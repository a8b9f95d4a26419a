"""SQuAD v2 as an eval dataset: the official JSON becomes a corpus and a question set.

Each SQuAD article becomes one corpus document (its title, then its paragraphs), `is_impossible`
becomes `abstain`, and every gold span is an accepted answer. Scoring follows SQuAD's own
normalisation (lower case, no punctuation, no articles, single spaces): an answer is right when
its normalised text contains a normalised gold span.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation, as in its official evaluation script."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def contains_span(answer: str, spans: list[str]) -> bool:
    normalized = f" {normalize_answer(answer)} "
    return any(f" {normalize_answer(span)} " in normalized for span in spans if normalize_answer(span))


def is_squad(path: Path) -> bool:
    """A SQuAD file is one JSON object with a `data` list; our datasets are JSON lines."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("data"), list)


def load_squad(path: Path) -> dict:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path} is not SQuAD JSON: expected an object with a 'data' list")
    return data


def article_file(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() + ".txt"


def write_corpus(squad: dict, folder: Path) -> None:
    """One text file per article: the title as headline, then the paragraphs. Files already
    holding the same text are left alone, so the index built over them stays current."""
    folder.mkdir(parents=True, exist_ok=True)
    for article in squad["data"]:
        title = article["title"].replace("_", " ")
        text = title + "\n\n" + "\n\n".join(p["context"].strip() for p in article["paragraphs"]) + "\n"
        path = folder / article_file(article["title"])
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def questions(squad: dict, source_prefix: str) -> list[dict]:
    """Dataset records (the JSON-lines format of rag eval) for every question of the file."""
    records = []
    for article in squad["data"]:
        source = f"{source_prefix}/{article_file(article['title'])}"
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible"))
                spans = list(dict.fromkeys(a["text"] for a in qa.get("answers") or []))
                records.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"].strip(),
                        "type": "unanswerable" if impossible else "squad",
                        "spans": [] if impossible else spans,
                        "gold_sources": [] if impossible else [source],
                        "abstain": impossible,
                    }
                )
    return records
