"""Dataset files on disk: uploads staged to a temporary file within the size limit, profiled
in the sandbox, and stored once per content under <data dir>/datasets/objects/<sha256>."""

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
