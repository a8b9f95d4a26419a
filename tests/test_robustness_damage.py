"""A damaged index, through the real command line: each kind of damage ends in a loud error that
names the command that fixes it, or in an index that the next `rag ingest` heals. Never an
abstention ("Not in these articles") that reads as an answer, never a raw traceback, and never
"Index up to date" over an index that cannot answer."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.robustness")

from tests.conftest import make_project  # noqa: E402
from tests.robustness import (  # noqa: E402
    check_consistent,
    rag,
    run_in_project,
    snapshot_in_subprocess,
    writable_copy,
)

EXIM = "What did EXIM approve under Project Vault?"
REBUILD_HINT = "rag ingest --rebuild"


def damage_manifest(index: Path) -> None:
    (index / "manifest.json").write_text('{"format_version": 1, "documents": [')


def damage_keyword_index(index: Path) -> None:
    for path in next(index.glob("keyword-*")).glob("*.npy"):
        path.unlink()


def truncate_store_database(index: Path) -> None:
    database = index / "chroma" / "chroma.sqlite3"
    with open(database, "r+b") as handle:
        handle.truncate(database.stat().st_size // 5)


def delete_store(index: Path) -> None:
    shutil.rmtree(index / "chroma")


FILL_STORE = """
import numpy as np
from rag.settings import Settings
from rag.index.store import open_vector_store
from tests.robustness import embed_model_name

settings = Settings()
vectors = np.random.default_rng(0).standard_normal((3000, 384)).astype(np.float32)
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
ids = [f"filler-{n}" for n in range(3000)]
open_vector_store(settings, embed_model_name(settings)).upsert(ids, vectors, ids, [{"n": 1}] * 3000)
"""


def damage_vector_files(index: Path) -> None:
    """Chroma writes its vector index files once a collection passes 1,000 vectors: 3,000 random
    ones (uncommitted, as a killed ingest would leave) make it write them, then their header is
    overwritten."""
    root = index.parent
    done = run_in_project(root, sys.executable, "-c", FILL_STORE)
    assert done.returncode == 0, done.stderr[-2000:]
    (header,) = (index / "chroma").glob("*/header.bin")
    header.write_bytes(bytes(range(100)))


# damage -> what a plain `rag ingest` does about it: "heals" it, or "refuses" (it needs --rebuild)
DAMAGE = {
    "a manifest that is not JSON": (damage_manifest, "refuses"),
    "keyword-index files missing": (damage_keyword_index, "heals"),
    "a truncated chroma.sqlite3": (truncate_store_database, "refuses"),
    "the Chroma folder deleted": (delete_store, "heals"),
    "vector index files overwritten": (damage_vector_files, "refuses"),
}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("indexed")
    writable_copy(make_project(root))
    done = rag(root, "ingest", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    return root


def fails_loudly(done, command: str) -> None:
    assert done.returncode == 1, f"`rag {command}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert REBUILD_HINT in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "Not in these articles" not in done.stdout and "up to date" not in done.stdout


def answers_right(root: Path) -> None:
    done = rag(root, "ask", EXIM, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "10 billion" in json.loads(done.stdout)["answer"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_damage_ends_in_a_loud_error_or_a_healed_index(indexed, tmp_path, damage):
    harm, plain_ingest = DAMAGE[damage]
    root = tmp_path / "project"
    shutil.copytree(indexed, root)
    harm(root / "index")

    fails_loudly(rag(root, "ask", EXIM), "ask")
    done = rag(root, "ingest", "--quiet")
    if plain_ingest == "heals":
        assert done.returncode == 0, done.stderr[-2000:]
        assert "up to date" not in done.stdout, done.stdout
    else:
        fails_loudly(done, "ingest")
        done = rag(root, "ingest", "--rebuild", "--quiet")
        assert done.returncode == 0, done.stderr[-2000:]
    answers_right(root)
    check_consistent(snapshot_in_subprocess(root))


def test_the_eval_stops_with_the_fix_rather_than_scoring_every_question_wrong(indexed, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(indexed, root)
    delete_store(root / "index")
    dataset = tmp_path / "questions.jsonl"
    dataset.write_text(json.dumps({"id": "q1", "question": EXIM, "answers": [["10 billion"]]}) + "\n")
    fails_loudly(rag(root, "eval", "--dataset", str(dataset), "--out", str(tmp_path / "run")), "eval")


def replace_with_file(index: Path, name: str) -> None:
    shutil.rmtree(index / name)
    (index / name).write_text("not a folder\n")


def manifest_as_folder(index: Path) -> None:
    (index / "manifest.json").unlink()
    (index / "manifest.json").mkdir()


# damage that only a rebuild heals, and that the rebuild itself used to trip over
IN_THE_WAY = {
    "the articles folder a file": lambda index: replace_with_file(index, "articles"),
    "the Chroma folder a file": lambda index: replace_with_file(index, "chroma"),
    "the manifest a folder": manifest_as_folder,
}


def vector_folders(index: Path) -> list[str]:
    """Chroma's vector index folders, one per collection segment (named by a UUID)."""
    return [p.name for p in (index / "chroma").iterdir() if p.is_dir() and len(p.name) == 36]


@pytest.mark.parametrize("damage", IN_THE_WAY)
def test_a_rebuild_clears_what_is_in_the_way_and_leaves_no_orphaned_vectors(indexed, tmp_path, damage):
    root = tmp_path / "project"
    shutil.copytree(indexed, root)
    IN_THE_WAY[damage](root / "index")

    asked = rag(root, "ask", EXIM, "--json")
    if asked.returncode == 0:  # the articles folder is not needed to answer; the ingest names it
        assert "10 billion" in json.loads(asked.stdout)["answer"]
    else:
        fails_loudly(asked, "ask")
    fails_loudly(rag(root, "ingest", "--quiet"), "ingest")
    for _ in range(2):  # the second rebuild replaces the first one's collection
        done = rag(root, "ingest", "--rebuild", "--quiet")
        assert done.returncode == 0 and "up to date" not in done.stdout, done.stdout + done.stderr[-2000:]
        assert not any(line.startswith("skipped") for line in done.stdout.splitlines()), done.stdout
    answers_right(root)
    check_consistent(snapshot_in_subprocess(root))
    assert len(vector_folders(root / "index")) == 1, vector_folders(root / "index")


def test_an_index_dir_that_is_a_file_is_named_and_left_alone(indexed, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(indexed / "corpus", root / "corpus")
    (root / "index").write_text("my notes\n")
    for command in (["ask", EXIM], ["ingest"], ["ingest", "--rebuild"]):
        done = rag(root, *command)
        assert done.returncode == 1 and done.stdout == "", done.stdout
        line = f"rag {command[0]}: RAG_INDEX_DIR {root / 'index'} is a file, not a folder"
        assert done.stderr.startswith(line) and len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]
    assert (root / "index").read_text() == "my notes\n"
