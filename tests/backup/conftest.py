"""Databases of their own for backup, restore and upgrade tests: empty, at no migration."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from app.core.db import make_engine
from tests.predict.conftest import builtin_models  # noqa: F401 - the round trip backs up a registry


@contextmanager
def empty_postgresql(suffix: str) -> Iterator[str]:
    """A new database beside STRATA_TEST_DATABASE_URL's, dropped afterwards."""
    url = os.environ.get("STRATA_TEST_DATABASE_URL")
    if not url:
        pytest.skip("STRATA_TEST_DATABASE_URL is not set")
    server = make_url(url)
    target = server.set(database=f"{server.database}_{suffix}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")
    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    try:
        yield target.render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        engine.dispose()


def empty_database(backend: str, tmp_path: Path, suffix: str):
    if backend == "sqlite":
        return _sqlite(tmp_path / f"{suffix}.db")
    return empty_postgresql(suffix)


@contextmanager
def _sqlite(path: Path) -> Iterator[str]:
    yield f"sqlite:///{path}"
