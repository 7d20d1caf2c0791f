"""Running a parser of untrusted files in a child process with limits: a hostile file
(a zip bomb, a billion columns, a parser bug that loops) fails only its own request. The
child gets a CPU time and an address space limit, no environment (no secrets), and is
killed at the wall-clock limit or when `on_wait` raises (a cancelled job, say).

The function run is named as "module:function"; it takes the request dict and returns a
JSON-serialisable dict. An InvalidInput it raises comes back as the same error."""

import importlib
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from app.core.errors import InvalidInput

log = structlog.get_logger("strata.sandbox")

POLL_SECONDS = 0.2
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
# -I: the child ignores PYTHON* variables, the user's site and the current folder, and
# finds Strata on the path it is given here.
_CHILD_COMMAND = (
    f"import sys; sys.path.insert(0, {_PROJECT_ROOT!r}); from app.core.sandbox import child_main; child_main()"
)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_seconds: float
    memory_mb: int
    # What the messages call the input ("this file", "this dataset").
    subject: str = "this file"


def run_isolated(
    entry: str, request: dict, *, limits: SandboxLimits, on_wait: Callable[[], None] | None = None
) -> dict:
    """entry(request) in a child process within `limits`. Raises InvalidInput for an input
    that breaks them, or with the message of the InvalidInput the function raised."""
    envelope = {
        "entry": entry,
        "request": request,
        # The CPU limit backs the wall-clock one should this process die without killing the child.
        "cpu_seconds": max(1, math.ceil(limits.timeout_seconds)),
        "memory_bytes": limits.memory_mb * 1024 * 1024,
    }
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD_COMMAND],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={},
    )
    deadline = time.monotonic() + limits.timeout_seconds
    send = json.dumps(envelope).encode()
    try:
        while True:
            try:
                remaining = max(0.0, deadline - time.monotonic())
                out, err = process.communicate(send, timeout=min(POLL_SECONDS, remaining))
                break
            except subprocess.TimeoutExpired:
                send = None  # the request went in on the first call
                if on_wait is not None:
                    on_wait()
                if time.monotonic() >= deadline:
                    raise InvalidInput(_too_slow(limits)) from None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return _reply(entry, process.returncode, out, err, limits)


def _too_slow(limits: SandboxLimits) -> str:
    return (
        f"Reading {limits.subject} took longer than {limits.timeout_seconds:g} s, the limit;"
        " split it into smaller files."
    )


def _reply(entry: str, returncode: int, out: bytes, err: bytes, limits: SandboxLimits) -> dict:
    if returncode == -signal.SIGXCPU:
        raise InvalidInput(_too_slow(limits))
    if returncode != 0:
        log.warning("sandbox.crashed", entry=entry, returncode=returncode, stderr=err[-2000:].decode(errors="replace"))
        raise InvalidInput(
            f"Strata's reader stopped on {limits.subject} (exit status {returncode}); it may need more than"
            f" {limits.memory_mb} MB of memory or be damaged."
        )
    reply = json.loads(out)
    if "error" in reply:
        raise InvalidInput(reply["error"])
    if reply.get("out_of_memory"):
        raise InvalidInput(
            f"Reading {limits.subject} needs more than {limits.memory_mb} MB of memory, the limit;"
            " split it into smaller files."
        )
    return reply["result"]


def child_main() -> None:
    """The child: reads its envelope from stdin, writes {"result": ...} or {"error": ...} to
    stdout. A crash exits non-zero with the trace on stderr."""
    envelope = json.loads(sys.stdin.buffer.read())
    cpu = envelope["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (envelope["memory_bytes"], envelope["memory_bytes"]))
    module_name, _, function_name = envelope["entry"].partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        reply = {"result": function(envelope["request"])}
    except InvalidInput as exc:
        reply = {"error": exc.message}
    except MemoryError:
        reply = {"out_of_memory": True}
    sys.stdout.buffer.write(json.dumps(reply).encode())
    sys.stdout.flush()
    # Nothing is left to clean up, and native libraries' threads (pyarrow's) can abort the
    # interpreter's shutdown after the reply is out: leave without one.
    os._exit(0)
