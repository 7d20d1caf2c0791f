"""hourly rollups of the prediction log: prediction_rollup (per version and hour) and how far
the rollups reach (prediction_rollup_progress)

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("hour", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("predictions", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.Column("feedback", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("confidence", sa.JSON(), nullable=False),
        sa.Column("latency", sa.JSON(), nullable=False),
        sa.Column("stale", sa.Boolean(), nullable=False),
        sa.Column("rolled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "hour", name="uq_prediction_rollup_version_hour"),
    )
    op.create_index(op.f("ix_prediction_rollup_hour"), "prediction_rollup", ["hour"], unique=False)
    op.create_table(
        "prediction_rollup_progress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rolled_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("prediction_rollup_progress")
    op.drop_index(op.f("ix_prediction_rollup_hour"), table_name="prediction_rollup")
    op.drop_table("prediction_rollup")
