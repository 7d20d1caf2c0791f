"""Rows written behind the requests that produce them: each event loop keeps the rows of a
log in memory and writes them in one transaction about once a second, because a transaction
per request would cost more than many requests themselves. A crash loses at most that second.

Each log (the prediction log, the usage log) is one `WriteBehind`; `discard_all()` drops
every log's waiting rows and waits for the writes under way (tests switch databases between
them)."""

import asyncio
import contextvars
import threading
from collections.abc import Callable, Sequence

import structlog
from sqlmodel import Session, SQLModel

from app.core.db import session_scope

FLUSH_SECONDS = 1.0

log = structlog.get_logger("strata.write_behind")

_logs: list["WriteBehind"] = []
# Writes under way in worker threads; a write's task may outlive its event loop, its thread does not.
_writing = threading.Condition()
_writes_under_way = 0


def add_rows(*, db_session: Session, rows: list[SQLModel]) -> None:
    db_session.add_all(rows)


class WriteBehind:
    """One log's rows waiting per event loop, and the task per loop that writes them with
    `insert(db_session=..., rows=...)` in a worker thread (by default: add them as they are;
    a log may compute more per row there, off the request path)."""

    def __init__(
        self,
        name: str,
        insert: Callable[..., None] = add_rows,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.name = name
        self.insert = insert
        self.flush_seconds = flush_seconds
        self._pending: dict[int, list[SQLModel]] = {}
        self._flushers: dict[int, asyncio.Task] = {}
        _logs.append(self)

    def add(self, rows: Sequence[SQLModel]) -> None:
        """Queues rows for this loop's next write; starts the write's timer if none runs."""
        loop_id = id(asyncio.get_running_loop())
        self._pending.setdefault(loop_id, []).extend(rows)
        if loop_id not in self._flushers:
            self._flushers[loop_id] = asyncio.create_task(self._flush_later(loop_id))

    async def _flush_later(self, loop_id: int) -> None:
        await asyncio.sleep(self.flush_seconds)
        rows = self._pending.pop(loop_id, [])
        self._flushers.pop(loop_id, None)
        try:
            await self._write(rows)
        except Exception:  # noqa: BLE001 - a log must never fail the requests it records
            log.exception("write_behind.failed", log_name=self.name, rows=len(rows))

    async def _write(self, rows: list[SQLModel]) -> None:
        """Writes ``rows`` in one transaction, in a worker thread that counts itself under way."""
        global _writes_under_way

        def write() -> None:
            global _writes_under_way
            try:
                with session_scope() as db_session:
                    self.insert(db_session=db_session, rows=rows)
            finally:
                with _writing:
                    _writes_under_way -= 1
                    _writing.notify_all()

        with _writing:
            _writes_under_way += 1
        try:
            # Submitted here, so the thread runs (and counts itself done) even if this task is cancelled.
            under_way = asyncio.get_running_loop().run_in_executor(None, contextvars.copy_context().run, write)
        except BaseException:
            with _writing:
                _writes_under_way -= 1
            raise
        await under_way

    async def write_pending(self) -> None:
        """Writes this event loop's waiting rows now (a reader needs what was just recorded)."""
        loop_id = id(asyncio.get_running_loop())
        flusher = self._flushers.pop(loop_id, None)
        if flusher is not None:
            # Still in the dict, so still asleep: it has not taken the rows, which are written here.
            flusher.cancel()
        rows = self._pending.pop(loop_id, [])
        if rows:
            await self._write(rows)

    def discard(self) -> None:
        for task in self._flushers.values():
            task.cancel()
        self._flushers.clear()
        self._pending.clear()


def discard_all(wait_seconds: float = 10.0) -> None:
    """Drops every log's rows not written yet, and waits for the writes under way to end."""
    for write_behind in _logs:
        write_behind.discard()
    with _writing:
        _writing.wait_for(lambda: _writes_under_way == 0, timeout=wait_seconds)
