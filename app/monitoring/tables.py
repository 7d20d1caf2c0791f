"""Drift detection's tables: per model, the staff's reference window and thresholds; per trained
version, the reference computed once from its training data; and one row per drift computation."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class DriftConfig(SQLModel, table=True):
    """What staff set for a model: the reference window (for versions without training data)
    and thresholds that replace the defaults (app/monitoring/drift_stats.DEFAULT_THRESHOLDS)."""

    __tablename__ = "drift_config"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_model.id", unique=True, ondelete="CASCADE")
    reference_since: datetime | None = None
    reference_until: datetime | None = None
    # {statistic: threshold}, only those that differ from the defaults.
    thresholds: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_by: str = Field(max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)


class DriftReference(SQLModel, table=True):
    """A trained version's reference, computed once from a sample of its training run's holdout
    rows (app/monitoring/drift_reference.py): the histograms of its own predictions and of the
    inputs' sketches, and the projections themselves for the embedding statistics."""

    __tablename__ = "drift_reference"

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", unique=True, ondelete="CASCADE")
    description: str = Field(max_length=500)
    rows: int
    # app/monitoring/drift_stats.Summary.histograms(): labels, confidence, length and oov counts.
    histograms: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # rows x SKETCH_DIMENSIONS float16 numbers (models.sketch).
    projections: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    computed_at: datetime = Field(default_factory=utcnow)


class DriftResult(SQLModel, table=True):
    """One drift computation of a model version: its current window against its reference."""

    __tablename__ = "drift_result"
    # The page and the scheduler read a version's latest result.
    __table_args__ = (Index("ix_drift_result_version_id_computed_at", "version_id", "computed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_model.id", index=True, ondelete="CASCADE")
    version_id: int = Field(foreign_key="model_version.id", index=True, ondelete="CASCADE")
    computed_at: datetime = Field(default_factory=utcnow, index=True)
    window_since: datetime
    window_until: datetime
    # What the window was compared with, in words ("training data: news v2, 1,000 holdout rows").
    reference: str = Field(max_length=500)
    reference_rows: int
    current_rows: int
    # "ok", "drift" (a statistic crossed its threshold) or "not_enough_data".
    status: str = Field(max_length=20)
    scores: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    thresholds: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    crossed: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Informative figures beside the scores: both label mixes, the chi-squared p-value, ...
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # "schedule" or the email of the staff member who asked.
    triggered_by: str = Field(max_length=320)
