"""Helpers for the robustness tests: index snapshots and consistency checks, generated articles,
and the `rag` command line run as a real subprocess.

`python -m tests.robustness snapshot CORPUS_DIR INDEX_DIR` prints an index snapshot as JSON. The
kill tests read an index another process writes that way: a Chroma client opened in the test
process would keep serving what it cached. `chroma-writer` and `chroma-check` probe Chroma's
embedded store alone under kill -9 (see tests/test_robustness_kill.py).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from rag.index import sentence_vectors
from rag.index.keyword import KeywordIndex
from rag.index.manifest import Manifest
from rag.index.store import open_vector_store
from rag.settings import Settings
from tests.test_ingest import index_state

RAG = [sys.executable, "-m", "rag.cli"]
CLI_TIMEOUT_S = 300


# -- the index -------------------------------------------------------------------------------------


def index_snapshot(settings: Settings) -> dict:
    """What the index holds, as plain data: the manifest's documents, the chunk ids each store
    lists (as lists, so duplicates show), and the files beside them."""
    manifest = Manifest.load(settings.index_dir)
    store = open_vector_store(settings, manifest.embed_model)
    keywords = KeywordIndex.load(settings.index_dir / manifest.keyword_dir)
    listed, stored, keyword = index_state(settings)  # the sets tests/test_ingest.py compares
    return {
        "documents": {source: asdict(entry) for source, entry in sorted(manifest.documents.items())},
        "manifest_ids": sorted(cid for entry in manifest.documents.values() for cid in entry.chunk_ids),
        "chroma_ids": sorted(store.all_ids()),
        "chroma_count": store.count(),
        "keyword_ids": sorted(keywords.ids),
        "sets_agree": listed == stored == keyword,
        "keyword_dir": manifest.keyword_dir,
        "keyword_dirs": sorted(p.name for p in settings.index_dir.glob("keyword-*")),
        "article_files": sorted(p.name for p in (settings.index_dir / "articles").glob("*")),
        "sentence_chunks": _sentence_chunks(settings.index_dir, manifest),
    }


def _sentence_chunks(index_dir: Path, manifest: Manifest) -> dict[str, int | str]:
    """Per document, how many chunks its sentence file holds vectors for (or why it cannot be read)."""
    counted: dict[str, int | str] = {}
    for source, entry in manifest.documents.items():
        try:
            counted[source] = len(sentence_vectors.load(index_dir / entry.sentence_file))
        except Exception as exc:  # noqa: BLE001 - any failure is what the check reports
            counted[source] = f"unreadable: {type(exc).__name__}: {exc}"
    return counted


def check_consistent(snapshot: dict) -> None:
    """Chroma, the keyword index and the manifest list exactly the same chunks, once each, and
    nothing an interrupted run wrote is left on disk."""
    listed = snapshot["manifest_ids"]
    assert len(listed) == len(set(listed)), "a chunk id is listed twice in the manifest"
    assert snapshot["sets_agree"], "the manifest, Chroma and the keyword index list different chunks"
    assert snapshot["chroma_ids"] == listed, _difference("Chroma", snapshot["chroma_ids"], listed)
    assert snapshot["chroma_count"] == len(listed)
    assert snapshot["keyword_ids"] == listed, _difference(
        "the keyword index", snapshot["keyword_ids"], listed
    )
    assert snapshot["keyword_dirs"] == [snapshot["keyword_dir"]], (
        f"stale keyword folders: {snapshot['keyword_dirs']}"
    )
    referenced = sorted(
        Path(name).name for d in snapshot["documents"].values() for name in (d["text_file"], d["sentence_file"])
    )
    assert snapshot["article_files"] == referenced, (
        "article texts and sentence vectors on disk differ from those the manifest lists"
    )
    for source, document in snapshot["documents"].items():
        assert snapshot["sentence_chunks"][source] == len(document["chunk_ids"]), (
            f"the sentence vectors of {source}: {snapshot['sentence_chunks'][source]} for {len(document['chunk_ids'])} chunks"
        )


def assert_index_consistent(settings: Settings) -> dict:
    snapshot = index_snapshot(settings)
    check_consistent(snapshot)
    return snapshot


def snapshot_in_subprocess(root: Path) -> dict:
    done = run_in_project(root, sys.executable, "-m", "tests.robustness", "snapshot", str(root / "corpus"), str(root / "index"))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def contents(snapshot: dict) -> dict:
    """What must be identical between two indexes of the same files, however they were built:
    the documents (sources, hashes, chunk ids, metadata) and every store's chunk ids. The
    keyword folder's generation number counts runs, so it is left out."""
    return {key: snapshot[key] for key in ("documents", "manifest_ids", "chroma_ids", "keyword_ids")}


