"""The runtime embedder (onnxruntime + tokenizers) behaves like sentence-transformers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.embedder import Embedder

MIXED = [
    "Hi",
    "The quarterly report is due next Friday, please send your numbers before Wednesday.",
    "ok",
    "Die Straßenbahn fährt über die Brücke.",
    " ".join(["A long sentence about databases, vectors and search engines."] * 12),
    "",
    "東京タワー",
    "How do I reset my password?",
    " ".join(["Another very long text that goes well past the truncation limit."] * 40),
    "🎉",
]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.atleast_2d(a).astype(np.float64)
    b = np.atleast_2d(b).astype(np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_output_is_normalised_float32_of_model_width(embedder: Embedder):
    out = embedder.embed(MIXED)
    assert out.dtype == np.float32
    assert out.shape == (len(MIXED), 384) == (len(MIXED), embedder.dimensions)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(out).all()


def test_matches_recorded_pytorch_reference(embedder: Embedder, model_dir: Path):
    with np.load(model_dir / embedder.manifest.reference_file) as ref:
        sentences = [str(s) for s in ref["sentences"]]
        expected = ref["embeddings"]
    assert len(sentences) >= 20
    got = embedder.embed(sentences)
    assert cosine(got, expected).min() >= 0.999


def test_similar_sentences_score_higher_than_unrelated(embedder: Embedder):
    a, b, c = embedder.embed(
        [
            "The cat sits on the mat.",
            "A kitten is resting on a rug.",
            "Quarterly revenue grew by twelve percent.",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2
    assert float(a @ b) > float(b @ c) + 0.2


def test_batch_and_single_give_the_same_vectors(embedder: Embedder):
    batched = embedder.embed(MIXED, batch_size=32)
    single = np.vstack([embedder.embed([t], batch_size=1) for t in MIXED])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    small_batches = embedder.embed(MIXED, batch_size=3)
    np.testing.assert_allclose(batched, small_batches, atol=1e-5)


def test_order_is_preserved_with_mixed_lengths(embedder: Embedder):
    forward = embedder.embed(MIXED, batch_size=4)
    backward = embedder.embed(MIXED[::-1], batch_size=4)
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)
    for i, text in enumerate(MIXED):
        assert cosine(forward[i], embedder.embed([text]))[0] > 0.9999, (i, text[:30])
    # distinct texts give distinct rows (nothing was shuffled into the wrong slot)
    sims = forward @ forward.T
    assert (np.argmax(sims, axis=1) == np.arange(len(MIXED))).all()


def test_empty_input_gives_empty_matrix(embedder: Embedder):
    out = embedder.embed([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


def test_non_string_input_is_rejected_clearly(embedder: Embedder):
    with pytest.raises(TypeError, match="item 1 is int"):
        embedder.embed(["fine", 42])
    with pytest.raises(TypeError, match="item 0 is NoneType"):
        embedder.embed([None])
    with pytest.raises(TypeError, match="single string"):
        embedder.embed("a bare string is not a list of texts")
    with pytest.raises(ValueError, match="batch_size"):
        embedder.embed(["x"], batch_size=0)


def test_truncates_at_256_word_pieces_like_sentence_transformers(embedder: Embedder):
    words = [f"word{i}" for i in range(400)]  # each is several word pieces
    long_text = " ".join(words)
    assert embedder.token_counts([long_text]) == [256]
    # Text beyond the limit is ignored...
    a, b = embedder.embed([long_text, long_text + " completely different ending about volcanoes"])
    assert cosine(a, b)[0] > 0.99999
    # ...but pieces 129-256 count (the package's tokenizer.json would cut at 128).
    head = " ".join(["the committee approved the budget for the new library"] * 16)  # 146 pieces
    assert 128 < embedder.token_counts([head])[0] < 256
    c, d = embedder.embed([head, head + " volcanoes erupting lava earthquakes tsunami"])
    assert cosine(c, d)[0] < 0.9999


def test_concurrent_threads_get_the_same_results_as_serial(embedder: Embedder):
    texts = [t for t in MIXED if len(t) < 200] + [MIXED[4]]  # one long text, to vary shapes
    chunks = [texts[i:] + texts[:i] for i in range(0, len(texts), 2)]
    serial = [embedder.embed(chunk, batch_size=4) for chunk in chunks]
    start = threading.Barrier(8)

    def work(i: int) -> tuple[int, np.ndarray]:
        if i < 8:
            start.wait()
        k = i % len(chunks)
        return k, embedder.embed(chunks[k], batch_size=4)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(max(16, 2 * len(chunks)))))
    for k, got in results:
        np.testing.assert_allclose(got, serial[k], atol=1e-6)


def test_load_reports_manifest_and_timing(model_dir: Path):
    e = Embedder.load(model_dir, threads=1)
    assert e.manifest.name == "all-MiniLM-L6-v2"
    assert e.load_seconds > 0
    assert e.dimensions == 384
    with pytest.raises(ValueError):
        Embedder.load(model_dir, threads=0)
