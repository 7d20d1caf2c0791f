"""Batch scoring: every row of a dataset version through one classifier version, as a job on
the jobs machinery (kind "batch.score", app/batch/jobs.py), checkpointed chunk by chunk, its
result a new version of the dataset "<dataset>-predictions" with the columns prediction,
confidence, model_version and error added to the original ones.

Viewers read batch runs; staff start and cancel them. The model version is resolved when the
batch starts (production, or the pinned number) and used for every row, also after a resume.
How the job runs is app/batch/running.py."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.audit.service import record
from app.auth.tables import User
from app.batch.tables import BatchChunk, BatchRun
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import InvalidInput, NotFound
from app.core.roles import Actor, Role, require_role
from app.core.settings import get_settings
from app.datasets import service as datasets_service
from app.datasets.tables import Dataset, DatasetVersion, LineageKind
from app.predict import registry
from app.predict.serving import VersionRef
from app.predict.tables import ModelVersion, RegisteredModel
from jobs import service as jobs_service
from jobs.tables import Job, JobStatus

BATCH_SCORE = "batch.score"
DEFAULT_CHUNK_ROWS = 1000
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 10, 100_000
RESULT_SUFFIX = "-predictions"
MAX_LISTED = 500
# Column types (app/datasets/profiling.py) a text column may have: a JSONL column may mix
# texts with numbers (each scored as its text); the others hold no text to score.
TEXT_TYPES = ("text", "mixed")


def result_dataset_name(dataset: str) -> str:
    """Where a batch's results go: "<dataset>-predictions", within the 100 characters of a name."""
    return dataset[: 100 - len(RESULT_SUFFIX)] + RESULT_SUFFIX


# ------------------------------------------------------------------------ start


async def start_batch(
    *,
    actor: Actor,
    dataset: str,
    version: int | None,
    text_column: str,
    model: str,
    model_version: int | None = None,
    caller: str | None = None,
    limit_per_minute: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_ROWS,
) -> BatchRun:
    """Starts scoring version `version` of `dataset` (its newest when None) with `model`'s
    production version, or version `model_version`: one request from the caller's rate limit
    (`caller` as in jobs_board.start_job), then the run and its job are written in one
    transaction and the job is queued. If the queue cannot be reached the job is marked failed
    saying so and ServiceUnavailable is raised."""
    require_role(actor, Role.staff)
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    run, job = await run_in_session(
        create_run,
        actor=actor,
        dataset=dataset,
        version=version,
        text_column=text_column,
        model=model,
        model_version=model_version,
        chunk_size=chunk_size,
    )
    await jobs_service.queue_or_fail(job, what="batch job")
    return run


def _check_text_column(version: DatasetVersion, dataset: str, text_column: str) -> None:
    types = {column["name"]: column["type"] for column in version.columns}
    if text_column not in types:
        raise InvalidInput(
            f"Version {version.number} of {dataset!r} has no column {text_column!r}; its columns are"
            f" {', '.join(repr(name) for name in types)}."
        )
    if types[text_column] not in TEXT_TYPES:
        texts = [name for name, kind in types.items() if kind in TEXT_TYPES]
        choose = f"choose one of {', '.join(repr(name) for name in texts)}" if texts else "it has no text column"
        raise InvalidInput(f"The column {text_column!r} holds {types[text_column]} values, not text; {choose}.")


def _model_version(db_session: Session, model: str, number: int | None) -> tuple[RegisteredModel, ModelVersion]:
    """The classifier version a batch uses: the pinned one, or production now."""
    if "\x00" in model:  # no model has one, and PostgreSQL refuses it in a query
        raise NotFound(f"No model named {model!r}.")
    served = (
        registry.load_pinned(db_session=db_session, model_name=model, version_number=number)
        if number is not None
        else registry.load_route(db_session=db_session, model_name=model).production
    )
    if served is None:
        raise NotFound(f"{model!r} has no production version yet; pin one of its versions.")
    if served.ref.kind != "classifier":
        raise InvalidInput(
            f"{model!r} is an embedder; a batch job writes a prediction and a confidence per row, so it needs a"
            " classifier."
        )
    version = db_session.get(ModelVersion, served.ref.id)
    return db_session.get(RegisteredModel, version.model_id), version


