"""Serving a classifier trained in Strata (models.training): one ONNX model, no pickles.

The model describes itself in its ONNX metadata: the label names in output
order, what it takes as input, and which candidate it came from.

* ``input == "text"``: the graph takes the raw texts (a ``[N, 1]`` string tensor)
  and does its own TF-IDF tokenisation; nothing but onnxruntime runs.
* ``input == "embedding"``: the graph is a logistic-regression head over the
  built-in embedder's sentence vectors. The WordPiece tokenizer cannot run
  inside onnxruntime without onnxruntime-extensions, and the embedder is loaded
  (and its vectors cached and batched) by the serving process anyway, so the
  head is served together with that embedder instead of copying its 90 MB graph
  into every version. ``embedder_sha256`` names the embedder the head was fitted
  on; any other embedder is refused, since its vectors would mean something else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.embedder import Embedder
from models.runtime import default_threads, session_options

__all__ = ["INPUT_EMBEDDING", "INPUT_TEXT", "METADATA_PREFIX", "TrainedClassifier"]

INPUT_TEXT = "text"
INPUT_EMBEDDING = "embedding"
METADATA_PREFIX = "strata."


@dataclass(frozen=True)
class TrainedClassifier:
    """An ONNX session and what its metadata says. Shareable across threads."""

    labels: tuple[str, ...]
    input_kind: str
    candidate: str
    embedder_sha256: str | None
    session: ort.InferenceSession

    @classmethod
    def from_bytes(cls, model: bytes, *, threads: int | None = None) -> TrainedClassifier:
        session = ort.InferenceSession(
            model, sess_options=session_options(threads or default_threads()), providers=["CPUExecutionProvider"]
        )
        meta = session.get_modelmeta().custom_metadata_map
        try:
            labels = tuple(json.loads(meta[METADATA_PREFIX + "labels"]))
            input_kind = meta[METADATA_PREFIX + "input"]
            candidate = meta[METADATA_PREFIX + "candidate"]
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not a model trained by Strata: its ONNX metadata lacks {exc}") from None
        if input_kind not in (INPUT_TEXT, INPUT_EMBEDDING):
            raise ValueError(f"unknown model input kind {input_kind!r}")
        embedder_sha256 = meta.get(METADATA_PREFIX + "embedder_sha256") or None
        if input_kind == INPUT_EMBEDDING and embedder_sha256 is None:
            raise ValueError("an embedding head must name the embedder it was fitted on")
        return cls(labels, input_kind, candidate, embedder_sha256, session)

    @classmethod
    def load(cls, path: Path | str, *, threads: int | None = None) -> TrainedClassifier:
        return cls.from_bytes(Path(path).read_bytes(), threads=threads)

    def probabilities_from_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, labels) probabilities of a text model."""
        if self.input_kind != INPUT_TEXT:
            raise ValueError("this model takes embedder vectors: use probabilities_from_vectors")
        feed = np.array(list(texts), dtype=object).reshape(-1, 1)
        return self._run(feed, len(feed))

    def probabilities_from_vectors(self, vectors: np.ndarray, embedder_sha256: str) -> np.ndarray:
        """(texts, labels) probabilities of an embedding head, from ``embedder_sha256``'s vectors."""
        if self.input_kind != INPUT_EMBEDDING:
            raise ValueError("this model takes texts: use probabilities_from_texts")
        if embedder_sha256 != self.embedder_sha256:
            raise ValueError(
                f"this model was trained on embedder {self.embedder_sha256[:12]}, not {embedder_sha256[:12]}: retrain it"
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return self._run(vectors, len(vectors))

    def probabilities(self, texts: Sequence[str], embedder: Embedder | None = None) -> np.ndarray:
        """(texts, labels) probabilities whatever the input kind (an embedding head needs ``embedder``)."""
        if self.input_kind == INPUT_TEXT:
            return self.probabilities_from_texts(texts)
        if embedder is None:
            raise ValueError("this model needs the embedder it was trained on")
        return self.probabilities_from_vectors(embedder.embed(texts), embedder.manifest.sha256)

    def _run(self, feed: np.ndarray, rows: int) -> np.ndarray:
        if rows == 0:
            return np.empty((0, len(self.labels)), dtype=np.float32)
        (probabilities,) = self.session.run(["probabilities"], {self.session.get_inputs()[0].name: feed})
        return probabilities
