from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class TrainingRun(SQLModel, table=True):
    """One training run: what was asked (dataset version, columns, model name, split), what came
    out (the chosen candidate, its holdout scores, the full report) and the model version it
    registered. Its status, progress and timing are its Job's (jobs.tables.Job), never copied here.

    accuracy, macro_f1 and duration_seconds are columns of their own (not only inside `report`)
    so that the Experiments list sorts and filters on them in the database."""

    __tablename__ = "training_run"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="job.id", max_length=32, index=True, ondelete="CASCADE")
    # Kept when the version is deleted (a run that registered a model version protects it):
    # the run stays listed, its data gone.
    dataset_version_id: int | None = Field(
        default=None, foreign_key="dataset_version.id", index=True, ondelete="SET NULL"
    )
    text_column: str = Field(max_length=300)
    label_column: str = Field(max_length=300)
    model_name: str = Field(max_length=100, index=True)
    holdout_fraction: float
    seed: int
    # models.training.CANDIDATES: which one won by cross-validated macro-F1; None until it finished.
    chosen: str | None = Field(default=None, max_length=32, index=True)
    accuracy: float | None = Field(default=None, index=True)
    macro_f1: float | None = Field(default=None, index=True)
    # Every candidate's cross-validated and holdout scores, the baseline, the parity check, the
    # split, the labels, the chosen one's confusion matrix and the rows left out (empty text or label).
    report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    model_version_id: int | None = Field(default=None, foreign_key="model_version.id", ondelete="SET NULL")
    duration_seconds: float | None = Field(default=None, index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_by: int | None = Field(default=None, foreign_key="user.id", index=True, ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, index=True)