def _difference(name: str, got: list[str], listed: list[str]) -> str:
    extra, missing = sorted(set(got) - set(listed)), sorted(set(listed) - set(got))
    return (
        f"{name} differs from the manifest: {len(extra)} orphans {extra[:3]}, "
        f"{len(missing)} missing {missing[:3]}"
    )


# -- the command line ------------------------------------------------------------------------------


def cli_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(
        RAG_CORPUS_DIR=str(root / "corpus"),
        RAG_INDEX_DIR=str(root / "index"),
        HF_HUB_OFFLINE="1",
        OMP_WAIT_POLICY="PASSIVE",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return env


def rag(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`rag ARGS` in the project folder `root`, as a user would run it."""
    return run_in_project(root, *RAG, *args)


def run_in_project(root: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(command),
        cwd=root,
        env=cli_env(root),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


# -- generated articles ----------------------------------------------------------------------------

# Made-up towns and civic news, far from the bundled corpus (no minerals, money, lenders or
# countries), so that adding them never changes an answer about the bundled articles.
_SYLLABLES = [
    "var",
    "quil",
    "ost",
    "tess",
    "mor",
    "bel",
    "dun",
    "kav",
    "lin",
    "ser",
    "thal",
    "wen",
    "rov",
    "pell",
]
_ENDINGS = ["holt", "mere", "bay", "ford", "wick", "dale", "stead", "port"]
_REACTIONS = ["agreed", "disagreed", "wrote letters", "signed a petition", "cheered"]
_TOPICS = [
    ("bridge", "reopened the {town} bridge", "cyclists", "repairs to the deck took {a} weeks"),
    ("ferry", "launched a ferry route from {town}", "commuters", "the crossing takes {a} minutes"),
    ("library", "opened a new library in {town}", "readers", "the shelves hold {b} books"),
    ("orchard", "finished the apple harvest in {town}", "pickers", "the orchards cover {a} hectares"),
    (
        "marathon",
        "held the {town} marathon",
        "runners",
        "the fastest runner finished in {a} minutes over two hours",
    ),
    ("tram", "extended the tram line through {town}", "passengers", "the new section has {a} stops"),
    ("museum", "opened a lantern exhibition in {town}", "visitors", "the exhibition shows {a} lanterns"),
    ("festival", "staged the river festival in {town}", "musicians", "the boats carried {a} choirs"),
]


def generated_article(index: int, rng: random.Random) -> tuple[str, str]:
    """(file name, text) of a made-up local news article with a few chunks' worth of sentences."""
    town = (
        _SYLLABLES[index % len(_SYLLABLES)]
        + _SYLLABLES[(index * 5 + 3) % len(_SYLLABLES)]
        + _ENDINGS[index % len(_ENDINGS)]
    ).capitalize()
    topic, action, people, fact = _TOPICS[index % len(_TOPICS)]
    a, b = rng.randint(3, 90), rng.randint(1000, 90000)
    day = rng.choice(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"])
    sentences = [
        f"The council of {town} {action.format(town=town)} on {day}, officials said.",
        f"About {b} {people} were expected in the first week, and {fact.format(a=a, b=b)}.",
        f"The mayor of {town}, {rng.choice(['Ada', 'Bruno', 'Cleo', 'Dario', 'Elin'])} "
        f"{rng.choice(['Hallam', 'Ivers', 'Jansen', 'Kovac', 'Lund'])}, "
        f"called the {topic} a gift to the town.",
    ]
    for n in range(rng.randint(9, 13)):
        sentences.append(
            f"Resident number {n + 1} of {town} said the {topic} had changed how {people} spend the "
            f"{rng.choice(['morning', 'afternoon', 'evening', 'weekend'])}, and {rng.randint(2, 99)} "
            f"neighbours {rng.choice(_REACTIONS)}."
        )
    sentences.append(
        f"The next council meeting in {town} will review the {topic} in {rng.randint(2, 11)} weeks."
    )
    title = f"{town} {topic.capitalize()} News: Council Report {index}"
    return f"{town.lower()}-{topic}-{index:03d}.txt", title + "\n\n" + " ".join(sentences) + "\n"


def write_generated_articles(folder: Path, count: int, seed: int = 7, start: int = 0) -> list[Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(start, start + count):
        name, text = generated_article(index, rng)
        (folder / name).write_text(text)
        written.append(folder / name)
    return written


def writable_copy(settings: Settings) -> Settings:
    """The bundled articles are read-only in the repository; the tests edit their copies."""
    for path in settings.corpus_dir.iterdir():
        path.chmod(0o644)
    return settings


# -- Chroma's embedded store on its own ----------------------------------------------------------------


def embed_model_name(settings: Settings) -> str:
    """The name an index records for its model, as rag.index.embeddings.Embedder derives it, without
    loading the model."""
    from rag.index.embeddings import resolve_model_path

    path = resolve_model_path(settings.embed_model)
    return path.name if path.name != "model" else path.parent.name


def chroma_writer(settings: Settings, start: int, batch: int) -> None:
    """Upsert batches of random vectors into the index's collection, then delete a quarter of the
    batch before, forever, printing each operation as it begins and once Chroma has returned:
    whoever kills this process knows which writes were acknowledged."""
    import numpy as np

    store = open_vector_store(settings, embed_model_name(settings))
    rng = np.random.default_rng(start)
    print("ready", flush=True)
    for at in range(start, sys.maxsize, batch):
        ids = [f"probe-{n:08d}" for n in range(at, at + batch)]
        vectors = rng.standard_normal((batch, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        print("begin upsert", at, at + batch, flush=True)
        store.upsert(ids, vectors, ids, [{"n": n} for n in range(at, at + batch)])
        print("acked upsert", at, at + batch, flush=True)
        if at - batch >= start:
            print("begin delete", at - batch, at - batch + batch // 4, flush=True)
            store.delete([f"probe-{n:08d}" for n in range(at - batch, at - batch + batch // 4)])
            print("acked delete", at - batch, at - batch + batch // 4, flush=True)


def chroma_check(settings: Settings) -> dict:
    """Open the store and use it the ways the assistant does: count, list, query, fetch vectors."""
    import numpy as np

    store = open_vector_store(settings, embed_model_name(settings))
    ids = store.all_ids()
    probe = np.full(384, 1 / np.sqrt(384), dtype=np.float32)
    fetched = store.get(ids[:50] + ids[-50:])
    return {
        "count": store.count(),
        "ids": ids,
        "query_hits": len(store.nearest(probe, 10)) if ids else 0,
        "vectors_ok": all(c.vector is not None and c.vector.shape == (384,) for c in fetched),
    }


def _main(argv: list[str]) -> int:
    commands = {"snapshot": 3, "chroma-writer": 5, "chroma-check": 3}
    if commands.get(argv[0] if argv else "") != len(argv):
        print(
            "usage: python -m tests.robustness snapshot|chroma-check CORPUS_DIR INDEX_DIR\n"
            "       python -m tests.robustness chroma-writer CORPUS_DIR INDEX_DIR START BATCH",
            file=sys.stderr,
        )
        return 2
    settings = Settings(corpus_dir=Path(argv[1]), index_dir=Path(argv[2]))
    if argv[0] == "chroma-writer":
        chroma_writer(settings, int(argv[3]), int(argv[4]))
    else:
        print(json.dumps(index_snapshot(settings) if argv[0] == "snapshot" else chroma_check(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
