"""registry events without server paths: imports recorded before 0007 said "ONNX from <path>"

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence
from pathlib import PurePath

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_PREFIX = "ONNX from "
# What imports record since 0007 (app/predict/model_import.py): no path to hide.
NEW_PREFIX = "ONNX from import folder "


def upgrade() -> None:
    """Each old import event names only the folder's last component and the version's digest."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT c.id, c.detail, v.sha256 FROM registry_change c LEFT JOIN model_version v"
            " ON v.model_id = c.model_id AND v.number = c.version_number"
            " WHERE c.action = 'import_version'"
        )
    ).all()
    for change_id, detail, sha256 in rows:
        if not detail.startswith(OLD_PREFIX) or detail.startswith(NEW_PREFIX):
            continue
        name = PurePath(detail.removeprefix(OLD_PREFIX).rstrip("/\\")).name[:200] or "?"
        digest = f" (sha256 {sha256[:12]})" if sha256 else ""
        connection.execute(
            sa.text("UPDATE registry_change SET detail = :detail WHERE id = :id"),
            {"detail": f"ONNX from folder {name!r}{digest}", "id": change_id},
        )


def downgrade() -> None:
    """The paths are not kept anywhere: nothing to restore."""
