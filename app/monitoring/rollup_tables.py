"""Hourly rollups of the prediction log (app/monitoring/rollups.py): the Monitoring page reads
them instead of the raw rows for complete hours, so that a week costs 168 rows per version."""

from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class PredictionRollup(SQLModel, table=True):
    """One version's logged predictions of one hour, counted as the figures count them
    (app/monitoring/aggregates.py). `stale` is set when feedback changed a row of the hour
    after it was rolled up: the figures read that hour from the log until it is rolled again."""

    __tablename__ = "prediction_rollup"
    __table_args__ = (UniqueConstraint("version_id", "hour", name="uq_prediction_rollup_version_hour"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", ondelete="CASCADE")
    # The hour's start (UTC).
    hour: datetime = Field(index=True)
    predictions: int
    errors: int
    cache_hits: int
    feedback: int
    correct: int
    # {label: served predictions}, {confidence bin: served predictions}, {latency bin: ...};
    # bins as in app/monitoring/aggregates.py, keys as text (JSON's).
    labels: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    confidence: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    latency: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    stale: bool = False
    rolled_at: datetime = Field(default_factory=utcnow)


class RollupProgress(SQLModel, table=True):
    """How far the rollups reach: every hour before `rolled_until` has been rolled up (an hour
    with no row before it had no logged prediction). One row."""

    __tablename__ = "prediction_rollup_progress"

    id: int | None = Field(default=None, primary_key=True)
    rolled_until: datetime
    updated_at: datetime = Field(default_factory=utcnow)
