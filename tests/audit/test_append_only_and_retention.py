"""The audit log is append-only: no route or page handler can change or delete an entry, the
database itself refuses an UPDATE, and only the retention job deletes, only what is past
STRATA_AUDIT_RETENTION_DAYS."""

import inspect
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from app.api import build_api
from app.audit.jobs import prune_audit_log
from app.audit.service import record
from app.audit.tables import AuditEntry
from app.core.db import get_engine, session_scope
from app.core.time import utcnow
from tests.audit.conftest import entries
from tests.conftest import REPO
from tests.ui.test_event_handlers import all_states


def test_no_route_writes_to_the_audit_log():
    """Every route of the API (its OpenAPI document): the only ones about the audit log read it."""
    paths = build_api().openapi()["paths"]
    audit_routes = {(path, method) for path, methods in paths.items() for method in methods if "audit" in path.lower()}
    assert audit_routes == {("/api/v1/audit", "get"), ("/api/v1/audit.csv", "get")}


def test_no_code_but_the_retention_job_deletes_or_updates_entries():
    """The one delete of AuditEntry is the retention sweep's; no module updates one, no Reflex
    handler of any page reaches them but the Audit page's reads."""
    writers = []
    for path in sorted((REPO / "app").rglob("*.py")) + sorted((REPO / "jobs").rglob("*.py")):
        source = path.read_text()
        for needle in ("delete(AuditEntry", "update(AuditEntry", "AuditEntry.__table__"):
            if needle in source:
                writers.append((str(path.relative_to(REPO)), needle))
    assert writers == [("app/audit/service.py", "delete(AuditEntry")]
    from app.audit import service

    assert "delete(AuditEntry" in inspect.getsource(service.delete_batch_older_than)
    handlers = {
        f"{state.__name__}.{name}" for state in all_states() for name in state.event_handlers if "audit" in name.lower()
    }
    assert handlers == set()
    from app.audit.state import AuditState

    assert set(AuditState.event_handlers) == {"setvar", "load", "edit_filter", "search", "clear_filters", "go_to_page"}


def _one_entry(actor) -> int:
    with session_scope() as db_session:
        entry = record(db_session=db_session, actor=actor, action="dataset.created", target="reviews")
        db_session.flush()
        return entry.id


def test_the_database_refuses_to_rewrite_an_entry(db, staff):
    entry_id = _one_entry(staff)
    for change in ("target = 'forged'", "actor = 'someone@else'", "at = at", "actor_id = NULL, detail = 'x'"):
        with pytest.raises(DBAPIError, match="append-only"), get_engine().begin() as connection:
            connection.execute(text(f"UPDATE audit_entry SET {change} WHERE id = :id"), {"id": entry_id})
    [entry] = entries("dataset.created")
    assert (entry.target, entry.actor, entry.detail) == ("reviews", "staff@x.io", None)


def test_a_deleted_users_entries_keep_their_email(db, staff):
    entry_id = _one_entry(staff)
    with get_engine().begin() as connection:
        connection.execute(text('DELETE FROM "user" WHERE id = :id'), {"id": staff.id})
    with session_scope() as db_session:
        entry = db_session.get(AuditEntry, entry_id)
    assert (entry.actor_id, entry.actor, entry.target) == (None, "staff@x.io", "reviews")


async def test_retention_deletes_only_entries_past_the_setting(db, staff, monkeypatch):
    now = utcnow()
    with session_scope() as db_session:
        for days in (400, 366, 364, 1):
            db_session.add(
                AuditEntry(
                    at=now - timedelta(days=days),
                    actor=staff.email,
                    action="dataset.created",
                    target_type="dataset",
                    target=f"{days} days old",
                )
            )
    monkeypatch.setenv("STRATA_AUDIT_RETENTION_DAYS", "0")
    from tests.conftest import reset_caches

    reset_caches()
    assert await prune_audit_log() == 0  # 0 keeps everything
    monkeypatch.setenv("STRATA_AUDIT_RETENTION_DAYS", "365")
    reset_caches()
    from app.audit import jobs

    # One row a batch, so that the sweep goes on past its first batch.
    monkeypatch.setattr(jobs, "delete_batch_older_than", _one_at_a_time(jobs.delete_batch_older_than))
    assert await prune_audit_log() == 2

    with session_scope() as db_session:
        kept = sorted(
            e.target for e in db_session.exec(select(AuditEntry).where(AuditEntry.action == "dataset.created"))
        )
    assert kept == ["1 days old", "364 days old"]
    pruned = entries("audit_log.pruned")
    assert len(pruned) == 1 and pruned[0].detail.startswith("2 entries older than 365 days")


def _one_at_a_time(delete_batch):
    def delete_one(**kwargs):
        return delete_batch(**kwargs, limit=1)

    return delete_one


def test_the_worker_runs_the_retention_daily_once_across_workers():
    from jobs.worker import worker_settings

    [job] = [job for job in worker_settings()["cron_jobs"] if job.name == "audit.retention"]
    assert job.unique and job.hour == 3 and job.minute == 0 and job.second == 0
