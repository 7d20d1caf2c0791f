"""drift detection: input sketches (and, when kept, the input) on the prediction log; per model
the reference window and thresholds; per trained version its stored reference; drift results

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("input_length", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("input_oov_share", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("input_sketch", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("input_text", sa.Text(), nullable=True))
    op.create_table(
        "drift_config",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("reference_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("reference_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registered_model.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model_id"),
    )
    op.create_table(
        "drift_reference",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("histograms", sa.JSON(), nullable=False),
        sa.Column("projections", sa.LargeBinary(), nullable=False),
        sa.Column("computed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id"),
    )
    op.create_table(
        "drift_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("window_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("window_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("reference_rows", sa.Integer(), nullable=False),
        sa.Column("current_rows", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("crossed", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("triggered_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["registered_model.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_drift_result_computed_at"), "drift_result", ["computed_at"], unique=False)
    op.create_index(op.f("ix_drift_result_model_id"), "drift_result", ["model_id"], unique=False)
    op.create_index(op.f("ix_drift_result_version_id"), "drift_result", ["version_id"], unique=False)
    op.create_index(
        "ix_drift_result_version_id_computed_at", "drift_result", ["version_id", "computed_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_drift_result_version_id_computed_at", table_name="drift_result")
    op.drop_index(op.f("ix_drift_result_version_id"), table_name="drift_result")
    op.drop_index(op.f("ix_drift_result_model_id"), table_name="drift_result")
    op.drop_index(op.f("ix_drift_result_computed_at"), table_name="drift_result")
    op.drop_table("drift_result")
    op.drop_table("drift_reference")
    op.drop_table("drift_config")
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_column("input_text")
        batch_op.drop_column("input_sketch")
        batch_op.drop_column("input_oov_share")
        batch_op.drop_column("input_length")
