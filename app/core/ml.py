"""The web process's in-memory models, loaded once on first use. Callers run these
functions in a worker thread, never on the event loop."""

import time
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from app.core.metrics import MODEL_INFERENCE_LATENCY
from app.core.settings import get_settings
from models.embedder import Embedder
from models.generator import Generator
from models.manifest import EMBEDDER_NAME, GENERATOR_NAME
from models.sketch import Sketcher


@lru_cache
def get_embedder() -> Embedder:
    return Embedder.load(get_settings().resolved_models_dir / EMBEDDER_NAME)


@lru_cache
def get_sketcher() -> Sketcher:
    """Input sketches for drift detection (models.sketch), with the process's embedder."""
    return Sketcher(get_embedder())


@lru_cache
def get_generator() -> Generator:
    return Generator.load(get_settings().resolved_models_dir / GENERATOR_NAME)


def embed(texts: Sequence[str]) -> np.ndarray:
    embedder = get_embedder()
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    MODEL_INFERENCE_LATENCY.labels(EMBEDDER_NAME).observe(time.perf_counter() - started)
    return vectors