def _checked_request(
    *,
    db_session: Session,
    actor: Actor,
    dataset: str,
    version: int | None,
    text_column: str,
    model: str,
    model_version: int | None,
) -> tuple[Dataset, DatasetVersion, RegisteredModel, ModelVersion]:
    dataset_row, version_row = datasets_service.newest_or_numbered_version(
        db_session=db_session, actor=actor, name=dataset, number=version
    )
    _check_text_column(version_row, dataset_row.name, text_column)
    return dataset_row, version_row, *_model_version(db_session, model, model_version)


def check_batch_request(
    *,
    db_session: Session,
    actor: Actor,
    dataset: str,
    version: int | None,
    text_column: str,
    model: str,
    model_version: int | None = None,
) -> None:
    """What start_batch checks before it writes anything, for a caller that starts one later
    (a schedule, when it is created)."""
    require_role(actor, Role.staff)
    _checked_request(
        db_session=db_session,
        actor=actor,
        dataset=dataset,
        version=version,
        text_column=text_column,
        model=model,
        model_version=model_version,
    )


def create_run(
    *,
    db_session: Session,
    actor: Actor,
    dataset: str,
    version: int | None,
    text_column: str,
    model: str,
    model_version: int | None,
    chunk_size: int,
) -> tuple[BatchRun, Job]:
    """The run, its job (not yet queued: start_batch queues it) and its lineage link, checked
    like check_batch_request."""
    require_role(actor, Role.staff)
    if not MIN_CHUNK_ROWS <= chunk_size <= MAX_CHUNK_ROWS:
        raise InvalidInput(f"A chunk holds {MIN_CHUNK_ROWS} to {MAX_CHUNK_ROWS} rows; got {chunk_size}.")
    dataset_row, version_row, model_row, model_version_row = _checked_request(
        db_session=db_session,
        actor=actor,
        dataset=dataset,
        version=version,
        text_column=text_column,
        model=model,
        model_version=model_version,
    )
    job = jobs_service.create_job(
        db_session=db_session, actor=actor, kind=BATCH_SCORE, params={}, max_attempts=get_settings().job_max_tries
    )
    run = BatchRun(
        job_id=job.id,
        dataset_version_id=version_row.id,
        dataset_name=dataset_row.name,
        dataset_version_number=version_row.number,
        text_column=text_column,
        model_name=model_row.name,
        model_version_id=model_version_row.id,
        model_version_number=model_version_row.number,
        chunk_size=chunk_size,
        rows_total=version_row.row_count,
        created_by=actor.id,
    )
    db_session.add(run)
    db_session.flush()
    # What the Jobs page shows of it; the job itself reads only the run's id.
    job.params = {
        "batch_run_id": run.id,
        "dataset": dataset_row.name,
        "version": version_row.number,
        "model": model_row.name,
        "model_version": model_version_row.number,
    }
    db_session.add(job)
    datasets_service.record_lineage(
        db_session=db_session,
        actor=actor,
        dataset_version_id=version_row.id,
        kind=LineageKind.batch_job,
        ref_id=str(run.id),
        label=f"batch job {run.id}: scored with {model_row.name} version {model_version_row.number}",
    )
    record(
        db_session=db_session,
        actor=actor,
        action="batch_job.started",
        target=f"batch job {run.id}",
        target_id=run.id,
        new={**job.params, "text_column": text_column, "chunk_size": chunk_size, "job_id": job.id},
    )
    return run, job


# ----------------------------------------------------------------------- reading


