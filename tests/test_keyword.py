"""The keyword index's saved form: what a rebuild carries over must be what was indexed."""

from __future__ import annotations

import json

from rag.index.keyword import TOKENS_FILE, KeywordIndex, tokenize

TEXTS = ["EXIM approved a loan under Project Vault", "Japan and the US signed a rare earths framework"]
FIELDS = {"published_int": [20260202, 20251028], "publisher_key": ["ani", "bbc"]}


def saved_index(folder):
    KeywordIndex.build(["a-0", "b-0"], tokenize(TEXTS), FIELDS).save(folder)
    return folder


def test_a_saved_index_searches_without_loading_the_tokens(tmp_path):
    loaded = KeywordIndex.load(saved_index(tmp_path))
    assert loaded.tokens is None
    assert [cid for cid, _ in loaded.search("Project Vault loan", 2)] == ["a-0"]


def test_a_rebuild_gets_each_chunk_s_tokens_and_fields(tmp_path):
    entries = KeywordIndex.saved_entries(saved_index(tmp_path))
    assert entries["b-0"] == (tokenize([TEXTS[1]])[0], {"published_int": 20251028, "publisher_key": "bbc"})


def test_an_index_saved_with_texts_instead_of_tokens_still_rebuilds(tmp_path):
    folder = saved_index(tmp_path)
    chunks = json.loads((folder / "chunks.json").read_text())
    (folder / "chunks.json").write_text(json.dumps({**chunks, "texts": TEXTS}))
    (folder / TOKENS_FILE).unlink()
    assert KeywordIndex.saved_entries(folder)["a-0"][0] == tokenize([TEXTS[0]])[0]
