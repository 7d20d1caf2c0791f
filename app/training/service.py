"""Training runs: staff start one on a dataset version (text column, label column, the model
name to register the winner under, holdout fraction, seed); the training.run job
(app/training/jobs.py, app/training/running.py) reads the rows, trains (models.training),
registers the winner as a staging version and records lineage. Viewers list, read and compare
runs. A run's status, progress and timing are its Job's: read through the join, never copied."""

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from app.audit.service import record
from app.auth.tables import User
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import InvalidInput, NotFound
from app.core.roles import Actor, Role, require_role
from app.core.settings import get_settings
from app.datasets import service as datasets_service
from app.datasets.tables import Dataset, DatasetVersion, LineageKind
from app.predict.registry import TRAINED_MODEL_NAME
from app.predict.tables import ModelVersion, RegisteredModel
from app.training.tables import TrainingRun
from jobs import service as jobs_service
from jobs.tables import Job, JobStatus

TRAINING_RUN = "training.run"
# models.training's candidates and holdout bounds (not imported here: it loads scikit-learn,
# which the web process never needs).
CANDIDATES = ("tfidf-lr", "embedding-lr")
MIN_HOLDOUT_FRACTION = 0.05
MAX_HOLDOUT_FRACTION = 0.5
MAX_SEED = 2**31 - 1
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
SORTS = {
    "created_at": TrainingRun.created_at,
    "macro_f1": TrainingRun.macro_f1,
    "accuracy": TrainingRun.accuracy,
    "duration": TrainingRun.duration_seconds,
}
STATUSES = tuple(status.value for status in JobStatus)
# Two runs' scores that agree to this many decimals are shown as equal, and compare as equal.
COMPARE_DECIMALS = 4


@dataclass
class RunView:
    """A run with what the list and the detail show beside it: its job's status and the names
    of its dataset version, model version and starter (None when they were deleted)."""

    run: TrainingRun
    status: str
    progress: float
    message: str
    job_error: str | None
    dataset: str | None
    dataset_version: int | None
    model_version: int | None
    model_stage: str | None
    started_by: str | None

    @property
    def active(self) -> bool:
        return not JobStatus(self.status).finished

    @property
    def error(self) -> str | None:
        return self.run.error or self.job_error


@dataclass
class RunPage:
    runs: list[RunView]
    total: int
    page: int
    page_size: int


@dataclass
class Difference:
    section: str  # params, metrics or per_class
    field: str
    a: Any
    b: Any


@dataclass
class Comparison:
    a: RunView
    b: RunView
    differences: list[Difference]


@dataclass
class FilterChoices:
    """What the Experiments page offers in its filters: values that runs actually have."""

    datasets: list[str]
    model_names: list[str]
    starters: list[tuple[int, str]]  # (user id, email)


# -------------------------------------------------------------------------- start


