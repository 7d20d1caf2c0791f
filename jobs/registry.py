"""Job kinds known to Strata. Domains declare theirs in app/<domain>/jobs.py with
@job_kind; the worker and the web both import those modules to see them."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.auth.tables import Role


class ProgressReporter(Protocol):
    async def __call__(self, fraction: float, message: str = "") -> None: ...


@dataclass(frozen=True)
class JobContext:
    job_id: str
    params: dict[str, Any]
    attempt: int
    report: ProgressReporter


class JobFailure(Exception):
    """A job's clean failure: the message is for users, the result is kept for them to read."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


JobFunction = Callable[[JobContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class JobSpec:
    kind: str
    title: str
    minimum_role: Role
    run: JobFunction


_SPECS: dict[str, JobSpec] = {}


def job_kind(kind: str, *, title: str, minimum_role: Role) -> Callable[[JobFunction], JobFunction]:
    def register(run: JobFunction) -> JobFunction:
        _SPECS[kind] = JobSpec(kind=kind, title=title, minimum_role=minimum_role, run=run)
        return run

    return register


def get_spec(kind: str) -> JobSpec | None:
    return _SPECS.get(kind)


def all_specs() -> list[JobSpec]:
    return sorted(_SPECS.values(), key=lambda spec: spec.title)
