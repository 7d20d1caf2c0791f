from datetime import datetime
from typing import Any

from pydantic import BaseModel

from jobs.tables import Job


class JobIn(BaseModel):
    kind: str
    params: dict[str, Any] = {}


class JobOut(BaseModel):
    id: str
    kind: str
    params: dict[str, Any]
    status: str
    progress: float
    message: str
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    created_by: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        return cls.model_validate(job, from_attributes=True)


class JobKindOut(BaseModel):
    kind: str
    title: str
    minimum_role: str
