"""Dataset files on disk: uploads staged to a temporary file within the size limit, profiled
in the sandbox, and stored once per content under <data dir>/datasets/objects/<sha256>."""

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.core.errors import StrataError
from app.core.sandbox import SandboxLimits, run_isolated
from app.core.settings import Settings
from models.manifest import EMBEDDER_NAME, ManifestError, read_manifest

READ_BYTES = 1 << 20
# all-MiniLM-L6-v2's limit, for when the embedder is not built (its manifest says otherwise).
DEFAULT_MAX_WORD_PIECES = 256


class TooLarge(StrataError):
    status_code = 413


class UploadedFile(Protocol):
    """Starlette's UploadFile (API) and Reflex's rx.UploadFile (page) both fit."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


@dataclass
class StagedFile:
    filename: str
    path: Path
    size_bytes: int
    sha256: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def datasets_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir / "datasets"


def object_path(settings: Settings, sha256: str) -> Path:
    return datasets_dir(settings) / "objects" / sha256


def safe_filename(name: str | None) -> str:
    base = Path((name or "").replace("\\", "/")).name.strip()
    return base[:255] or "unnamed"


async def stage_upload(upload: UploadedFile, *, settings: Settings) -> StagedFile:
    """Copies an upload to a temporary file, counting and hashing as it goes; past the size
    limit it raises TooLarge and leaves nothing behind."""
    limit = int(settings.dataset_max_mb * 1024 * 1024)
    staging = datasets_dir(settings) / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    filename = safe_filename(upload.filename)
    path = staging / uuid.uuid4().hex
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            while block := await upload.read(READ_BYTES):
                size += len(block)
                if size > limit:
                    raise TooLarge(
                        f"{filename} is larger than the limit of {settings.dataset_max_mb:g} MB for a dataset;"
                        " nothing was stored."
                    )
                digest.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StagedFile(filename=filename, path=path, size_bytes=size, sha256=digest.hexdigest())


def _embedder_tokenizer(settings: Settings) -> tuple[str | None, int]:
    """The embedder's tokenizer file and word-piece limit, if it is built."""
    model_dir = settings.resolved_models_dir / EMBEDDER_NAME
    try:
        manifest = read_manifest(model_dir)
    except ManifestError:
        return None, DEFAULT_MAX_WORD_PIECES
    return str(model_dir / manifest.tokenizer_file), manifest.max_length


def profile_isolated(staged: StagedFile, *, settings: Settings) -> dict:
    """The staged file's profile, read in the sandbox; raises InvalidInput naming what is wrong."""
    tokenizer_path, max_word_pieces = _embedder_tokenizer(settings)
    return run_isolated(
        "app.datasets.profiling:profile",
        {
            "path": str(staged.path),
            "filename": staged.filename,
            "tokenizer_path": tokenizer_path,
            "max_word_pieces": max_word_pieces,
        },
        limits=SandboxLimits(
            timeout_seconds=settings.dataset_parse_timeout_seconds,
            memory_mb=settings.dataset_parse_max_memory_mb,
            subject="this dataset",
        ),
    )
