"""The embedder: onnxruntime must give sentence-transformers' vectors, its cached export must
survive crashes and damage, and a question must be answerable without importing torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.index import onnx_encoder, onnx_export
from rag.index.embeddings import SMALL_BATCH, Embedder, resolve_model_path
from tests.conftest import PROJECT_ROOT

TEXTS = [
    "What did EXIM approve under Project Vault?",
    "Tokyo",
    "The bank's board approved a loan of USD 10 billion, the largest in its 90-year history.",
    "Lithium, cobalt and rare-earth magnets — prices fell 12% in the second quarter of 2025.",
    "word " * 400,  # past the model's 256-token limit, so truncation must match too
    # A real article, also past the limit: its first 256 tokens are what both must embed.
    (PROJECT_ROOT / "corpus" / "ani-2026-critical-minerals-ministerial-project-vault.txt").read_text()[:6000],
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(resolve_model_path(None))


@pytest.fixture(scope="module")
def reference_vectors(embedder) -> np.ndarray:
    return embedder._full_model().encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)


def test_the_bundled_model_gets_the_onnx_encoder(embedder):
    assert embedder._onnx is not None
    assert embedder.dimension == 384


def test_onnx_vectors_match_sentence_transformers(embedder, reference_vectors):
    tokens = embedder._full_model().tokenizer(TEXTS[-1])["input_ids"]
    assert len(tokens) > embedder._full_model().max_seq_length  # the long texts are truncated
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), embedder.dimension)
    assert (vectors * reference_vectors).sum(1).min() >= 0.9999
    assert np.abs(vectors - reference_vectors).max() < 1e-5


def test_onnx_token_states_match_sentence_transformers(embedder):
    """The states an ingest pools each sentence's vector from, small batches and large alike."""
    expected = embedder._full_token_states(TEXTS)
    for read in (embedder._onnx.token_states(TEXTS), embedder._onnx_bulk().token_states(TEXTS)):
        for (states, offsets), (_, want_states, want_offsets) in zip(read, expected, strict=True):
            assert states.shape == want_states.shape
            assert np.abs(states - want_states).max() < 1e-4
            assert (offsets == want_offsets).all()


def test_a_text_gets_the_same_vector_alone_and_in_a_batch_of_other_lengths(embedder):
    alone = embedder.embed_one(TEXTS[2])
    batched = embedder.embed(TEXTS)[2]
    assert np.abs(alone - batched).max() < 1e-5


def test_large_batches_go_through_onnxruntime_too(reference_vectors):
    fresh = Embedder(resolve_model_path(None), batch_size=32)
    many = (TEXTS * (SMALL_BATCH // len(TEXTS) + 2))[: SMALL_BATCH + 5]
    vectors = fresh.embed(many)
    assert fresh._model is None and fresh._onnx_bulk_encoder is not None
    expected = reference_vectors[[i % len(TEXTS) for i in range(len(many))]]
    assert np.abs(vectors - expected).max() < 1e-5


@pytest.fixture
def good_export(embedder) -> Path:
    return embedder._onnx.export_dir


@pytest.fixture
def exports_counted(monkeypatch, good_export) -> list[Path]:
    """onnx_export.export, standing in by copying the good export (a real one takes seconds)."""
    made = []

    def export(model_path, target):
        shutil.copytree(good_export, target)
        made.append(target)

    monkeypatch.setattr(onnx_export, "export", export)
    return made


@pytest.mark.parametrize(
    "damage",
    [
        lambda folder: _truncate(folder / "model.onnx.data"),
        lambda folder: _overwrite_middle(folder / "model.onnx.data"),
        lambda folder: (folder / "model.onnx.data").unlink(),
        lambda folder: (folder / "model.onnx").write_bytes(b"not a model"),
    ],
    ids=["truncated-weights", "altered-weights", "no-weights", "garbage-graph"],
)
def test_a_damaged_cached_export_is_made_again(tmp_path, good_export, exports_counted, reference_vectors, damage):
    cached = tmp_path / good_export.name
    shutil.copytree(good_export, cached)
    damage(cached)
    encoder = onnx_encoder.OnnxEncoder(resolve_model_path(None), tmp_path)
    assert exports_counted == [cached]
    assert np.abs(encoder.embed(TEXTS) - reference_vectors).max() < 1e-5


def test_a_sound_cached_export_is_used_as_it_is(tmp_path, good_export, exports_counted):
    shutil.copytree(good_export, tmp_path / good_export.name)
    onnx_encoder.OnnxEncoder(resolve_model_path(None), tmp_path)
    assert exports_counted == []


def test_the_export_is_made_on_first_use_and_written_atomically(tmp_path, monkeypatch, reference_vectors):
    model = resolve_model_path(None)
    real_trace = onnx_export._trace

    def trace_then_crash(encoder, path):
        real_trace(encoder, path)
        raise KeyboardInterrupt  # as if the process were stopped before the export was complete

    monkeypatch.setattr(onnx_export, "_trace", trace_then_crash)
    with pytest.raises(KeyboardInterrupt):
        onnx_encoder.OnnxEncoder(model, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial export where the encoder would look
    monkeypatch.setattr(onnx_export, "_trace", real_trace)
    encoder = onnx_encoder.OnnxEncoder(model, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [encoder.export_dir.name]
    assert sorted(p.name for p in encoder.export_dir.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert np.abs(encoder.embed(TEXTS) - reference_vectors).max() < 1e-5


@pytest.mark.parametrize(
    "change",
    [
        lambda folder: _edit_json(folder / "config.json", model_type="mpnet"),
        lambda folder: _edit_json(folder / "1_Pooling" / "config.json", pooling_mode_cls_token=True, pooling_mode_mean_tokens=False),
        lambda folder: (folder / "modules.json").write_text("not json"),
        lambda folder: (folder / "tokenizer.json").unlink(),
    ],
    ids=["not-bert", "cls-pooling", "broken-modules", "no-fast-tokenizer"],
)
def test_other_models_are_left_to_sentence_transformers(tmp_path, change):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path(None), folder)
    assert onnx_encoder.supports(folder)
    change(folder)
    assert not onnx_encoder.supports(folder)


def test_a_question_is_answered_without_importing_torch(corpus_settings):
    script = (
        "import json, sys\n"
        "from rag import Assistant, Settings\n"
        f"settings = Settings(corpus_dir={str(corpus_settings.corpus_dir)!r}, index_dir={str(corpus_settings.index_dir)!r})\n"
        "assistant = Assistant.from_settings(settings)\n"
        "answer = assistant.ask('What did EXIM approve under Project Vault?')\n"
        "assistant.ask('Who announced Project Vault?')  # a person asked for: spaCy tags the sentences\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'onnx') if m in sys.modules)\n"
        "print(json.dumps({'abstained': answer.abstained, 'citations': len(answer.citations), 'heavy': heavy,\n"
        "                  'onnxruntime': 'onnxruntime' in sys.modules, 'spacy': 'spacy' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["heavy"] == []
    assert result["onnxruntime"] and result["spacy"]
    assert not result["abstained"] and result["citations"] >= 1


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _overwrite_middle(path: Path) -> None:
    """Zeros over a tenth of the weights past the word embeddings (the first half of the file), so
    that layers every text goes through are hit."""
    data = bytearray(path.read_bytes())
    start = len(data) * 7 // 10
    data[start : start + len(data) // 10] = bytes(len(data) // 10)
    path.write_bytes(bytes(data))


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
