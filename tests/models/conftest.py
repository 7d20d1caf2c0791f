"""Fixtures for the ML model tests: the model is built once per session.

The build goes to $STRATA_MODELS_DIR (default <repo>/.cache/models) and is
skipped when the artifact there is already up to date, so only the first run
pays for the export (~20-30 s).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from models.build import BuildToolsMissing, build_models  # noqa: E402
from models.embedder import Embedder  # noqa: E402
from models.manifest import EMBEDDER_NAME, ModelManifest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODELS_DIR = REPO / ".cache" / "models"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return Path(os.environ.get("STRATA_MODELS_DIR") or DEFAULT_MODELS_DIR)


@pytest.fixture(scope="session")
def built_manifests(models_dir: Path) -> list[ModelManifest]:
    try:
        return build_models(models_dir, log=lambda line: print(f"[build] {line}"))
    except BuildToolsMissing as exc:
        pytest.skip(f"model not built and build extra not installed: {exc}")


@pytest.fixture(scope="session")
def model_dir(models_dir: Path, built_manifests: list[ModelManifest]) -> Path:
    return models_dir / EMBEDDER_NAME


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> Embedder:
    return Embedder.load(model_dir)


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the built model folder (tmp_path/<name>), safe to damage."""
    return Path(shutil.copytree(model_dir, tmp_path / EMBEDDER_NAME))
