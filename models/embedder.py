"""Sentence embeddings with onnxruntime + tokenizers + numpy (no torch at runtime).

Reproduces sentence-transformers' all-MiniLM-L6-v2 pipeline:

* tokenize with the model's WordPiece tokenizer, truncating to ``max_length``
  word pieces *including* [CLS]/[SEP] (256 for all-MiniLM-L6-v2, from its
  ``sentence_bert_config.json``; note the tokenizer.json in the source package
  says 128, which sentence-transformers overrides);
* run the BERT encoder (ONNX) to get token embeddings;
* mean-pool over the attention mask, then L2-normalise.

One ``Embedder`` holds one ``InferenceSession`` and may be shared by any number
of threads: after ``load`` nothing in it is mutated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from models.manifest import ModelManifest
from models.runtime import default_threads, open_model, release_freed_memory

__all__ = ["Embedder", "default_threads"]


class Embedder:
    """Thread-safe ONNX sentence embedder. Build one with ``Embedder.load``."""

    manifest: ModelManifest
    load_seconds: float
    dimensions: int
    threads: int
    model_dir: Path

    def __init__(
        self,
        *,
        model_dir: Path,
        manifest: ModelManifest,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        threads: int,
        load_seconds: float,
    ) -> None:
        self.model_dir = model_dir
        self.manifest = manifest
        self._session = session
        self._tokenizer = tokenizer
        self.threads = threads
        self.load_seconds = load_seconds
        self.dimensions = manifest.dimensions
        self._input_names = frozenset(i.name for i in session.get_inputs())
        outputs = [o.name for o in session.get_outputs()]
        self._output_name = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise ValueError(f"{model_dir / manifest.file}: ONNX graph lacks inputs {sorted(missing)}")

    @classmethod
    def load(cls, model_dir: Path | str, *, threads: int | None = None) -> Embedder:
        """Load the model built in ``model_dir`` (see models.build.build_models)."""
        started = time.perf_counter()
        model_dir = Path(model_dir)
        # No arena: it would keep the largest batch's intermediate tensors for the life of the
        # process (+270 MB after 32 long texts, measured here); without it the batch costs the same.
        manifest, session, tokenizer, threads = open_model(model_dir, task="embedding", threads=threads, arena=False)
        release_freed_memory()
        # Whatever tokenizer.json says, use the sentence-transformers settings:
        # truncate to max_length word pieces, pad per batch ourselves.
        tokenizer.enable_truncation(max_length=manifest.max_length)
        tokenizer.no_padding()
        return cls(
            model_dir=model_dir,
            manifest=manifest,
            session=session,
            tokenizer=tokenizer,
            threads=threads,
            load_seconds=time.perf_counter() - started,
        )

    # ------------------------------------------------------------------ API

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed ``texts``; returns float32 of shape (len(texts), dimensions), rows L2-normalised.

        Rows are in the order of ``texts``. Internally texts are sorted by token
        length and padded per batch, which changes nothing but speed.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("embed() takes a sequence of strings, not a single string; wrap it in a list")
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"embed() takes a sequence of strings, got {type(texts).__name__}") from None
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"embed() takes strings only: item {i} is {type(text).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out

        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: a memory problem shows up at once
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._embed_batch([encodings[i] for i in idx], int(lengths[idx].max()))
        release_freed_memory()
        return out

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Word pieces per text after truncation (incl. [CLS]/[SEP])."""
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    # ------------------------------------------------------------ internals

    def _embed_batch(self, encodings: list, width: int) -> np.ndarray:
        n = len(encodings)
        input_ids = np.zeros((n, width), dtype=np.int64)  # [PAD] id is 0
        attention = np.zeros((n, width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            k = len(enc.ids)
            input_ids[row, :k] = enc.ids
            attention[row, :k] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)

        (hidden,) = self._session.run([self._output_name], feeds)
        hidden = hidden.astype(np.float32, copy=False)
        if hidden.shape[-1] != self.dimensions:
            raise RuntimeError(f"model output has {hidden.shape[-1]} dimensions, manifest says {self.dimensions}")
        # Same as sentence_transformers.models.Pooling (mean) + Normalize.
        mask = attention[:, :, None].astype(np.float32)
        summed = (hidden * mask).sum(axis=1)
        counts = np.clip(mask.sum(axis=1), 1e-9, None)
        pooled = summed / counts
        if self.manifest.normalize:
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, 1e-12)
        return pooled

    def __repr__(self) -> str:
        return (
            f"Embedder({self.manifest.name!r}, dim={self.dimensions}, "
            f"max_length={self.manifest.max_length}, threads={self.threads})"
        )
