"""Parsing runs in a child process with limits (app/core/sandbox.py), so a hostile file (deep
nesting, a zip bomb, thousands of pages, a parser bug that loops) fails only its own ingestion:
the child is killed at the wall-clock limit or when the job is cancelled, so it never keeps
holding a worker's slot."""

from collections.abc import Callable
from pathlib import Path

from app.core.errors import InvalidInput
from app.core.sandbox import SandboxLimits, run_isolated
from app.core.settings import Settings
from app.knowledge.parsing import ParsedDocument, ParseLimits, Section, UnreadableDocument, parse_document


def parse_isolated(
    path: Path, filename: str, *, settings: Settings, on_progress: Callable[[float, str], None]
) -> ParsedDocument:
    """parse_document on the file at `path`, in a child process within the parse limits.
    Raises UnreadableDocument for a file that breaks them; `on_progress` is called while
    waiting, and whatever it raises (a cancelled job) kills the child first."""
    if not path.is_file():
        raise UnreadableDocument("The uploaded file is missing from the data directory; upload it again.")
    request = {"path": str(path), "filename": filename, "limits": ParseLimits.of(settings).__dict__}
    limits = SandboxLimits(timeout_seconds=settings.parse_timeout_seconds, memory_mb=settings.parse_max_memory_mb)
    try:
        reply = run_isolated(
            "app.knowledge.parse_process:parse_in_child",
            request,
            limits=limits,
            on_wait=lambda: on_progress(0.02, "Reading the file"),
        )
    except UnreadableDocument:
        raise
    except InvalidInput as exc:
        raise UnreadableDocument(exc.message) from None
    return ParsedDocument(
        content_type=reply["content_type"],
        sections=[Section(text, page, heading) for text, page, heading in reply["sections"]],
        page_count=reply["page_count"],
    )


def parse_in_child(request: dict) -> dict:
    """In the sandbox's child: the parsed document as JSON-ready data."""
    parsed = parse_document(Path(request["path"]).read_bytes(), request["filename"], ParseLimits(**request["limits"]))
    return {
        "content_type": parsed.content_type,
        "page_count": parsed.page_count,
        "sections": [[section.text, section.page, section.heading] for section in parsed.sections],
    }
