from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class Dataset(SQLModel, table=True):
    __tablename__ = "dataset"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")


class DatasetVersion(SQLModel, table=True):
    """One immutable upload. Its file is stored once per content (by sha256) under the data
    directory, shared by every version with the same bytes; `profile` is what
    app/datasets/profiling.py found in it (schema, first rows, quality figures)."""

    __tablename__ = "dataset_version"
    __table_args__ = (UniqueConstraint("dataset_id", "number", name="uq_dataset_version_number"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True, ondelete="CASCADE")
    number: int
    sha256: str = Field(max_length=64, index=True)
    format: str = Field(max_length=16)  # csv, jsonl or parquet
    filename: str = Field(max_length=255)
    size_bytes: int
    row_count: int
    # [{"name", "type"}, ...]: the schema, apart from the profile so that listings need not load it.
    columns: list[dict] = Field(sa_column=Column(JSON, nullable=False))
    profile: dict = Field(sa_column=Column(JSON, nullable=False))
    stored_path: str = Field(max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")


class LineageKind(StrEnum):
    training_run = "training_run"
    model_version = "model_version"
    batch_job = "batch_job"
    batch_result = "batch_result"


# A version something still depends on cannot be deleted: a model version must stay
# reproducible from the data it was trained on.
PROTECTING_KINDS = frozenset({LineageKind.model_version})


class DatasetLineage(SQLModel, table=True):
    """What was made from a dataset version: written by training and batch jobs, shown on
    the version, and checked when it is deleted. `ref_id` is the other side's id in its own
    table (a training run, a model version, a batch job); `label` names it for people
    ("model spam version 3")."""

    __tablename__ = "dataset_lineage"

    id: int | None = Field(default=None, primary_key=True)
    dataset_version_id: int = Field(foreign_key="dataset_version.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=32)
    ref_id: str = Field(max_length=64)
    label: str = Field(max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