@dataclass
class BatchView:
    """A batch run as the API and the Batch page show it (status and message from its job)."""

    id: int
    job_id: str
    status: str
    progress: float
    message: str
    error: str | None
    dataset: str
    dataset_version: int
    text_column: str
    model: str
    model_version: int
    chunk_size: int
    rows_total: int
    rows_done: int
    rows_failed: int
    rows_per_second: float | None
    eta_seconds: float | None
    result_dataset: str | None
    result_version: int | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _views(db_session: Session, runs: list[BatchRun]) -> list[BatchView]:
    jobs = {job.id: job for job in db_session.exec(select(Job).where(col(Job.id).in_([r.job_id for r in runs])))}
    user_ids = {run.created_by for run in runs if run.created_by is not None}
    emails = dict(db_session.exec(select(User.id, User.email).where(col(User.id).in_(user_ids))).all())
    result_ids = [run.result_dataset_version_id for run in runs if run.result_dataset_version_id is not None]
    results = {
        version_id: (name, number)
        for version_id, name, number in db_session.exec(
            select(DatasetVersion.id, Dataset.name, DatasetVersion.number)
            .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
            .where(col(DatasetVersion.id).in_(result_ids))
        )
    }
    views = []
    for run in runs:
        job = jobs[run.job_id]
        running = job.status == JobStatus.running.value
        rate = run.rows_per_second
        result = results.get(run.result_dataset_version_id)
        views.append(
            BatchView(
                id=run.id,
                job_id=run.job_id,
                status=job.status,
                progress=job.progress,
                message=job.message,
                error=job.error,
                dataset=run.dataset_name,
                dataset_version=run.dataset_version_number,
                text_column=run.text_column,
                model=run.model_name,
                model_version=run.model_version_number,
                chunk_size=run.chunk_size,
                rows_total=run.rows_total,
                rows_done=run.rows_done,
                rows_failed=run.rows_failed,
                rows_per_second=rate,
                eta_seconds=(run.rows_total - run.rows_done) / rate if running and rate else None,
                result_dataset=result[0] if result else None,
                result_version=result[1] if result else None,
                created_by=emails.get(run.created_by),
                created_at=run.created_at,
                started_at=job.started_at,
                finished_at=job.finished_at,
            )
        )
    return views


def list_batches(*, db_session: Session, actor: Actor, limit: int = 50) -> list[BatchView]:
    """Newest first."""
    require_role(actor, Role.viewer)
    runs = db_session.exec(
        select(BatchRun)
        .order_by(col(BatchRun.created_at).desc(), col(BatchRun.id).desc())
        .limit(max(1, min(limit, MAX_LISTED)))
    ).all()
    return _views(db_session, list(runs))


def _get(db_session: Session, batch_id: int) -> BatchRun:
    run = db_session.get(BatchRun, batch_id)
    if run is None:
        raise NotFound(f"There is no batch job {batch_id}.")
    return run


def get_batch(*, db_session: Session, actor: Actor, batch_id: int) -> BatchView:
    require_role(actor, Role.viewer)
    return _views(db_session, [_get(db_session, batch_id)])[0]


def cancel_batch(*, db_session: Session, actor: Actor, batch_id: int) -> BatchView:
    """Asks the batch's job to stop: it stops within the model call it is in."""
    require_role(actor, Role.staff)
    run = _get(db_session, batch_id)
    status_before = db_session.get(Job, run.job_id).status
    job = jobs_service.request_cancel(db_session=db_session, actor=actor, job_id=run.job_id)
    record(
        db_session=db_session,
        actor=actor,
        action="batch_job.cancelled",
        target=f"batch job {run.id}",
        target_id=run.id,
        old={"status": status_before},
        new={"status": job.status, "cancel_requested": job.cancel_requested},
    )
    db_session.flush()
    return get_batch(db_session=db_session, actor=actor, batch_id=batch_id)


@dataclass
class Choices:
    """What a batch can be started on: datasets' versions with their text columns, and classifiers."""

    # (dataset, version number, text columns), newest version first within each dataset.
    versions: list[tuple[str, int, list[str]]]
    # (model, production version number or None, every version number, newest first).
    classifiers: list[tuple[str, int | None, list[int]]]


def choices(*, db_session: Session, actor: Actor) -> Choices:
    require_role(actor, Role.viewer)
    versions = [
        (dataset.name, version.number, [c["name"] for c in version.columns if c["type"] in TEXT_TYPES])
        for dataset, dataset_versions in datasets_service.list_datasets(db_session=db_session, actor=actor)
        for version in dataset_versions
    ]
    numbers: dict[int, list[int]] = {}
    for model_id, number in db_session.exec(
        select(ModelVersion.model_id, ModelVersion.number).order_by(col(ModelVersion.number).desc())
    ):
        numbers.setdefault(model_id, []).append(number)
    production = dict(
        db_session.exec(
            select(ModelVersion.model_id, ModelVersion.number).where(ModelVersion.stage == "production")
        ).all()
    )
    classifiers = [
        (model.name, production.get(model.id), numbers.get(model.id, []))
        for model in db_session.exec(
            select(RegisteredModel).where(RegisteredModel.kind == "classifier").order_by(col(RegisteredModel.name))
        )
    ]
    return Choices(versions=versions, classifiers=classifiers)