async def start_run(
    *,
    actor: Actor,
    dataset: str,
    version: int | None,
    text_column: str,
    label_column: str,
    model_name: str,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> TrainingRun:
    """Starts a training run on version `version` of `dataset` (its newest when None): one
    request from the caller's rate limit (`caller` as in jobs_board.start_job), then the run,
    its job and its lineage link are written in one transaction and the job is queued. If the
    queue cannot be reached both are marked failed saying so and ServiceUnavailable is raised."""
    require_role(actor, Role.staff)
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    run, job = await run_in_session(
        _create_run,
        actor=actor,
        dataset=dataset,
        version=version,
        text_column=text_column,
        label_column=label_column,
        model_name=model_name.strip() if isinstance(model_name, str) else model_name,
        holdout_fraction=holdout_fraction,
        seed=seed,
    )
    await jobs_service.queue_or_fail(job, what="training run")
    return run


def check_run_request(
    *,
    db_session: Session,
    actor: Actor,
    dataset: str,
    version: int | None,
    text_column: str,
    label_column: str,
    model_name: str,
    holdout_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[Dataset, DatasetVersion]:
    """What start_run checks before it writes anything (also for a caller that starts a run
    later: a schedule, when it is created): everything about the request that can be known
    before training, each refusal naming the column, value or model at fault. Returns the
    dataset and the version a run started now would read."""
    require_role(actor, Role.staff)
    dataset_row, version_row = datasets_service.newest_or_numbered_version(
        db_session=db_session, actor=actor, name=dataset, number=version
    )
    if text_column == label_column:
        raise InvalidInput(
            f"The text column and the label column are both {text_column!r}; choose the column with the texts"
            " and the column with their labels."
        )
    quality = datasets_service.version_details(
        db_session=db_session,
        actor=actor,
        name=dataset_row.name,
        number=version_row.number,
        label_column=label_column,
        text_column=text_column,
    ).quality
    text = next(column for column in quality["columns"] if column["name"] == text_column)
    if text["type"] != "text":
        raise InvalidInput(
            f"The column {text_column!r} holds {text['type']} values, not text; choose the column with the texts."
        )
    classes = quality["label_distribution"]
    if len(classes) < 2:
        raise InvalidInput(
            f"The column {label_column!r} has {len(classes)} label{'' if len(classes) == 1 else 's'}; training"
            " needs at least two."
        )
    if not (isinstance(holdout_fraction, int | float) and math.isfinite(holdout_fraction)) or not (
        MIN_HOLDOUT_FRACTION <= holdout_fraction <= MAX_HOLDOUT_FRACTION
    ):
        raise InvalidInput(
            f"The holdout fraction must be between {MIN_HOLDOUT_FRACTION} and {MAX_HOLDOUT_FRACTION};"
            f" got {holdout_fraction}."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"The seed must be a whole number from 0 to {MAX_SEED}; got {seed}.")
    _check_model_name(db_session, model_name)
    return dataset_row, version_row


def _check_model_name(db_session: Session, model_name: str) -> None:
    """The rule of predict.registry.register_trained_version, checked before hours of training."""
    model = (
        db_session.exec(select(RegisteredModel).where(RegisteredModel.name == model_name)).first()
        if isinstance(model_name, str) and len(model_name) <= 100 and "\x00" not in model_name
        else None
    )
    if model is None and not (isinstance(model_name, str) and TRAINED_MODEL_NAME.fullmatch(model_name)):
        raise InvalidInput(
            "A model name is 1-100 letters, digits, '-' or '_', starting with a letter or digit; "
            f"got {str(model_name)[:120]!r}."
        )
    if model is not None and model.kind != "classifier":
        raise InvalidInput(f"{model_name!r} is an embedder; a trained classifier needs a classifier model.")


def _create_run(
    *,
    db_session: Session,
    actor: Actor,
    dataset: str,
    version: int | None,
    text_column: str,
    label_column: str,
    model_name: str,
    holdout_fraction: float,
    seed: int,
) -> tuple[TrainingRun, Job]:
    dataset_row, version_row = check_run_request(
        db_session=db_session,
        actor=actor,
        dataset=dataset,
        version=version,
        text_column=text_column,
        label_column=label_column,
        model_name=model_name,
        holdout_fraction=holdout_fraction,
        seed=seed,
    )
    job = jobs_service.create_job(
        db_session=db_session, actor=actor, kind=TRAINING_RUN, params={}, max_attempts=get_settings().job_max_tries
    )
    run = TrainingRun(
        job_id=job.id,
        dataset_version_id=version_row.id,
        text_column=text_column,
        label_column=label_column,
        model_name=model_name,
        holdout_fraction=float(holdout_fraction),
        seed=seed,
        created_by=actor.id,
    )
    db_session.add(run)
    db_session.flush()
    # What the Jobs page shows of it; the job itself reads only the run's id.
    job.params = {
        "training_run_id": run.id,
        "dataset": dataset_row.name,
        "version": version_row.number,
        "model_name": model_name,
    }
    db_session.add(job)
    datasets_service.record_lineage(
        db_session=db_session,
        actor=actor,
        dataset_version_id=version_row.id,
        kind=LineageKind.training_run,
        ref_id=str(run.id),
        label=f"training run {run.id}",
    )
    record(
        db_session=db_session,
        actor=actor,
        action="training_run.started",
        target=f"training run {run.id} of {model_name}",
        target_id=run.id,
        new={**job.params, "text_column": text_column, "label_column": label_column, "job_id": job.id},
    )
    return run, job


def cancel_run(*, db_session: Session, actor: Actor, run_id: int) -> RunView:
    """Asks the run's job to stop (training stops at its next progress step)."""
    require_role(actor, Role.staff)
    run = _get(db_session, run_id)
    status_before = db_session.get(Job, run.job_id).status
    job = jobs_service.request_cancel(db_session=db_session, actor=actor, job_id=run.job_id)
    record(
        db_session=db_session,
        actor=actor,
        action="training_run.cancelled",
        target=f"training run {run.id} of {run.model_name}",
        target_id=run.id,
        old={"status": status_before},
        new={"status": job.status, "cancel_requested": job.cancel_requested},
    )
    db_session.flush()
    return get_run(db_session=db_session, actor=actor, run_id=run_id)


# ------------------------------------------------------------------------ reading


def _views(db_session: Session, where: list, *, order: list | None = None, offset: int = 0, limit: int | None = None):
    query = (
        select(
            TrainingRun,
            Job.status,
            Job.progress,
            Job.message,
            Job.error,
            Dataset.name,
            DatasetVersion.number,
            ModelVersion.number,
            ModelVersion.stage,
            User.email,
        )
        .join(Job, col(Job.id) == TrainingRun.job_id)
        .outerjoin(DatasetVersion, col(DatasetVersion.id) == TrainingRun.dataset_version_id)
        .outerjoin(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .outerjoin(ModelVersion, col(ModelVersion.id) == TrainingRun.model_version_id)
        .outerjoin(User, col(User.id) == TrainingRun.created_by)
        .where(*where)
    )
    if order is not None:
        # The list does not need the reports: thousands of rows stay light.
        query = query.options(defer(TrainingRun.report)).order_by(*order).offset(offset).limit(limit)
    return [
        RunView(
            run=run,
            status=status,
            progress=progress,
            message=message,
            job_error=job_error,
            dataset=dataset,
            dataset_version=number,
            model_version=model_number,
            model_stage=model_stage,
            started_by=email,
        )
        for run, status, progress, message, job_error, dataset, number, model_number, model_stage, email in (
            db_session.exec(query).all()
        )
    ]


def _filters(
    *,
    dataset: str | None,
    version: int | None,
    model_name: str | None,
    status: str | None,
    created_by: int | None,
    chosen: str | None,
) -> list:
    given = [value for value in (dataset, model_name, status, chosen) if value]
    if any("\x00" in value for value in given):
        raise InvalidInput("A filter holds a NUL character; no run has one.")
    where = []
    if status:
        if status not in STATUSES:
            raise InvalidInput(f"Unknown status {status[:40]!r}; the statuses are {', '.join(STATUSES)}.")
        where.append(Job.status == status)
    if chosen:
        if chosen not in CANDIDATES:
            raise InvalidInput(f"Unknown candidate {chosen[:40]!r}; the candidates are {', '.join(CANDIDATES)}.")
        where.append(TrainingRun.chosen == chosen)
    if dataset:
        where.append(Dataset.name == dataset)
    if version is not None:
        where.append(DatasetVersion.number == version)
    if model_name:
        where.append(TrainingRun.model_name == model_name)
    if created_by is not None:
        where.append(TrainingRun.created_by == created_by)
    return where


def list_runs(
    *,
    db_session: Session,
    actor: Actor,
    dataset: str | None = None,
    version: int | None = None,
    model_name: str | None = None,
    status: str | None = None,
    created_by: int | None = None,
    chosen: str | None = None,
    sort: str = "created_at",
    descending: bool = True,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> RunPage:
    """One page of runs matching every filter given, sorted on the server (runs without the
    sorted figure, unfinished or failed ones, come last either way), with the total count."""
    require_role(actor, Role.viewer)
    if sort not in SORTS:
        raise InvalidInput(f"Runs sort by {', '.join(SORTS)}; not by {sort[:40]!r}.")
    page, page_size = max(1, page), max(1, min(page_size, MAX_PAGE_SIZE))
    where = _filters(
        dataset=dataset, version=version, model_name=model_name, status=status, created_by=created_by, chosen=chosen
    )
    total = db_session.exec(
        select(func.count())
        .select_from(TrainingRun)
        .join(Job, col(Job.id) == TrainingRun.job_id)
        .outerjoin(DatasetVersion, col(DatasetVersion.id) == TrainingRun.dataset_version_id)
        .outerjoin(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(*where)
    ).one()
    column = col(SORTS[sort])
    direction = column.desc() if descending else column.asc()
    tie = col(TrainingRun.id).desc() if descending else col(TrainingRun.id).asc()
    runs = _views(
        db_session, where, order=[direction.nulls_last(), tie], offset=(page - 1) * page_size, limit=page_size
    )
    return RunPage(runs=runs, total=total, page=page, page_size=page_size)


def _get(db_session: Session, run_id: int) -> TrainingRun:
    run = db_session.get(TrainingRun, run_id)
    if run is None:
        raise NotFound(f"There is no training run {run_id}.")
    return run


def get_run(*, db_session: Session, actor: Actor, run_id: int) -> RunView:
    require_role(actor, Role.viewer)
    views = _views(db_session, [TrainingRun.id == run_id])
    if not views:
        raise NotFound(f"There is no training run {run_id}.")
    return views[0]


def filter_choices(*, db_session: Session, actor: Actor) -> FilterChoices:
    require_role(actor, Role.viewer)
    return FilterChoices(
        datasets=list(
            db_session.exec(
                select(Dataset.name)
                .join(DatasetVersion, col(DatasetVersion.dataset_id) == Dataset.id)
                .join(TrainingRun, col(TrainingRun.dataset_version_id) == DatasetVersion.id)
                .distinct()
                .order_by(Dataset.name)
            ).all()
        ),
        model_names=list(
            db_session.exec(select(TrainingRun.model_name).distinct().order_by(TrainingRun.model_name)).all()
        ),
        starters=[
            (user_id, email)
            for user_id, email in db_session.exec(
                select(User.id, User.email)
                .join(TrainingRun, col(TrainingRun.created_by) == User.id)
                .distinct()
                .order_by(User.email)
            ).all()
        ],
    )


# ------------------------------------------------------------------------ compare


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return round(a, COMPARE_DECIMALS) == round(b, COMPARE_DECIMALS)
    return a == b


def _comparable(view: RunView) -> dict[tuple[str, str], Any]:
    """Every field a comparison looks at, by (section, field)."""
    run, report = view.run, view.run.report or {}
    dataset = f"{view.dataset} version {view.dataset_version}" if view.dataset else None
    fields: dict[tuple[str, str], Any] = {
        ("params", "dataset"): dataset,
        ("params", "text column"): run.text_column,
        ("params", "label column"): run.label_column,
        ("params", "model name"): run.model_name,
        ("params", "holdout fraction"): run.holdout_fraction,
        ("params", "seed"): run.seed,
        ("metrics", "status"): view.status,
        ("metrics", "chosen"): run.chosen,
        ("metrics", "accuracy"): run.accuracy,
        ("metrics", "macro-F1"): run.macro_f1,
        ("metrics", "duration (s)"): run.duration_seconds,
        ("metrics", "labels"): report.get("labels"),
        ("metrics", "training rows"): (report.get("split") or {}).get("train_rows"),
        ("metrics", "holdout rows"): (report.get("split") or {}).get("holdout_rows"),
        ("metrics", "baseline macro-F1"): ((report.get("baseline") or {}).get("holdout") or {}).get("macro_f1"),
    }
    for candidate in report.get("candidates", []):
        name = candidate["name"]
        holdout = candidate.get("holdout") or {}
        fields[("metrics", f"{name} cross-validated macro-F1")] = candidate.get("cv_macro_f1")
        fields[("metrics", f"{name} holdout macro-F1")] = holdout.get("macro_f1")
        fields[("metrics", f"{name} holdout accuracy")] = holdout.get("accuracy")
    for label, scores in ((report.get("metrics") or {}).get("per_class") or {}).items():
        for score in ("precision", "recall", "f1"):
            fields[("per_class", f"{label} {score}")] = scores[score]
    return fields


def compare_runs(*, db_session: Session, actor: Actor, a: int, b: int) -> Comparison:
    """Two runs side by side: only the parameters, metrics and per-class scores that differ
    (a field one run lacks, such as a label only one has, differs from the other's value)."""
    first, second = (
        get_run(db_session=db_session, actor=actor, run_id=a),
        get_run(db_session=db_session, actor=actor, run_id=b),
    )
    left, right = _comparable(first), _comparable(second)
    differences = [
        Difference(section=section, field=name, a=left.get((section, name)), b=right.get((section, name)))
        for section, name in dict.fromkeys([*left, *right])
        if not _same(left.get((section, name)), right.get((section, name)))
    ]
    order = {"params": 0, "metrics": 1, "per_class": 2}
    differences.sort(key=lambda item: order[item.section])
    return Comparison(a=first, b=second, differences=differences)
