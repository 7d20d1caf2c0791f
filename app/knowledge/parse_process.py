"""Parsing runs in a child process with limits, so a hostile file (deep nesting, a zip
bomb, thousands of pages, a parser bug that loops) fails only its own ingestion: the
child has a CPU time and an address space limit, and is killed at the wall-clock limit
or when the job is cancelled, so it never keeps holding a worker's slot."""

import json
import math
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from app.knowledge.parsing import ParsedDocument, ParseLimits, Section, UnreadableDocument, parse_document

if TYPE_CHECKING:
    from app.core.settings import Settings

log = structlog.get_logger("strata.knowledge")

# How often the waiting thread looks at the job: a cancel or a job timeout stops the child this quickly.
POLL_SECONDS = 0.2
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
# -I: the child ignores PYTHON* variables, the user's site and the current folder; it gets
# no environment at all (no secrets), and finds Strata on the path it is given here.
_CHILD_COMMAND = (
    f"import sys; sys.path.insert(0, {_PROJECT_ROOT!r}); "
    "from app.knowledge.parse_process import child_main; child_main()"
)


def parse_isolated(
    path: Path, filename: str, *, settings: "Settings", on_progress: Callable[[float, str], None]
) -> ParsedDocument:
    """parse_document on the file at `path`, in a child process within the parse limits.
    Raises UnreadableDocument for a file that breaks them; `on_progress` is called while
    waiting, and whatever it raises (a cancelled job) kills the child first."""
    if not path.is_file():
        raise UnreadableDocument("The uploaded file is missing from the data directory; upload it again.")
    timeout = settings.parse_timeout_seconds
    request = {
        "path": str(path),
        "filename": filename,
        "limits": ParseLimits.of(settings).__dict__,
        # The CPU limit backs the wall-clock one should this process die without killing the child.
        "cpu_seconds": max(1, math.ceil(timeout)),
        "memory_bytes": settings.parse_max_memory_mb * 1024 * 1024,
        "memory_mb": settings.parse_max_memory_mb,
    }
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", _CHILD_COMMAND],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={},
    )
    deadline = time.monotonic() + timeout
    send = json.dumps(request).encode()
    try:
        while True:
            try:
                out, err = process.communicate(send, timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                send = None  # the request went in on the first call
                on_progress(0.02, "Reading the file")
                if time.monotonic() >= deadline:
                    raise UnreadableDocument(_too_slow(timeout)) from None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return _reply(process.returncode, out, err, settings)


def _too_slow(timeout: float) -> str:
    return (
        f"Reading this file took longer than {timeout:g} s, the limit for one document;"
        " split it into smaller files or save it in a simpler format."
    )


def _reply(returncode: int, out: bytes, err: bytes, settings: "Settings") -> ParsedDocument:
    if returncode == -signal.SIGXCPU:
        raise UnreadableDocument(_too_slow(settings.parse_timeout_seconds))
    if returncode != 0:
        log.warning("document.parser_crashed", returncode=returncode, stderr=err[-2000:].decode(errors="replace"))
        raise UnreadableDocument(
            f"Strata's reader stopped on this file (exit status {returncode}); it may need more than"
            f" {settings.parse_max_memory_mb} MB of memory or be damaged."
        )
    reply = json.loads(out)
    if "error" in reply:
        raise UnreadableDocument(reply["error"])
    return ParsedDocument(
        content_type=reply["content_type"],
        sections=[Section(text, page, heading) for text, page, heading in reply["sections"]],
        page_count=reply["page_count"],
    )


def child_main() -> None:
    """The child: reads its request from stdin, writes the parsed document (or the reason
    it cannot be read) to stdout as JSON. A crash exits non-zero with the trace on stderr."""
    request = json.loads(sys.stdin.buffer.read())
    cpu = request["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (request["memory_bytes"], request["memory_bytes"]))
    try:
        parsed = parse_document(
            Path(request["path"]).read_bytes(), request["filename"], ParseLimits(**request["limits"])
        )
        reply = {
            "content_type": parsed.content_type,
            "page_count": parsed.page_count,
            "sections": [[s.text, s.page, s.heading] for s in parsed.sections],
        }
    except UnreadableDocument as exc:
        reply = {"error": exc.message}
    except MemoryError:
        reply = {
            "error": f"Reading this file needs more than {request['memory_mb']} MB of memory, the limit for one"
            " document; split it into smaller files."
        }
    sys.stdout.buffer.write(json.dumps(reply).encode())
