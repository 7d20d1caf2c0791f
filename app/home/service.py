"""Home: what a user opens each morning, composed from the other domains' services for the
acting user, each section by the rules of its own domain (the knowledge bases they may read,
their own conversations, jobs for staff). Every section is bounded: the latest few items."""

from datetime import UTC, datetime, time

from sqlmodel import Session

from app.alerts import service as alerts
from app.ask import service as ask
from app.auth.tables import User
from app.core.roles import Role, has_role, require_role
from app.core.settings import get_settings
from app.core.time import utcnow
from app.home.schemas import (
    AskableKnowledgeBase,
    HomeSummary,
    IngestingDocument,
    JobLine,
    OpenAlert,
    ProductionModel,
    RecentConversation,
)
from app.jobs_board import service as jobs_board
from app.knowledge import service as knowledge
from app.monitoring import service as monitoring
from app.predict import registry
from jobs.tables import Job, JobStatus

RECENT_CONVERSATIONS = 5
INGESTING_SHOWN = 10
JOBS_SHOWN = 5
ALERTS_SHOWN = 10


def _job_line(job: Job) -> JobLine:
    return JobLine(
        id=job.id,
        title=jobs_board.title_of(job.kind),
        status=job.status,
        progress=job.progress,
        message=job.message,
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def _knowledge(db_session: Session, actor: User) -> tuple[list[AskableKnowledgeBase], list[IngestingDocument], int]:
    bases = knowledge.readable_knowledge_bases(db_session=db_session, actor=actor)
    names = {kb.id: kb.name for kb in bases}
    unready = knowledge.unready_documents(db_session=db_session, knowledge_base_ids=list(names)) if bases else []
    unready.sort(key=lambda document: (document.created_at, document.id), reverse=True)
    counts: dict[int, int] = {}
    for document in unready:
        counts[document.knowledge_base_id] = counts.get(document.knowledge_base_id, 0) + 1
    return (
        [AskableKnowledgeBase(id=kb.id, name=kb.name, ingesting=counts.get(kb.id, 0)) for kb in bases],
        [
            IngestingDocument(
                id=document.id,
                filename=document.filename,
                knowledge_base=names[document.knowledge_base_id],
                status=document.status,
            )
            for document in unready[:INGESTING_SHOWN]
        ],
        len(unready),
    )


def _models(db_session: Session, actor: User, since: datetime) -> list[ProductionModel]:
    """Models with a production version (the ones serving traffic), with today's logged count."""
    served = monitoring.logged_since(db_session=db_session, actor=actor, since=since)
    return [
        ProductionModel(
            name=model.name,
            kind=model.kind,
            production_version=model.production_version,
            canary_version=model.canary_version,
            canary_percent=model.canary_percent,
            logged_today=served.get(model.name, 0),
        )
        for model in registry.list_models(db_session=db_session, actor=actor)
        if model.production_version is not None
    ]


def summary(*, db_session: Session, actor: User, now: datetime | None = None) -> HomeSummary:
    """The acting user's Home. Any signed-in user; the jobs sections only for staff."""
    require_role(actor, Role.viewer)
    now = now or utcnow()
    midnight = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    bases, ingesting, ingesting_total = _knowledge(db_session, actor)
    running = failed = None
    if has_role(actor, Role.staff):
        running = [
            _job_line(job)
            for job in jobs_board.list_jobs(
                db_session=db_session, actor=actor, limit=JOBS_SHOWN, statuses=(JobStatus.queued, JobStatus.running)
            )
        ]
        failed = [
            _job_line(job)
            for job in jobs_board.list_jobs(
                db_session=db_session, actor=actor, limit=JOBS_SHOWN, statuses=(JobStatus.failed,)
            )
        ]
    open_alerts = alerts.list_alerts(db_session=db_session, actor=actor, open_only=True, limit=ALERTS_SHOWN)
    return HomeSummary(
        user_name=actor.name or actor.email,
        role=actor.role,
        conversations=[
            RecentConversation(id=c.id, title=c.title, updated_at=c.updated_at)
            for c in ask.list_conversations(db_session=db_session, actor=actor, limit=RECENT_CONVERSATIONS)
        ],
        knowledge_bases=bases,
        ingesting=ingesting,
        ingesting_total=ingesting_total,
        models=_models(db_session, actor, midnight),
        traffic_since=midnight,
        sample_rate=get_settings().prediction_log_sample_rate,
        running_jobs=running,
        failed_jobs=failed,
        alerts=[
            OpenAlert(
                id=alert.id,
                model=alert.model,
                version=alert.version,
                kind=alert.kind,
                message=alert.message,
                opened_at=alert.opened_at,
            )
            for alert in open_alerts
        ],
    )
