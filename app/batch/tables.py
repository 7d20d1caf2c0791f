from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class BatchRun(SQLModel, table=True):
    """One batch scoring of a dataset version with one model version; its Job (jobs.tables)
    carries status, progress and cancellation. The dataset and model are also kept by name
    and number, so that the record still reads right after either is deleted."""

    __tablename__ = "batch_run"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", max_length=32, index=True)
    dataset_version_id: int | None = Field(
        default=None, foreign_key="dataset_version.id", index=True, ondelete="SET NULL"
    )
    dataset_name: str = Field(max_length=100)
    dataset_version_number: int
    text_column: str = Field(max_length=300)
    model_name: str = Field(max_length=100)
    # The version actually used, resolved when the batch starts: production, or the pinned one.
    model_version_id: int | None = Field(default=None, foreign_key="model_version.id", ondelete="SET NULL")
    model_version_number: int
    chunk_size: int
    rows_total: int
    rows_done: int = 0
    rows_failed: int = 0
    # Of the attempt that scored the last chunk (a resumed attempt starts counting afresh).
    rows_per_second: float | None = None
    result_dataset_version_id: int | None = Field(default=None, foreign_key="dataset_version.id", ondelete="SET NULL")
    created_by: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, index=True)


class BatchChunk(SQLModel, table=True):
    """A checkpoint: chunk `index` (rows index*chunk_size and on) is scored and its output file
    is in place. Written in the transaction that counts its rows, after the file was renamed
    into place; a resumed job scores only the chunks without a row here."""

    __tablename__ = "batch_chunk"
    __table_args__ = (UniqueConstraint("batch_run_id", "index", name="uq_batch_chunk_index"),)

    id: int | None = Field(default=None, primary_key=True)
    batch_run_id: int = Field(foreign_key="batch_run.id", index=True, ondelete="CASCADE")
    index: int
    rows: int
    rows_failed: int
    # Relative to the data directory; the sha256 is checked when the result is assembled.
    path: str = Field(max_length=500)
    sha256: str = Field(max_length=64)
    # The job attempt that scored it: a resumed job's chunks carry the later attempt.
    attempt: int
    created_at: datetime = Field(default_factory=utcnow)
