"""Dataset files: uploads staged to a local temporary file within the size limit, profiled
in the sandbox, and stored once per content at the key datasets/objects/<sha256> (app/core/storage.py);
conversions to another format are stored beside them, at datasets/converted/<sha256>.<format>."""

import threading
import uuid
from pathlib import Path

from app.core.sandbox import SandboxLimits, run_isolated
from app.core.settings import Settings
from app.core.storage import get_storage
from app.core.uploads import StagedFile, UploadedFile, incoming_dir, stage
from models.manifest import EMBEDDER_NAME, ManifestError, read_manifest

# all-MiniLM-L6-v2's limit, for when the embedder is not built (its manifest says otherwise).
DEFAULT_MAX_WORD_PIECES = 256


def object_key(sha256: str) -> str:
    return f"datasets/objects/{sha256}"


async def stage_upload(upload: UploadedFile, *, settings: Settings) -> StagedFile:
    return await stage(
        upload, directory=incoming_dir(settings, "datasets"), max_mb=settings.dataset_max_mb, what="for a dataset"
    )


def _embedder_tokenizer(settings: Settings) -> tuple[str | None, int]:
    """The embedder's tokenizer file and word-piece limit, if it is built."""
    model_dir = settings.resolved_models_dir / EMBEDDER_NAME
    try:
        manifest = read_manifest(model_dir)
    except ManifestError:
        return None, DEFAULT_MAX_WORD_PIECES
    return str(model_dir / manifest.tokenizer_file), manifest.max_length


def converted_key(sha256: str, target: str) -> str:
    return f"datasets/converted/{sha256}.{target}"


_converting: dict[str, threading.Lock] = {}
_converting_guard = threading.Lock()


def convert_isolated(
    path: Path, *, file_format: str, sha256: str, columns: list[dict], target: str, settings: Settings
) -> Path:
    """The stored file `path` as `target` (csv or parquet), as a local file: converted in the
    sandbox the first time (one conversion at a time per file and target in this process) and
    stored beside it, for every process."""
    key = converted_key(sha256, target)
    storage = get_storage()
    with _converting_guard:
        lock = _converting.setdefault(key, threading.Lock())
    with lock:
        if storage.exists(key):
            return storage.local_path(key)
        scratch = incoming_dir(settings, "converting")
        scratch.mkdir(parents=True, exist_ok=True)
        temporary = scratch / f"{uuid.uuid4().hex}.{target}"
        try:
            run_isolated(
                "app.datasets.converting:convert",
                {
                    "path": str(path),
                    "format": file_format,
                    "columns": columns,
                    "target": target,
                    "output": str(temporary),
                },
                limits=SandboxLimits(
                    timeout_seconds=settings.dataset_parse_timeout_seconds,
                    memory_mb=settings.dataset_parse_max_memory_mb,
                    subject="this dataset",
                ),
            )
            storage.save(key, temporary)
        finally:
            temporary.unlink(missing_ok=True)
        return storage.local_path(key)


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
