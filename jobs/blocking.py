"""Runs blocking (CPU-bound) work from a job in a thread, relaying its progress
to the Job row and a cancel request back into the thread."""

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

from jobs.registry import JobContext

T = TypeVar("T")

RELAY_INTERVAL_SECONDS = 0.2


class _CancelledInThread(Exception):
    pass


async def run_blocking(context: JobContext, fn: Callable[..., T], /, *args, **kwargs) -> T:
    """Calls fn(*args, on_progress=..., **kwargs) in a worker thread."""
    latest: list[tuple[float, str]] = [(0.0, "")]
    cancel = threading.Event()

    def on_progress(fraction: float, message: str = "") -> None:
        if cancel.is_set():
            raise _CancelledInThread
        latest[0] = (fraction, message)

    task = asyncio.create_task(asyncio.to_thread(fn, *args, on_progress=on_progress, **kwargs))
    reported = None
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=RELAY_INTERVAL_SECONDS)
            if latest[0] != reported:
                reported = latest[0]
                await context.report(*reported)
    except BaseException:
        cancel.set()
        # The thread stops at its next progress call; wait so it never outlives the job.
        await asyncio.wait({task})
        raise
    return task.result()
