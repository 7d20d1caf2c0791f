"""The Home page, through its handler as the browser calls it: each user sees what they may
see of conversations, knowledge bases, models and their traffic, alerts and (staff) jobs."""

from datetime import UTC, datetime, time, timedelta

import pytest
from reflex.istate.data import HeaderData, ReflexURL, URLData
from sqlalchemy import insert, select

import app.job_kinds  # noqa: F401 - registers the job kinds, as the web and worker do
from app.alerts import service as alerts
from app.ask import service as ask
from app.ask.state import AskState
from app.core.db import session_scope
from app.home import service
from app.home.state import HomeState
from app.knowledge.tables import Document, KnowledgeBase
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel
from jobs.tables import Job, JobStatus
from models.classifier import CLASSIFIER_NAME
from models.manifest import EMBEDDER_NAME
from tests.predict.test_state import send, signed_in

pytestmark = pytest.mark.usefixtures("builtin_models")


def _knowledge_base(name: str, reader_roles: list[str], documents: dict[str, str]) -> tuple[int, list[int]]:
    """A knowledge base with documents in the given statuses, as uploads leave them: its id
    and its documents' ids."""
    with session_scope() as db_session:
        kb = KnowledgeBase(name=name, reader_roles=reader_roles, collection=f"kb-{name.lower().replace(' ', '-')}")
        db_session.add(kb)
        db_session.flush()
        rows = [
            Document(
                knowledge_base_id=kb.id,
                filename=filename,
                status=status,
                size_bytes=5,
                sha256=f"{index:064d}",
                stored_path=f"x/{filename}",
            )
            for index, (filename, status) in enumerate(documents.items())
        ]
        db_session.add_all(rows)
        db_session.flush()
        return kb.id, [row.id for row in rows]


def _conversations(user, titles: list[str], knowledge_base_id: int) -> list[int]:
    ids = []
    for title in titles:
        with session_scope() as db_session:
            conversation_id, _ = ask.record_question(
                db_session=db_session,
                actor=user,
                conversation_id=None,
                question=title,
                knowledge_base_ids=[knowledge_base_id],
            )
        ids.append(conversation_id)
    return ids


def _job(job_id: str, kind: str, status: JobStatus, **fields) -> None:
    with session_scope() as db_session:
        db_session.add(Job(id=job_id, kind=kind, status=status.value, **fields))


@pytest.fixture
def company(staff, viewer):
    """Three knowledge bases (one for viewers and staff, one for staff, one for admins only),
    conversations of the viewer and of staff, and jobs in every status."""
    handbook, _ = _knowledge_base(
        "Handbook", ["viewer", "staff"], {"leave.pdf": "ready", "travel.pdf": "queued", "expenses.docx": "ingesting"}
    )
    _knowledge_base("Staff notes", ["staff"], {"rota.txt": "queued"})
    _, (board_minutes,) = _knowledge_base("Board", [], {"minutes.txt": "ingesting"})
    viewer_titles = [f"Question {number}" for number in range(7)]
    viewer_ids = _conversations(viewer, viewer_titles, handbook)
    _conversations(staff, ["What does the staff rota say?"], handbook)
    _job("verify-running", "verify_models", JobStatus.running, progress=0.4, message="Checking the embedder")
    _job("verify-failed", "verify_models", JobStatus.failed, error="Parity below 0.999 for the embedder")
    _job("verify-done", "verify_models", JobStatus.succeeded)
    # An ingestion into the admins' knowledge base: staff may not see it.
    _job("board-ingest", "ingest_document", JobStatus.running, params={"document_id": board_minutes})
    return viewer_titles, viewer_ids


async def test_a_viewer_sees_their_latest_conversations_and_the_knowledge_bases_they_may_read(viewer, company):
    viewer_titles, viewer_ids = company
    page = signed_in(HomeState, viewer)
    await send(page, HomeState.load)

    # The five latest of their own conversations, newest first, each opening on the Ask page.
    assert [c.title for c in page.conversations] == viewer_titles[::-1][:5]
    assert page.conversations[0].href == f"/ask?conversation={viewer_ids[-1]}"
    assert "What does the staff rota say?" not in [c.title for c in page.conversations]
    # Only the knowledge base viewers may read, with its documents still ingesting.
    assert [(kb.name, kb.ingesting) for kb in page.knowledge_bases] == [("Handbook", 2)]
    assert sorted((d.filename, d.knowledge_base, d.status) for d in page.ingesting) == [
        ("expenses.docx", "Handbook", "ingesting"),
        ("travel.pdf", "Handbook", "queued"),
    ]
    # No jobs section for viewers.
    assert page.running_jobs == [] and page.failed_jobs == []
    with session_scope() as db_session:
        summary = service.summary(db_session=db_session, actor=viewer)
    assert summary.running_jobs is None and summary.failed_jobs is None


