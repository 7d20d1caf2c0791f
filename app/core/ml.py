"""The web process's in-memory models, loaded once on first use, off the event loop by callers."""

from functools import lru_cache

from app.core.settings import get_settings
from models.embedder import Embedder
from models.manifest import EMBEDDER_NAME


@lru_cache
def get_embedder() -> Embedder:
    return Embedder.load(get_settings().resolved_models_dir / EMBEDDER_NAME)
