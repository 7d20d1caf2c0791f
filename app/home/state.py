"""The Home page's state: the signed-in user's summary (app/home/service.py), as rows to show."""

from dataclasses import dataclass
from datetime import datetime

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.roles import Role
from app.home import service
from app.home.schemas import HomeSummary, JobLine


@dataclass
class ConversationLink:
    title: str
    updated: str
    href: str


@dataclass
class KnowledgeBaseLine:
    name: str
    ingesting: int


@dataclass
class DocumentLine:
    filename: str
    knowledge_base: str
    status: str


@dataclass
class ModelLine:
    name: str
    kind: str
    version: str
    canary: str
    logged_today: int


@dataclass
class JobRow:
    title: str
    status: str
    detail: str
    when: str


@dataclass
class AlertLine:
    model: str
    kind: str
    message: str
    opened: str


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else ""


def _job_row(job: JobLine) -> JobRow:
    if job.status == "failed":
        return JobRow(job.title, job.status, job.error or job.message, _when(job.finished_at or job.created_at))
    return JobRow(job.title, job.status, f"{job.progress:.0%} {job.message}".strip(), _when(job.created_at))


class HomeState(AuthState):
    conversations: list[ConversationLink] = []
    knowledge_bases: list[KnowledgeBaseLine] = []
    ingesting: list[DocumentLine] = []
    # "" when every ingesting document is listed; else how many more there are.
    more_ingesting: str = ""
    models: list[ModelLine] = []
    traffic_note: str = ""
    running_jobs: list[JobRow] = []
    failed_jobs: list[JobRow] = []
    alerts: list[AlertLine] = []
    loaded: bool = False

    def _apply(self, summary: HomeSummary) -> None:
        self.conversations = [
            ConversationLink(c.title, _when(c.updated_at), f"/ask?conversation={c.id}") for c in summary.conversations
        ]
        self.knowledge_bases = [KnowledgeBaseLine(kb.name, kb.ingesting) for kb in summary.knowledge_bases]
        self.ingesting = [DocumentLine(d.filename, d.knowledge_base, d.status) for d in summary.ingesting]
        hidden = summary.ingesting_total - len(summary.ingesting)
        self.more_ingesting = f"and {hidden} more on the Knowledge page" if hidden > 0 else ""
        self.models = [
            ModelLine(
                name=m.name,
                kind=m.kind,
                version=f"v{m.production_version}",
                canary=f"v{m.canary_version} takes {m.canary_percent}%" if m.canary_version else "",
                logged_today=m.logged_today,
            )
            for m in summary.models
        ]
        self.traffic_note = (
            f"Today since {summary.traffic_since:%H:%M} UTC, counted in the prediction log: a "
            f"{summary.sample_rate:.0%} sample of API predictions, and every Predict page prediction."
        )
        self.running_jobs = [_job_row(job) for job in summary.running_jobs or []]
        self.failed_jobs = [_job_row(job) for job in summary.failed_jobs or []]
        self.alerts = [AlertLine(a.model, a.kind, a.message, _when(a.opened_at)) for a in summary.alerts]
        self.loaded = True

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        self._apply(await run_in_session(service.summary, actor=acting_user()))