async def test_staff_see_running_and_failed_jobs_they_may_read(staff, company):
    page = signed_in(HomeState, staff)
    await send(page, HomeState.load)

    assert [(job.title, job.status) for job in page.running_jobs] == [("Verify models", "running")]
    assert "40%" in page.running_jobs[0].detail and "Checking the embedder" in page.running_jobs[0].detail
    assert [(job.title, job.detail) for job in page.failed_jobs] == [
        ("Verify models", "Parity below 0.999 for the embedder")
    ]
    assert [(kb.name, kb.ingesting) for kb in page.knowledge_bases] == [("Handbook", 2), ("Staff notes", 1)]
    assert [c.title for c in page.conversations] == ["What does the staff rota say?"]


async def test_the_home_link_opens_the_conversation_on_the_ask_page(viewer, company):
    viewer_titles, viewer_ids = company
    ask_page = signed_in(AskState, viewer)
    ask_page.rx_router_url = URLData.from_url(ReflexURL(f"http://localhost/ask?conversation={viewer_ids[2]}"))
    await send(ask_page, AskState.load)
    assert ask_page.conversation_id == viewer_ids[2]
    assert [turn.text for turn in ask_page.turns] == [viewer_titles[2]]


def _version_id(model_name: str) -> int:
    with session_scope() as db_session:
        return db_session.execute(
            select(ModelVersion.id).join(RegisteredModel).where(RegisteredModel.name == model_name)
        ).scalar_one()


async def test_models_in_production_show_the_predictions_logged_today(viewer, settings, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_sample_rate", 0.25)
    midnight = datetime.combine(datetime.now(UTC).date(), time(), UTC)
    version_id = _version_id(CLASSIFIER_NAME)
    moments = [midnight + timedelta(minutes=1)] * 3 + [midnight - timedelta(minutes=1)] * 2
    rows = [
        {"at": at, "version_id": version_id, "caller": "u:1", "latency_ms": 3.0, "label": "sport", "input_sha256": "0"}
        for at in moments
    ]
    rows.append({**rows[0], "label": None, "error": "RuntimeError"})  # failed: not traffic served
    with session_scope() as db_session:
        db_session.execute(insert(PredictionLog), rows)

    page = signed_in(HomeState, viewer)
    await send(page, HomeState.load)
    today = {model.name: model.logged_today for model in page.models}
    assert today == {CLASSIFIER_NAME: 3, EMBEDDER_NAME: 0}
    assert next(m for m in page.models if m.name == CLASSIFIER_NAME).version == "v1"
    assert "25% sample of API predictions" in page.traffic_note


async def test_an_open_alert_shows_to_everyone_until_staff_acknowledge_it(viewer, staff):
    with session_scope() as db_session:
        model_id = db_session.execute(
            select(RegisteredModel.id).where(RegisteredModel.name == CLASSIFIER_NAME)
        ).scalar_one()
        alert = alerts.open_alert(
            db_session=db_session,
            model_id=model_id,
            version_id=None,
            kind="error_rate",
            statistic="error_rate",
            value=0.2,
            threshold=0.05,
            message="20% of predictions failed in the last hour (threshold 5%).",
        )
        alert_id = alert.id
    page = signed_in(HomeState, viewer)
    await send(page, HomeState.load)
    assert [(a.model, a.kind, a.message) for a in page.alerts] == [
        (CLASSIFIER_NAME, "error_rate", "20% of predictions failed in the last hour (threshold 5%).")
    ]

    with session_scope() as db_session:
        alerts.acknowledge(db_session=db_session, actor=staff, alert_id=alert_id)
    await send(page, HomeState.load)
    assert page.alerts == []


async def test_a_new_user_gets_an_empty_home_and_a_signed_out_one_is_sent_to_sign_in(viewer):
    page = signed_in(HomeState, viewer)
    await send(page, HomeState.load)
    assert page.loaded and page.conversations == [] and page.knowledge_bases == [] and page.alerts == []
    assert page.ingesting == [] and page.more_ingesting == ""
    page.rx_router_headers = HeaderData(cookie="")
    refusal = await send(page, HomeState.load)
    assert "/login" in str(refusal)
