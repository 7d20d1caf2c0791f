"""Job kinds known to Strata. Domains declare theirs in app/<domain>/jobs.py with
@job_kind; the worker and the web both import those modules to see them."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlmodel import Session

from app.core.roles import Actor, Role


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
# Which of these jobs' parameters name something the actor may see (a document of a knowledge
# base they may read, ...): one answer per parameter set, in order, from one database trip.
AccessCheck = Callable[[Session, Actor, list[dict[str, Any]]], list[bool]]


@dataclass(frozen=True)
class JobSpec:
    kind: str
    title: str
    minimum_role: Role
    run: JobFunction
    # False for jobs a domain starts itself (an upload's ingestion): nobody starts or retries
    # them by hand, since their parameters point at records the domain created for them.
    manual: bool = True
    may_access: AccessCheck | None = None


_SPECS: dict[str, JobSpec] = {}


def job_kind(
    kind: str, *, title: str, minimum_role: Role, manual: bool = True, may_access: AccessCheck | None = None
) -> Callable[[JobFunction], JobFunction]:
    def register(run: JobFunction) -> JobFunction:
        _SPECS[kind] = JobSpec(
            kind=kind, title=title, minimum_role=minimum_role, run=run, manual=manual, may_access=may_access
        )
        return run

    return register


def get_spec(kind: str) -> JobSpec | None:
    return _SPECS.get(kind)


def all_specs() -> list[JobSpec]:
    return sorted(_SPECS.values(), key=lambda spec: spec.title)
