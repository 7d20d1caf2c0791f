"""Dataset files on disk: uploads staged to a temporary file within the size limit, profiled
in the sandbox, and stored once per content under <data dir>/datasets/objects/<sha256>."""

import os
import threading
import uuid
from pathlib import Path

from app.core.sandbox import SandboxLimits, run_isolated
from app.core.settings import Settings
from app.core.uploads import StagedFile, UploadedFile, stage
from models.manifest import EMBEDDER_NAME, ManifestError, read_manifest

# all-MiniLM-L6-v2's limit, for when the embedder is not built (its manifest says otherwise).
DEFAULT_MAX_WORD_PIECES = 256


def datasets_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir / "datasets"


def object_path(settings: Settings, sha256: str) -> Path:
    return datasets_dir(settings) / "objects" / sha256


async def stage_upload(upload: UploadedFile, *, settings: Settings) -> StagedFile:
    return await stage(
        upload, directory=datasets_dir(settings) / "incoming", max_mb=settings.dataset_max_mb, what="for a dataset"
    )


def _embedder_tokenizer(settings: Settings) -> tuple[str | None, int]:
    """The embedder's tokenizer file and word-piece limit, if it is built."""
    model_dir = settings.resolved_models_dir / EMBEDDER_NAME
    try:
        manifest = read_manifest(model_dir)
    except ManifestError:
        return None, DEFAULT_MAX_WORD_PIECES
    return str(model_dir / manifest.tokenizer_file), manifest.max_length


def converted_path(settings: Settings, sha256: str, target: str) -> Path:
    return datasets_dir(settings) / "converted" / f"{sha256}.{target}"


_converting: dict[Path, threading.Lock] = {}
_converting_guard = threading.Lock()


def convert_isolated(
    path: Path, *, file_format: str, sha256: str, columns: list[dict], target: str, settings: Settings
) -> Path:
    """The stored file `path` as `target` (csv or parquet): converted in the sandbox the first
    time (one conversion at a time per file and target in this process) and kept beside it."""
    converted = converted_path(settings, sha256, target)
    with _converting_guard:
        lock = _converting.setdefault(converted, threading.Lock())
    with lock:
        if converted.is_file():
            return converted
        converted.parent.mkdir(parents=True, exist_ok=True)
        temporary = converted.with_name(f".{converted.name}.{uuid.uuid4().hex}.part")
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
            os.replace(temporary, converted)
        finally:
            temporary.unlink(missing_ok=True)
    return converted


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
