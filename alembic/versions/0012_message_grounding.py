"""message grounding: each answer's grounding check (JSON), its support and flag as columns,
and an index on created_at for answer quality per generator over time

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grounding", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("grounding_support", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("grounding_flagged", sa.Boolean(), nullable=True))
        batch_op.create_index(batch_op.f("ix_message_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_created_at"))
        batch_op.drop_column("grounding_flagged")
        batch_op.drop_column("grounding_support")
        batch_op.drop_column("grounding")
