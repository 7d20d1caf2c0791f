"""prediction monitoring: a public prediction id for feedback, the error of a failed
prediction, the feedback label (who, when), and a (version_id, at) index for the figures

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prediction_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("error", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("feedback_label", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("feedback_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("feedback_by", sa.String(length=320), nullable=True))
        batch_op.create_index(batch_op.f("ix_prediction_log_prediction_id"), ["prediction_id"], unique=True)
        batch_op.create_index("ix_prediction_log_version_id_at", ["version_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_log_version_id_at")
        batch_op.drop_index(batch_op.f("ix_prediction_log_prediction_id"))
        batch_op.drop_column("feedback_by")
        batch_op.drop_column("feedback_at")
        batch_op.drop_column("feedback_label")
        batch_op.drop_column("error")
        batch_op.drop_column("prediction_id")
