"""The training.run job's steps (app/training/jobs.py runs them): plan the run from its row,
read its two columns through the datasets domain's sandboxed reader, train, and record the
outcome: on success the winner registered as a staging version with its lineage, all in one
transaction, so a worker killed midway leaves either nothing or the whole result.

The job acts as the staff member who started the run: the model version is theirs."""

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session

from app.auth.tables import User
from app.core.errors import InvalidInput
from app.core.settings import get_settings
from app.datasets import service as datasets_service
from app.datasets.tables import Dataset, DatasetVersion, LineageKind
from app.predict import registry
from app.predict.tables import ModelVersion
from app.training.tables import TrainingRun

Progress = Callable[[float, str], None]
# Rows left out are named by number, up to this many.
LISTED_LEFT_OUT_ROWS = 10


class RunGone(Exception):
    """The run, or what it needs, was deleted: nothing to do but say so."""


@dataclass
class RunPlan:
    run_id: int
    actor: User
    dataset: str
    version: DatasetVersion
    text_column: str
    label_column: str
    holdout_fraction: float
    seed: int
    # Set when an earlier attempt already finished the run (the worker died after committing).
    finished: dict | None = None


@dataclass
class Rows:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    # Rows read, rows used, how many lacked a text or a label, and the first of those by number.
    report: dict = field(default_factory=dict)


def _outcome(run: TrainingRun, model_version: int | None) -> dict:
    return {
        "training_run_id": run.id,
        "chosen": run.chosen,
        "accuracy": run.accuracy,
        "macro_f1": run.macro_f1,
        "model": run.model_name,
        "model_version": model_version,
    }


def plan_run(*, db_session: Session, run_id: int) -> RunPlan:
    run = db_session.get(TrainingRun, run_id)
    if run is None:
        raise RunGone(f"Training run {run_id} was deleted.")
    version = db_session.get(DatasetVersion, run.dataset_version_id) if run.dataset_version_id else None
    if version is None:
        raise RunGone(f"The dataset version of training run {run_id} was deleted before it ran.")
    dataset = db_session.get(Dataset, version.dataset_id)
    actor = db_session.get(User, run.created_by) if run.created_by is not None else None
    if actor is None or not actor.is_active:
        raise InvalidInput(
            f"The user who started training run {run_id} was deleted or deactivated; nothing was trained."
        )
    plan = RunPlan(
        run_id=run.id,
        actor=actor,
        dataset=dataset.name,
        version=version,
        text_column=run.text_column,
        label_column=run.label_column,
        holdout_fraction=run.holdout_fraction,
        seed=run.seed,
    )
    if run.model_version_id is not None:
        number = db_session.get(ModelVersion, run.model_version_id).number
        plan.finished = _outcome(run, number)
    return plan


def read_rows(plan: RunPlan, *, on_progress: Progress) -> Rows:
    """The run's texts and labels. A row without a text or without a label is left out (the
    quality report warns of them before training) and counted in the report; labels are
    compared as their text, stripped, as the label distribution counts them."""
    message = f"Reading {plan.text_column!r} and {plan.label_column!r} of {plan.dataset} version {plan.version.number}"
    on_progress(0.0, message)
    values = datasets_service.read_columns(
        settings=get_settings(),
        actor=plan.actor,
        version=plan.version,
        columns=[plan.text_column, plan.label_column],
        on_wait=lambda: on_progress(0.0, message),
    )
    rows = Rows()
    no_text = no_label = 0
    left_out: list[int] = []
    for number, (text, label) in enumerate(
        zip(values[plan.text_column], values[plan.label_column], strict=True), start=1
    ):
        text = "" if text is None else text if isinstance(text, str) else str(text)
        label = "" if label is None else str(label).strip()
        no_text += not text.strip()
        no_label += not label
        if not text.strip() or not label:
            if len(left_out) < LISTED_LEFT_OUT_ROWS:
                left_out.append(number)
            continue
        rows.texts.append(text)
        rows.labels.append(label)
    rows.report = {
        "read": len(values[plan.text_column]),
        "used": len(rows.texts),
        "without_text": no_text,
        "without_label": no_label,
        "first_left_out": left_out,
    }
    on_progress(1.0, f"Read {rows.report['read']} rows, {rows.report['used']} with a text and a label")
    return rows


def _embedder():
    """The process's embedder for the embedding candidate; None (the candidate is skipped and
    says so) when the embedder is not built."""
    from app.core.ml import get_embedder
    from models.manifest import ManifestError

    try:
        return get_embedder()
    except ManifestError:
        return None


def train_rows(plan: RunPlan, rows: Rows, *, on_progress: Progress):
    """models.training.train on the rows; raises its TrainingError or ParityError."""
    from models.training import train  # scikit-learn: loaded by the worker only

    return train(
        rows.texts,
        rows.labels,
        holdout_fraction=plan.holdout_fraction,
        seed=plan.seed,
        embedder=_embedder(),
        on_progress=on_progress,
    )


def record_success(*, db_session: Session, plan: RunPlan, result, rows: Rows, seconds: float) -> dict:
    """Registers the winner as a staging version of the run's model, links it and the run to
    the dataset version, and stores the metrics and the report on the run: one transaction."""
    run = db_session.get(TrainingRun, plan.run_id)
    if run is None:
        raise RunGone(f"Training run {plan.run_id} was deleted while it trained.")
    version = registry.register_trained_version(
        db_session=db_session,
        actor=plan.actor,
        model_name=run.model_name,
        onnx_model=result.onnx_model,
        labels=result.labels,
        metrics={"accuracy": result.metrics["accuracy"], "macro_f1": result.metrics["macro_f1"]},
    )
    if db_session.get(DatasetVersion, plan.version.id) is None:
        raise RunGone(f"The dataset version of training run {plan.run_id} was deleted while it trained.")
    datasets_service.record_lineage(
        db_session=db_session,
        actor=plan.actor,
        dataset_version_id=plan.version.id,
        kind=LineageKind.model_version,
        ref_id=str(version.id),
        label=f"model {run.model_name} version {version.number}",
    )
    run.chosen = result.chosen
    run.accuracy = result.metrics["accuracy"]
    run.macro_f1 = result.metrics["macro_f1"]
    run.report = {**result.summary(), "rows": rows.report}
    run.model_version_id = version.id
    run.duration_seconds = seconds
    run.error = None
    db_session.add(run)
    return _outcome(run, version.number)


def record_failure(*, db_session: Session, run_id: int, error: str, report: dict | None, seconds: float) -> None:
    run = db_session.get(TrainingRun, run_id)
    if run is None:
        return
    run.error = error
    run.report = report
    run.duration_seconds = seconds
    db_session.add(run)
