"""Input sketches: what drift detection keeps of an input instead of the input itself.

A sketch is three figures per text:

* ``length``: its length in characters;
* ``oov_share``: the share of its words that are out of the embedder's vocabulary. A word is a
  run of letters (``[^\\W\\d_]+``), lower-cased; the vocabulary is the embedder's WordPiece
  vocabulary taken as whole words (its entries without the ``##`` continuation mark that
  consist of letters only, about 21,000 for all-MiniLM-L6-v2). A text without words has 0;
* ``projection``: the text's sentence embedding projected to ``SKETCH_DIMENSIONS`` numbers by
  a fixed random Gaussian matrix (seed ``PROJECTION_SEED``, scaled by 1/sqrt(dimensions), so
  distances between embeddings are kept on average: Johnson-Lindenstrauss). Stored as float16
  (2 bytes a number): 32 bytes a row, enough for mean-shift and domain-classifier tests,
  too little to recover the text.

The same matrix must project the training data's texts and the logged ones: it depends only on
the seed and the embedder's dimensions, never on the data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from models.embedder import Embedder

__all__ = ["PROJECTION_SEED", "SKETCH_DIMENSIONS", "InputSketch", "Sketcher", "decode_projections"]

SKETCH_DIMENSIONS = 16
PROJECTION_SEED = 20240613
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class InputSketch:
    length: int
    oov_share: float
    projection: bytes  # SKETCH_DIMENSIONS float16 numbers, little-endian


@lru_cache(maxsize=4)
def projection_matrix(dimensions: int) -> np.ndarray:
    rng = np.random.default_rng(PROJECTION_SEED)
    return (rng.standard_normal((dimensions, SKETCH_DIMENSIONS)) / np.sqrt(SKETCH_DIMENSIONS)).astype(np.float32)


def project(vectors: np.ndarray) -> np.ndarray:
    """Embeddings (n, dimensions) to their sketches (n, SKETCH_DIMENSIONS), float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors @ projection_matrix(vectors.shape[1])


def encode_projection(row: np.ndarray) -> bytes:
    return np.asarray(row, dtype="<f2").tobytes()


def decode_projections(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored projections (each blob one or more rows) back to an (n, SKETCH_DIMENSIONS) float64 array."""
    return np.frombuffer(b"".join(blobs), dtype="<f2").reshape(-1, SKETCH_DIMENSIONS).astype(np.float64)


@lru_cache(maxsize=4)
def _vocabulary(tokenizer_path: Path) -> frozenset[str]:
    vocabulary = Tokenizer.from_file(str(tokenizer_path)).get_vocab()
    return frozenset(piece for piece in vocabulary if not piece.startswith("##") and _WORD.fullmatch(piece))


class Sketcher:
    """Sketches texts with one embedder. Thread-safe (the embedder is; nothing else changes)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.vocabulary = _vocabulary(embedder.model_dir / embedder.manifest.tokenizer_file)

    def oov_share(self, text: str) -> float:
        words = _WORD.findall(text.lower())
        if not words:
            return 0.0
        return sum(word not in self.vocabulary for word in words) / len(words)

    def sketch(self, texts: Sequence[str], projections: Sequence[bytes | None] | None = None) -> list[InputSketch]:
        """One sketch per text. `projections` (one per text, encoded, or None) are those the
        serving runtime already computed from the embedding it used; only the missing ones are
        embedded here, in one batch."""
        texts = list(texts)
        known = list(projections) if projections is not None else [None] * len(texts)
        missing = [index for index, projection in enumerate(known) if projection is None]
        if missing:
            computed = project(self.embedder.embed([texts[index] for index in missing]))
            for index, row in zip(missing, computed, strict=True):
                known[index] = encode_projection(row)
        return [
            InputSketch(length=len(text), oov_share=round(self.oov_share(text), 4), projection=projection)
            for text, projection in zip(texts, known, strict=True)
        ]
