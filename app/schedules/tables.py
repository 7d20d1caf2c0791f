from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class ScheduleAction(StrEnum):
    batch = "batch"  # rescore the newest version of a dataset (app.batch.service.start_batch)
    training = "training"  # retrain on it (app.training.service.start_run)


class Schedule(SQLModel, table=True):
    """A cron expression (UTC) that starts a batch job or a training run on the newest version of
    a dataset. `params` are the action's arguments without a version; the runs it starts act as
    `created_by`. `next_run_at` is both what the page shows and the claim a firing worker takes
    (app/schedules/firing.py); `last_job_id` is the Job of the last run it started."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    action: str = Field(max_length=16)
    cron: str = Field(max_length=200)
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    paused: bool = False
    next_run_at: datetime | None = Field(default=None, index=True)
    last_fired_at: datetime | None = None
    last_job_id: str | None = Field(default=None, max_length=32, foreign_key="job.id", ondelete="SET NULL")
    last_outcome: str | None = Field(default=None, sa_column=Column(Text))
    created_by: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
