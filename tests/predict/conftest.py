"""The predict domain's fixtures: a registry holding the built-in models, on a clean Redis."""

import pytest

from models.classifier import CLASSIFIER_NAME


def forget_process_state() -> None:
    """Routes, loaded versions, Redis clients and the Redis-down mark are kept per process."""
    from app.core.clients import reset_loop_redis
    from app.predict import service
    from app.predict.routing import routes
    from app.predict.serving import reset_runtime

    service.discard_pending_logs()
    routes.invalidate()
    reset_runtime()
    reset_loop_redis()


@pytest.fixture
def registry(db, redis_url, settings):
    from app.core.db import session_scope
    from app.predict.service import ensure_builtin_models

    forget_process_state()
    with session_scope() as db_session:
        added = ensure_builtin_models(db_session=db_session, settings=settings)
    assert CLASSIFIER_NAME in added, "run `make test-models`: the classifier calibration is missing"
    yield
    forget_process_state()
