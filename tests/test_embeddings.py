"""The embedder: the numpy forward pass must give sentence-transformers' vectors, and a question
must be answerable without importing torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rag import numpy_bert
from rag.embeddings import SMALL_BATCH, Embedder, resolve_model_path
from tests.conftest import PROJECT_ROOT

TEXTS = [
    "What did EXIM approve under Project Vault?",
    "Tokyo",
    "The bank's board approved a loan of USD 10 billion, the largest in its 90-year history.",
    "Lithium, cobalt and rare-earth magnets — prices fell 12% in the second quarter of 2025.",
    "word " * 400,  # past the model's 256-token limit, so truncation must match too
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(resolve_model_path(None))


@pytest.fixture(scope="module")
def reference_vectors(embedder) -> np.ndarray:
    return embedder._full_model().encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


def test_the_bundled_model_gets_the_numpy_encoder(embedder):
    assert embedder._light is not None


def test_numpy_vectors_match_sentence_transformers(embedder, reference_vectors):
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), embedder.dimension)
    assert np.abs(vectors - reference_vectors).max() < 1e-5


def test_a_text_gets_the_same_vector_alone_and_in_a_batch_of_other_lengths(embedder):
    alone = embedder.embed_one(TEXTS[2])
    batched = embedder.embed(TEXTS)[2]
    assert np.abs(alone - batched).max() < 1e-5


def test_only_large_batches_load_sentence_transformers(reference_vectors):
    fresh = Embedder(resolve_model_path(None))
    fresh.embed(TEXTS)
    assert fresh._model is None
    many = (TEXTS * (SMALL_BATCH // len(TEXTS) + 1))[: SMALL_BATCH + 1]
    vectors = fresh.embed(many)
    assert fresh._model is not None
    assert np.abs(vectors[: len(TEXTS)] - reference_vectors).max() < 1e-5


@pytest.mark.parametrize(
    "change",
    [
        lambda folder: _edit_json(folder / "config.json", model_type="mpnet"),
        lambda folder: _edit_json(folder / "config.json", hidden_act="relu"),
        lambda folder: _edit_json(folder / "1_Pooling" / "config.json", pooling_mode_cls_token=True, pooling_mode_mean_tokens=False),
        lambda folder: (folder / "modules.json").write_text("not json"),
        lambda folder: (folder / "model.safetensors").unlink(),
    ],
    ids=["not-bert", "other-activation", "cls-pooling", "broken-modules", "no-safetensors"],
)
def test_other_models_are_left_to_sentence_transformers(tmp_path, change):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path(None), folder)
    assert numpy_bert.supports(folder)
    change(folder)
    assert not numpy_bert.supports(folder)


def test_a_question_is_answered_without_importing_torch(corpus_settings):
    script = (
        "import json, sys\n"
        "from rag import Assistant, Settings\n"
        f"settings = Settings(corpus_dir={str(corpus_settings.corpus_dir)!r}, index_dir={str(corpus_settings.index_dir)!r})\n"
        "answer = Assistant.from_settings(settings).ask('What did EXIM approve under Project Vault?')\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
        "print(json.dumps({'abstained': answer.abstained, 'citations': len(answer.citations), 'heavy': heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["heavy"] == []
    assert not result["abstained"] and result["citations"] >= 1


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
