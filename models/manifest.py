"""Model manifests: what was built, from what, and how well it matched the original.

Each built model lives in its own folder under the models directory::

    <models_dir>/all-MiniLM-L6-v2/
        model.onnx          the exported graph
        tokenizer.json      tokenizers (Rust) file used at runtime
        reference.npz       PyTorch reference embeddings + the sentences
        manifest.json       this manifest

This module only needs pydantic, numpy and the standard library: it is safe to
import from the web app, the worker and the build step alike.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

EMBEDDER_NAME = "all-MiniLM-L6-v2"
GENERATOR_NAME = "SmolLM2-135M-Instruct"
MANIFEST_FILENAME = "manifest.json"

__all__ = [
    "EMBEDDER_NAME",
    "GENERATOR_NAME",
    "MANIFEST_FILENAME",
    "ManifestError",
    "ModelManifest",
    "Parity",
    "list_manifests",
    "model_dirs",
    "read_manifest",
    "row_cosines",
    "sha256_file",
    "write_manifest",
]


class ManifestError(RuntimeError):
    """A model folder has no manifest, or its manifest cannot be read."""


class Parity(BaseModel):
    """How closely the exported model reproduces the PyTorch original."""

    model_config = ConfigDict(extra="forbid")

    min_cosine: float
    mean_cosine: float
    n_sentences: int
    threshold: float


class ModelManifest(BaseModel):
    """Everything needed to load, verify and explain one built model."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    task: str = "embedding"
    file: str = Field(description="ONNX file name, relative to the model folder")
    size_bytes: int
    sha256: str
    opset: int
    source_package: str
    source_version: str
    exporter: dict[str, str | None] = Field(
        description="versions of optimum-onnx, optimum, transformers, torch, onnxruntime, ..."
    )
    inputs_fingerprint: str
    dimensions: int
    max_length: int = Field(description="truncation length in word pieces, incl. [CLS]/[SEP]")
    pooling: str = "mean"
    normalize: bool = True
    tokenizer_file: str = "tokenizer.json"
    parity: Parity
    reference_file: str
    created_at: datetime
    extra_files: list[str] = Field(default_factory=list, description="other files the runtime loads")

    def artifact_files(self) -> list[str]:
        """Every file the runtime and the verifier read, the ONNX graph first."""
        return [self.file, self.tokenizer_file, self.reference_file, *self.extra_files]


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` with the same row of ``b`` (float64, safe for zero rows)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def sha256_file(path: Path | str, *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(model_dir: Path | str) -> ModelManifest:
    """Read ``<model_dir>/manifest.json``; raise ManifestError if missing or corrupt."""
    path = Path(model_dir) / MANIFEST_FILENAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(
            f"no model manifest at {path}: the model has not been built (run the model build step)"
        ) from None
    except OSError as exc:
        raise ManifestError(f"cannot read model manifest {path}: {exc}") from exc
    try:
        return ModelManifest.model_validate_json(raw)
    except ValidationError as exc:
        raise ManifestError(f"corrupt model manifest {path} ({exc.error_count()} problem(s)): {exc}") from exc


def write_manifest(model_dir: Path | str, manifest: ModelManifest) -> Path:
    """Write the manifest as pretty JSON (callers make the folder swap atomic)."""
    path = Path(model_dir) / MANIFEST_FILENAME
    path.write_text(
        json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False) + "\n",
        encoding="utf-8",
    )
    return path


def model_dirs(models_dir: Path | str) -> list[Path]:
    """Model folders under ``models_dir`` (sorted), i.e. sub-folders holding a manifest.

    Hidden folders (temporary build folders start with a dot) are ignored.
    """
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_FILENAME).is_file()
    )


def list_manifests(models_dir: Path | str) -> list[ModelManifest]:
    """Manifests of all built models under ``models_dir``, sorted by folder name.

    Folders without a manifest are not models and are skipped; a folder whose
    manifest is corrupt raises ManifestError (it means the artifact was tampered
    with, since builds are written atomically).
    """
    return [read_manifest(d) for d in model_dirs(models_dir)]
