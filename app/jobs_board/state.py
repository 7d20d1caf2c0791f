import json
from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.roles import Role
from app.core.settings import get_settings
from app.jobs_board import service
from app.system.jobs import VERIFY_MODELS
from app.ui.live import refresh_while_open

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


FINISHED = ("succeeded", "failed", "cancelled")


def _row(job, emails: dict[int, str]) -> JobRow:
    return JobRow(
        id=job.id,
        title=service.title_of(job.kind),
        status=job.status,
        percent=round(job.progress * 100),
        message=job.message,
        error=job.error or "",
        attempts=f"{job.attempts}/{job.max_attempts}",
        started_by=emails.get(job.created_by, "—"),
        created=f"{job.created_at:%Y-%m-%d %H:%M:%S}",
        active=job.status not in FINISHED,
        retryable=job.status in ("failed", "cancelled") and service.is_manual(job.kind),
    )


def _list_rows(*, db_session, actor) -> list[JobRow]:
    jobs = service.list_jobs(db_session=db_session, actor=actor, limit=50)
    emails = service.starter_emails(db_session=db_session, jobs=jobs)
    return [_row(job, emails) for job in jobs]


class JobsState(AuthState):
    jobs: list[JobRow] = []
    kinds: list[JobKindOption] = [JobKindOption(spec.kind, spec.title) for spec in service.manual_kinds()]
    selected_id: str = ""
    selected_result: str = ""
    selected_model_checks: list[ModelCheckRow] = []
    watching: bool = False

    @rx.event
    @guarded(Role.staff)
    async def start(self, kind: str):
        job = await service.start_job(
            actor=acting_user(), kind=kind, params={}, max_attempts=get_settings().job_max_tries
        )
        self.jobs = await run_in_session(_list_rows, actor=acting_user())
        return rx.toast.info(f"{service.title_of(job.kind)} queued.")

    @rx.event
    @guarded(Role.staff)
    async def cancel(self, job_id: str):
        await run_in_session(service.cancel_job, actor=acting_user(), job_id=job_id)
        self.jobs = await run_in_session(_list_rows, actor=acting_user())

    @rx.event
    @guarded(Role.staff)
    async def retry(self, job_id: str):
        await service.retry_job(actor=acting_user(), job_id=job_id, max_attempts=get_settings().job_max_tries)
        self.jobs = await run_in_session(_list_rows, actor=acting_user())

    @rx.event
    @guarded(Role.staff)
    async def select(self, job_id: str):
        job = await run_in_session(service.get_job, actor=acting_user(), job_id=job_id)
        self.selected_id = job.id
        self._show_result(job)

    def _show_result(self, job) -> None:
        self.selected_result = json.dumps(job.result, indent=2) if job.result else ""
        self.selected_model_checks = _model_checks(job.result) if job.kind == VERIFY_MODELS else []

    @rx.event(background=True)
    async def watch(self):
        await refresh_while_open(self, Role.staff, self._refresh, REFRESH_SECONDS)

    async def _refresh(self) -> None:
        rows = await run_in_session(_list_rows, actor=acting_user())
        async with self:
            self.jobs = rows
            selected = next((row for row in rows if row.id == self.selected_id), None)
            result_missing = not self.selected_result
        if selected and not selected.active and result_missing:
            job = await run_in_session(service.get_job, actor=acting_user(), job_id=selected.id)
            async with self:
                self._show_result(job)

    @rx.event
    def stop_watching(self):
        self.watching = False
