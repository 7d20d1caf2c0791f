"""Rows written behind the requests that produce them: each event loop keeps the rows of a
log in memory and writes them in one transaction about once a second, because a transaction
per request would cost more than many requests themselves. A crash loses at most that second.

Each log (the prediction log, the usage log) is one `WriteBehind`; `discard_all()` drops
every log's waiting rows (tests switch databases between them)."""

import asyncio
from collections.abc import Callable, Sequence

import structlog
from sqlmodel import Session, SQLModel

from app.core.db import run_in_session

FLUSH_SECONDS = 1.0

log = structlog.get_logger("strata.write_behind")

_logs: list["WriteBehind"] = []


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
            await run_in_session(self.insert, rows=rows)
        except Exception:  # noqa: BLE001 - a log must never fail the requests it records
            log.exception("write_behind.failed", log_name=self.name, rows=len(rows))

    async def write_pending(self) -> None:
        """Writes this event loop's waiting rows now (a reader needs what was just recorded)."""
        loop_id = id(asyncio.get_running_loop())
        flusher = self._flushers.pop(loop_id, None)
        if flusher is not None:
            # Still in the dict, so still asleep: it has not taken the rows, which are written here.
            flusher.cancel()
        rows = self._pending.pop(loop_id, [])
        if rows:
            await run_in_session(self.insert, rows=rows)

    def discard(self) -> None:
        for task in self._flushers.values():
            task.cancel()
        self._flushers.clear()
        self._pending.clear()


def discard_all() -> None:
    """Drops every log's rows not written yet."""
    for write_behind in _logs:
        write_behind.discard()
