import json
from dataclasses import dataclass

import reflex as rx

from app.auth import service as auth_service
from app.auth.state import AuthState, acting_user, guarded
from app.auth.tables import Role
from app.core.db import run_in_session
from app.core.settings import get_settings
from app.jobs_board import service
from app.jobs_board.tables import Job, JobStatus
from app.system.jobs import VERIFY_MODELS
from app.ui.live import refresh_while_open
from jobs.registry import all_specs, get_spec

REFRESH_SECONDS = 1.0


@dataclass
class JobRow:
    id: str
    title: str
    status: str
    percent: int
    message: str
    error: str
    attempts: str
    started_by: str
    created: str
    active: bool
    retryable: bool


@dataclass
class ModelCheckRow:
    """One model's line of a "Verify models" report."""

    name: str
    sha256: str
    sha256_ok: bool
    parity: str
    parity_ok: bool
    latency: str
    throughput: str
    passed: bool
    error: str


def _throughput(report: dict) -> str:
    """Sentences/s for an embedder, tokens/s for a chat model."""
    if report.get("throughput_per_s") is not None:
        return f"{report['throughput_per_s']:.0f} sentences/s"
    if report.get("tokens_per_s") is not None:
        return f"{report['tokens_per_s']:.1f} tokens/s"
    return "not measured"


def _model_checks(result: dict | None) -> list[ModelCheckRow]:
    return [
        ModelCheckRow(
            name=report["name"],
            sha256=report["sha256_actual"] or "",
            sha256_ok=report["sha256_ok"],
            parity=f"{report['parity_min_cosine']:.6f} (≥ {report['parity_threshold']})"
            if report.get("parity_min_cosine") is not None
            else "not measured",
            parity_ok=bool(report.get("parity_ok")),
            latency=f"{report['latency_ms_p50']:.1f} ms p50, {report['latency_ms_p95']:.1f} ms p95"
            if report.get("latency_ms_p50") is not None
            else "not measured",
            throughput=_throughput(report),
            passed=report["passed"],
            error=report.get("error") or "",
        )
        for report in (result or {}).get("models", [])
    ]


@dataclass
class JobKindOption:
    kind: str
    title: str


def _row(job: Job, emails: dict[int, str]) -> JobRow:
    spec = get_spec(job.kind)
    status = JobStatus(job.status)
    return JobRow(
        id=job.id,
        title=spec.title if spec else job.kind,
        status=job.status,
        percent=round(job.progress * 100),
        message=job.message,
        error=job.error or "",
        attempts=f"{job.attempts}/{job.max_attempts}",
        started_by=emails.get(job.created_by, "—"),
        created=f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        active=not status.finished,
        retryable=status in (JobStatus.failed, JobStatus.cancelled),
    )


def _list_rows(*, db_session) -> list[JobRow]:
    emails = {user.id: user.email for user in auth_service.list_users(db_session=db_session)}
    return [_row(job, emails) for job in service.list_jobs(db_session=db_session, limit=50)]


class JobsState(AuthState):
    jobs: list[JobRow] = []
    kinds: list[JobKindOption] = [JobKindOption(spec.kind, spec.title) for spec in all_specs()]
    selected_id: str = ""
    selected_result: str = ""
    selected_model_checks: list[ModelCheckRow] = []
    watching: bool = False

    @rx.event
    @guarded(Role.staff)
    async def start(self, kind: str):
        job = await service.enqueue(kind=kind, params={}, user=acting_user(), max_attempts=get_settings().job_max_tries)
        self.jobs = await run_in_session(_list_rows)
        return rx.toast.info(f"{get_spec(job.kind).title} queued.")

    @rx.event
    @guarded(Role.staff)
    async def cancel(self, job_id: str):
        await run_in_session(service.request_cancel, job_id=job_id, user=acting_user())
        self.jobs = await run_in_session(_list_rows)

    @rx.event
    @guarded(Role.staff)
    async def retry(self, job_id: str):
        await service.retry(job_id=job_id, user=acting_user(), max_attempts=get_settings().job_max_tries)
        self.jobs = await run_in_session(_list_rows)

    @rx.event
    @guarded(Role.staff)
    async def select(self, job_id: str):
        job = await run_in_session(service.get_job, job_id=job_id)
        self.selected_id = job.id
        self._show_result(job)

    def _show_result(self, job: Job) -> None:
        self.selected_result = json.dumps(job.result, indent=2) if job.result else ""
        self.selected_model_checks = _model_checks(job.result) if job.kind == VERIFY_MODELS else []

    @rx.event(background=True)
    async def watch(self):
        await refresh_while_open(self, Role.staff, self._refresh, REFRESH_SECONDS)

    async def _refresh(self) -> None:
        rows = await run_in_session(_list_rows)
        async with self:
            self.jobs = rows
            selected = next((row for row in rows if row.id == self.selected_id), None)
            result_missing = not self.selected_result
        if selected and not selected.active and result_missing:
            job = await run_in_session(service.get_job, job_id=selected.id)
            async with self:
                self._show_result(job)

    @rx.event
    def stop_watching(self):
        self.watching = False
