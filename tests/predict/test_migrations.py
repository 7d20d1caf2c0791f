"""Registry events written before imports stopped naming server paths lose those paths on upgrade."""

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import command
from app.core.db import make_engine
from app.core.migrations import alembic_config

OLD_EVENTS = [
    ("import_version", 2, "ONNX from /home/ops/private-models/minilm-v2/"),
    ("import_version", 3, "ONNX from ../relative/other"),
    ("promote", 2, "replaces version 1"),
]


def test_upgrading_removes_server_paths_from_old_import_events(tmp_path):
    url = f"sqlite:///{tmp_path / 'before.db'}"
    command.upgrade(alembic_config(url), "0006")
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO registered_model (id, name, kind, description, canary_percent, created_at)"
                " VALUES (1, 'all-MiniLM-L6-v2', 'embedder', '', 0, :now)"
            ),
            {"now": now},
        )
        connection.execute(
            sa.text(
                "INSERT INTO model_version (id, model_id, number, stage, artifact, sha256, size_bytes, source,"
                " metrics, labels, created_by, created_at) VALUES (1, 1, 2, 'staging', '/srv/data/predict/v2',"
                " :sha, 1, 'imported', '{}', '[]', 'admin@x.io', :now)"
            ),
            {"sha": "ab" * 32, "now": now},
        )
        for action, version, detail in OLD_EVENTS:
            connection.execute(
                sa.text(
                    'INSERT INTO registry_change (model_id, at, "user", action, version_number, detail)'
                    " VALUES (1, :now, 'admin@x.io', :action, :version, :detail)"
                ),
                {"now": now, "action": action, "version": version, "detail": detail},
            )
    command.upgrade(alembic_config(url), "head")
    with engine.connect() as connection:
        details = connection.execute(sa.text("SELECT detail FROM registry_change ORDER BY id")).scalars().all()
    engine.dispose()
    assert details == [
        "ONNX from folder 'minilm-v2' (sha256 abababababab)",
        "ONNX from folder 'other'",
        "replaces version 1",
    ]
