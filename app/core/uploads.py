"""Receiving an uploaded file: copied to a temporary file under a size limit, counted and
hashed as it streams, so that an oversized upload leaves nothing behind and identical
content is recognised by its sha256 (knowledge documents, datasets)."""

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.core.errors import StrataError
from app.core.settings import Settings

READ_BYTES = 1 << 20


class TooLarge(StrataError):
    status_code = 413


class UploadedFile(Protocol):
    """Starlette's UploadFile (API) and Reflex's rx.UploadFile (page) both fit."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


@dataclass
class StagedFile:
    """An upload received into a temporary file, not yet anything the user sees."""

    filename: str
    path: Path
    size_bytes: int
    sha256: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def incoming_dir(settings: Settings, area: str) -> Path:
    """Where uploads to `area` are received: local scratch, never the shared store, so a half
    received file is seen by no other process."""
    return settings.resolved_data_dir / "cache" / "incoming" / area


def safe_filename(name: str | None) -> str:
    """The last part of a client's file name (never a path), at most 255 characters."""
    base = Path((name or "").replace("\\", "/")).name.strip()
    return base[:255] or "unnamed"


async def stage(upload: UploadedFile, *, directory: Path, max_mb: float, what: str) -> StagedFile:
    """Copies `upload` into `directory`; past `max_mb` it raises TooLarge ("... the limit of
    N MB <what>") and leaves nothing behind."""
    limit = int(max_mb * 1024 * 1024)
    directory.mkdir(parents=True, exist_ok=True)
    filename = safe_filename(upload.filename)
    path = directory / uuid.uuid4().hex
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            while block := await upload.read(READ_BYTES):
                size += len(block)
                if size > limit:
                    raise TooLarge(f"{filename} is larger than the limit of {max_mb:g} MB {what}; nothing was stored.")
                digest.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StagedFile(filename=filename, path=path, size_bytes=size, sha256=digest.hexdigest())
