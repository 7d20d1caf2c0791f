"""How a batch job runs, in three blocking steps the job (app/batch/jobs.py) runs in threads:

1. `extract`: the text column of the source file into the local work folder
   <data dir>/cache/batch/<job id>/texts.parquet, read in the sandbox with the dataset limits
   (kept: a resumed job on this machine reads it again, one on another extracts it again);
2. `score`: the chunks not yet checkpointed, each written to chunks/<index>.parquet, stored at
   the key batch/<job id>/chunks/<index>.parquet (app/core/storage.py) and checkpointed (a
   BatchChunk row) before the next; a worker killed meanwhile loses at most the chunk it was
   in, and the next attempt, on any worker, starts at the first chunk without a checkpoint;
3. `assemble`: the source rows with the scored columns, in the source's format, in the sandbox.

The work folder and the job's keys are removed once the job has an outcome (success, failure,
cancel); they stay while the job may run again."""

import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from app.batch import service
from app.batch.files import NEW_COLUMNS
from app.batch.scoring import ChunkDone, ChunkPlan, Scorer, score_chunks
from app.core.db import session_scope
from app.core.sandbox import SandboxLimits, run_isolated
from app.core.settings import Settings
from app.core.storage import StorageKeyMissing, get_storage
from app.core.uploads import safe_filename
from models.runtime import default_threads

# Of the job's progress bar: the rest is writing and storing the result.
SCORING_SHARE = 0.95
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}

Progress = Callable[[float, str], None]


def work_dir(settings: Settings, job_id: str) -> Path:
    # By job id, not run id: a job id is never reused, even where SQLite reuses a row id.
    return settings.resolved_data_dir / "cache" / "batch" / job_id


def job_prefix(job_id: str) -> str:
    return f"batch/{job_id}"


def remove_work(settings: Settings, job_id: str) -> None:
    """The job's local work folder and its stored chunks."""
    shutil.rmtree(work_dir(settings, job_id), ignore_errors=True)
    get_storage().delete_prefix(job_prefix(job_id))


def batch_threads(settings: Settings) -> int:
    """STRATA_BATCH_THREADS, or every core but one (at least one)."""
    return settings.batch_threads if settings.batch_threads > 0 else max(1, default_threads() - 1)


def _limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        timeout_seconds=settings.dataset_parse_timeout_seconds,
        memory_mb=settings.dataset_parse_max_memory_mb,
        subject="this dataset",
    )


def _waiting(on_progress: Progress, fraction: float, what: str) -> Callable[[], None]:
    """The sandbox's on_wait: a message that changes each second, so that the job's progress is
    written, and a cancel noticed, while the child works."""
    started = time.monotonic()
    return lambda: on_progress(fraction, f"{what} ({time.monotonic() - started:.0f} s)")


def extract(plan: service.JobPlan, *, settings: Settings, on_progress: Progress) -> None:
    folder = work_dir(settings, plan.run.job_id)
    texts = folder / "texts.parquet"
    if texts.is_file():
        return
    try:
        source = get_storage().local_path(plan.source_path)
    except StorageKeyMissing:
        raise service.RunGone(
            f"The file of {plan.run.dataset_name!r} version {plan.run.dataset_version_number} is missing."
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".texts.{uuid.uuid4().hex}.part"
    try:
        reply = run_isolated(
            "app.batch.files:extract_texts",
            {
                "path": str(source),
                "format": plan.source_format,
                "text_column": plan.run.text_column,
                "chunk_size": plan.run.chunk_size,
                "output": str(temporary),
            },
            limits=_limits(settings),
            on_wait=_waiting(on_progress, 0.0, f"Reading {plan.run.rows_total:,} rows of {plan.run.dataset_name}"),
        )
        if reply["rows"] != plan.run.rows_total:
            raise service.RunGone(
                f"The dataset file has {reply['rows']:,} rows, not the {plan.run.rows_total:,} it had when stored."
            )
        os.replace(temporary, texts)
    finally:
        temporary.unlink(missing_ok=True)


def score(plan: service.JobPlan, *, settings: Settings, attempt: int, on_progress: Progress) -> None:
    run = plan.run
    folder = work_dir(settings, run.job_id)
    chunks = range(-(-run.rows_total // run.chunk_size))
    done = set(plan.done_chunks)
    pending = [index for index in chunks if index not in done]
    if not pending:
        return
    scorer = Scorer(plan.model, threads=batch_threads(settings))

    def checkpoint(chunk: ChunkDone) -> None:
        key = f"{job_prefix(run.job_id)}/chunks/{chunk.path.name}"
        get_storage().save(key, chunk.path)
        with session_scope() as db_session:
            service.record_chunk(
                db_session=db_session,
                batch_run_id=run.id,
                index=chunk.index,
                rows=chunk.rows,
                rows_failed=chunk.rows_failed,
                path=key,
                sha256=chunk.sha256,
                attempt=attempt,
                rows_per_second=chunk.rows_per_second,
            )

    score_chunks(
        ChunkPlan(
            texts_path=folder / "texts.parquet",
            chunk_dir=folder / "chunks",
            chunk_size=run.chunk_size,
            rows_total=run.rows_total,
            rows_done=run.rows_done,
            pending=pending,
            model_version=run.model_version_number,
        ),
        scorer,
        max_rows_per_second=settings.batch_max_rows_per_second,
        checkpoint=checkpoint,
        on_progress=on_progress,
        scoring_share=SCORING_SHARE,
    )


def assemble(plan: service.JobPlan, *, settings: Settings, on_progress: Progress) -> Path:
    """The result file, in the work folder."""
    run = plan.run
    with session_scope() as db_session:
        chunks = service.done_chunks(db_session=db_session, batch_run_id=run.id)
    expected = -(-run.rows_total // run.chunk_size)
    if [chunk.index for chunk in chunks] != list(range(expected)):
        raise service.RunGone(f"{len(chunks)} of the {expected} chunks are scored; the result cannot be written yet.")
    output = work_dir(settings, run.job_id) / f"result.{EXTENSIONS[plan.source_format]}"
    storage = get_storage()
    try:
        source = storage.local_path(plan.source_path)
        chunk_files = [storage.local_path(c.path) for c in chunks]
    except StorageKeyMissing as missing:
        raise service.RunGone(f"A file of this batch job is gone ({missing}); start the batch again.") from None
    run_isolated(
        "app.batch.files:assemble_result",
        {
            "path": str(source),
            "format": plan.source_format,
            "chunks": [
                {"index": c.index, "path": str(path), "sha256": c.sha256}
                for c, path in zip(chunks, chunk_files, strict=True)
            ],
            "output": str(output),
        },
        limits=_limits(settings),
        on_wait=_waiting(on_progress, SCORING_SHARE, f"Writing {run.rows_total:,} rows with {', '.join(NEW_COLUMNS)}"),
    )
    return output


def result_filename(plan: service.JobPlan) -> str:
    run = plan.run
    return safe_filename(
        f"{run.dataset_name}-v{run.dataset_version_number}-scored-{run.model_name}-v{run.model_version_number}"
        f".{EXTENSIONS[plan.source_format]}"
    )
