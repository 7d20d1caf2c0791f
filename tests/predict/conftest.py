"""The predict domain's fixtures: a registry holding the built-in models, on a clean Redis."""

import shutil

import pytest

from models.classifier import CLASSIFIER_NAME


def forget_process_state() -> None:
    """Routes, loaded versions, Redis clients, the Redis-down mark and log rows waiting to be
    written (prediction and usage logs) are kept per process."""
    from app.core import write_behind
    from app.core.clients import reset_loop_redis
    from app.predict.routing import routes
    from app.predict.serving import reset_runtime

    write_behind.discard_all()
    routes.invalidate()
    reset_runtime()
    reset_loop_redis()


@pytest.fixture
def builtin_models(db, redis_url, settings):
    from app.auth.service import SYSTEM
    from app.core.db import session_scope
    from app.predict.registry import ensure_builtin_models

    forget_process_state()
    with session_scope() as db_session:
        added = ensure_builtin_models(db_session=db_session, actor=SYSTEM, settings=settings)
    assert CLASSIFIER_NAME in added, "run `make test-models`: the classifier calibration is missing"
    yield
    forget_process_state()


@pytest.fixture
def import_root(settings, tmp_path, monkeypatch):
    """The model import folder of this test (STRATA_MODEL_IMPORT_DIR)."""
    root = tmp_path / "imports"
    root.mkdir()
    monkeypatch.setattr(settings, "model_import_dir", root)
    return root


@pytest.fixture
def model_folder(import_root, settings):
    """A valid import: the built embedder copied into the import folder as `minilm-copy`."""
    from models.manifest import EMBEDDER_NAME

    folder = import_root / "minilm-copy"
    shutil.copytree(settings.resolved_models_dir / EMBEDDER_NAME, folder)
    return folder