# ----------------------------------------------------------------------- the job's side


@dataclass
class JobPlan:
    """What the job needs of its run, read once at its start."""

    run: BatchRun
    actor: User
    source_path: str  # its key in the file store
    source_format: str
    source_filename: str
    model: VersionRef
    done_chunks: list[int]


class RunGone(Exception):
    """The run, its data or its starter is no longer there: the message says which."""


def job_plan(*, db_session: Session, batch_run_id: int) -> JobPlan:
    run = db_session.get(BatchRun, batch_run_id)
    if run is None:
        raise RunGone(f"Batch job {batch_run_id} no longer exists.")
    source = db_session.get(DatasetVersion, run.dataset_version_id) if run.dataset_version_id else None
    if source is None:
        raise RunGone(f"Version {run.dataset_version_number} of {run.dataset_name!r} was deleted; nothing to score.")
    version = db_session.get(ModelVersion, run.model_version_id) if run.model_version_id else None
    model = db_session.get(RegisteredModel, version.model_id) if version else None
    if version is None or model is None:
        raise RunGone(f"Version {run.model_version_number} of the model {run.model_name!r} no longer exists.")
    actor = db_session.get(User, run.created_by) if run.created_by else None
    if actor is None or not actor.is_active:
        raise RunGone("The user who started this batch job no longer exists or was deactivated.")
    done = db_session.exec(
        select(BatchChunk.index).where(BatchChunk.batch_run_id == run.id).order_by(col(BatchChunk.index))
    ).all()
    return JobPlan(
        run=run,
        actor=actor,
        source_path=source.stored_path,
        source_format=source.format,
        source_filename=source.filename,
        model=VersionRef(version.id, model.name, model.kind, version.artifact),
        done_chunks=list(done),
    )


def done_chunks(*, db_session: Session, batch_run_id: int) -> list[BatchChunk]:
    return list(
        db_session.exec(
            select(BatchChunk).where(BatchChunk.batch_run_id == batch_run_id).order_by(col(BatchChunk.index))
        ).all()
    )


def record_chunk(
    *,
    db_session: Session,
    batch_run_id: int,
    index: int,
    rows: int,
    rows_failed: int,
    path: str,
    sha256: str,
    attempt: int,
    rows_per_second: float,
) -> None:
    """The checkpoint of one chunk whose output file is in place, and the run's counts with it."""
    db_session.add(
        BatchChunk(
            batch_run_id=batch_run_id,
            index=index,
            rows=rows,
            rows_failed=rows_failed,
            path=path,
            sha256=sha256,
            attempt=attempt,
        )
    )
    db_session.flush()
    run = db_session.get(BatchRun, batch_run_id)
    run.rows_done, run.rows_failed = db_session.exec(
        select(func.coalesce(func.sum(BatchChunk.rows), 0), func.coalesce(func.sum(BatchChunk.rows_failed), 0)).where(
            BatchChunk.batch_run_id == batch_run_id
        )
    ).one()
    run.rows_per_second = rows_per_second
    db_session.add(run)


def finish_run(*, db_session: Session, actor: Actor, batch_run_id: int, result_version_id: int) -> dict:
    """Links the result version to the run and to its source (lineage); the job's result."""
    run = db_session.get(BatchRun, batch_run_id)
    result = db_session.get(DatasetVersion, result_version_id)
    result_name = db_session.get(Dataset, result.dataset_id).name
    if run.result_dataset_version_id != result_version_id and run.dataset_version_id is not None:
        datasets_service.record_lineage(
            db_session=db_session,
            actor=actor,
            dataset_version_id=run.dataset_version_id,
            kind=LineageKind.batch_result,
            ref_id=str(result_version_id),
            label=f"{result_name} version {result.number}, the result of batch job {run.id}",
        )
    run.result_dataset_version_id = result_version_id
    db_session.add(run)
    return {
        "batch_run_id": run.id,
        "rows": run.rows_total,
        "rows_failed": run.rows_failed,
        "result_dataset": result_name,
        "result_version": result.number,
    }
