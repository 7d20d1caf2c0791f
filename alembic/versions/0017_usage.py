"""usage analytics per user, key and model: the usage_event log

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("user_email", sa.String(length=320), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_usage_event_at"), "usage_event", ["at"], unique=False)
    op.create_index("ix_usage_event_user_id_at", "usage_event", ["user_id", "at"], unique=False)
    op.create_index("ix_usage_event_api_key_id_at", "usage_event", ["api_key_id", "at"], unique=False)
    op.create_index("ix_usage_event_model_at", "usage_event", ["model", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_usage_event_model_at", table_name="usage_event")
    op.drop_index("ix_usage_event_api_key_id_at", table_name="usage_event")
    op.drop_index("ix_usage_event_user_id_at", table_name="usage_event")
    op.drop_index(op.f("ix_usage_event_at"), table_name="usage_event")
    op.drop_table("usage_event")
