from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.schedules.service import ScheduleView


class ScheduleIn(BaseModel):
    name: str = Field(max_length=100)
    action: Literal["batch", "training"]
    # Five fields, UTC: minute hour day-of-month month day-of-week, e.g. "0 3 * * mon".
    cron: str = Field(max_length=200)
    # The action's arguments, without a version (a schedule runs on the dataset's newest):
    # batch: dataset, text_column, model, model_version?;
    # training: dataset, text_column, label_column, model_name, holdout_fraction?, seed?.
    params: dict[str, Any]


class ScheduleOut(BaseModel):
    id: int
    name: str
    action: str
    cron: str
    params: dict[str, Any]
    paused: bool
    # UTC; null while paused.
    next_run_at: datetime | None
    last_fired_at: datetime | None
    # The Job of the last run it started (read it at /api/v1/jobs/{id}) and that job's status.
    last_job_id: str | None
    last_job_status: str | None
    # "started job …", "skipped: the previous run … is still running" or "failed: <reason>".
    last_outcome: str | None
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, view: ScheduleView) -> "ScheduleOut":
        schedule = view.schedule
        return cls(
            id=schedule.id,
            name=schedule.name,
            action=schedule.action,
            cron=schedule.cron,
            params=schedule.params,
            paused=schedule.paused,
            next_run_at=schedule.next_run_at,
            last_fired_at=schedule.last_fired_at,
            last_job_id=schedule.last_job_id,
            last_job_status=view.last_job_status,
            last_outcome=schedule.last_outcome,
            created_by=view.created_by_email,
            created_at=schedule.created_at,
        )
