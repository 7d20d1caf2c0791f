"""the append-only audit log: who changed what, when, from which address, old and new values;
a trigger refuses to rewrite an entry (the one update let through is the foreign key's
SET NULL of actor_id when the acting user is deleted; the retention job's DELETE is not
an update)

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every column but actor_id, which may only go from a user to NULL.
_KEPT_COLUMNS = ("id", "at", "actor", "address", "action", "target_type", "target_id", "target", "detail")
_JSON_COLUMNS = ("old_values", "new_values")
APPEND_ONLY = "audit entries are append-only"


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("target_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("target_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("old_values", sa.JSON(), nullable=True),
        sa.Column("new_values", sa.JSON(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_entry_action_at", ["action", "at"], unique=False)
        batch_op.create_index("ix_audit_entry_actor_id_at", ["actor_id", "at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        changed = " OR ".join(
            [f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _KEPT_COLUMNS]
            + [f"NEW.{c}::text IS DISTINCT FROM OLD.{c}::text" for c in _JSON_COLUMNS]
        )
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
            BEGIN
                IF NEW.actor_id IS NOT NULL OR {changed} THEN
                    RAISE EXCEPTION '{APPEND_ONLY}';
                END IF;
                RETURN NEW;
            END
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry "
            "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()"
        )
    else:
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in (*_KEPT_COLUMNS, *_JSON_COLUMNS))
        op.execute(
            f"""
            CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_entry
            WHEN NEW.actor_id IS NOT NULL OR {changed}
            BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END
            """
        )


def downgrade() -> None:
    # SQLite drops a table's triggers with it; PostgreSQL keeps the function.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    op.drop_table("audit_entry")
