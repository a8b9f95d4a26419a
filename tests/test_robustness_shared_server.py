"""Two indexes on one real `chroma run` server, through the real command line: each keeps its
own collections (named from the id its manifest keeps, with no setting), so an ingest or a
`--rebuild` of one never deletes the other's chunks, and an index built before indexes kept an
id (the collection `articles`) still opens and is moved to a collection of its own by a rebuild."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import chromadb
import pytest

pytest.register_assert_rewrite("tests.robustness")

from tests.chroma_server import ChromaServer  # noqa: E402
from tests.conftest import make_project  # noqa: E402
from tests.robustness import CLI_TIMEOUT_S, RAG, cli_env, write_generated_articles  # noqa: E402

EXIM = "What did EXIM approve under Project Vault?"
TOWN = "How long did repairs to the Vartessholt bridge deck take?"


def rag_on(server: ChromaServer, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**cli_env(root), "RAG_CHROMA_URL": server.url}
    return subprocess.run([*RAG, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, check=False)


def ingested(server: ChromaServer, root: Path, *flags: str) -> str:
    done = rag_on(server, root, "ingest", "--quiet", *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "interrupted ingest" not in done.stdout, done.stdout  # the other index's chunks are not orphans
    return done.stdout


def answer(server: ChromaServer, root: Path, question: str) -> str:
    done = rag_on(server, root, "ask", question, "--json", "--llm", "extractive")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)["answer"]


def bundled_project(root: Path) -> Path:
    make_project(root)
    return root


def town_project(root: Path) -> Path:
    (root / "corpus").mkdir(parents=True)
    write_generated_articles(root / "corpus", 4)
    return root


def both_answer(server: ChromaServer, bundled: Path, towns: Path) -> None:
    """Each index answers its own question, and not the other's."""
    assert "10 billion" in answer(server, bundled, EXIM)
    assert "44 weeks" in answer(server, towns, TOWN)
    assert "Not in these articles" in answer(server, towns, EXIM)


def collections(server: ChromaServer) -> dict[str, int]:
    client = chromadb.HttpClient(host="127.0.0.1", port=server.port)
    return {c.name: c.count() for c in client.list_collections()}


def manifest(root: Path) -> dict:
    return json.loads((root / "index" / "manifest.json").read_text())


def make_legacy(server: ChromaServer, root: Path) -> None:
    """Turn a fresh index into one built before indexes kept an id: its collection `articles`,
    and a manifest that names neither."""
    written = manifest(root)
    client = chromadb.HttpClient(host="127.0.0.1", port=server.port)
    client.get_collection(written["collection"]).modify(name="articles")
    del written["index_id"]
    written["collection"] = None
    (root / "index" / "manifest.json").write_text(json.dumps(written))


def test_two_indexes_on_one_server_keep_apart_through_ingests_and_rebuilds(tmp_path, chroma_server):
    bundled, towns = bundled_project(tmp_path / "bundled"), town_project(tmp_path / "towns")
    ingested(chroma_server, bundled)
    ingested(chroma_server, towns)
    both_answer(chroma_server, bundled, towns)
    assert manifest(bundled)["collection"] != manifest(towns)["collection"]

    shutil.copy(next((towns / "corpus").iterdir()), towns / "corpus" / "copy-of-a-town.txt")
    ingested(chroma_server, towns)
    ingested(chroma_server, bundled, "--rebuild")
    ingested(chroma_server, towns, "--rebuild")
    ingested(chroma_server, bundled)
    both_answer(chroma_server, bundled, towns)
    # one collection each, the rebuilt ones: the replaced generations are gone, nothing else
    assert sorted(collections(chroma_server)) == sorted([manifest(bundled)["collection"], manifest(towns)["collection"]])

    # A manifest cut short still shows the index's id: its rebuild finds its old collections.
    cut = (towns / "index" / "manifest.json").read_text()[:400]
    (towns / "index" / "manifest.json").write_text(cut)
    assert rag_on(chroma_server, towns, "ask", TOWN).returncode == 1
    ingested(chroma_server, towns, "--rebuild")
    both_answer(chroma_server, bundled, towns)
    assert sorted(collections(chroma_server)) == sorted([manifest(bundled)["collection"], manifest(towns)["collection"]])


def test_an_index_from_before_ids_still_opens_and_a_rebuild_gives_it_its_own_collection(tmp_path, chroma_server):
    bundled, towns = bundled_project(tmp_path / "bundled"), town_project(tmp_path / "towns")
    ingested(chroma_server, bundled)
    make_legacy(chroma_server, bundled)
    ingested(chroma_server, towns)
    ingested(chroma_server, towns, "--rebuild")
    both_answer(chroma_server, bundled, towns)
    assert "articles" in collections(chroma_server)

    assert "up to date" in ingested(chroma_server, bundled)
    ingested(chroma_server, bundled, "--rebuild")
    both_answer(chroma_server, bundled, towns)
    assert manifest(bundled)["index_id"]
    assert sorted(collections(chroma_server)) == sorted([manifest(bundled)["collection"], manifest(towns)["collection"]])
