"""A trained version's drift reference, computed once from its training data and stored.

The rows are those its training run held out (the same seeded, stratified split,
models.training.split_rows): the version never saw them, so its confidence on them is what it
shows on new data of the same kind (on the rows it was fitted on it is higher, and every
production window would look less confident, a false alarm). At most REFERENCE_MAX_ROWS of
them (a seeded sample) are predicted by the version and sketched like logged inputs
(models.sketch), and summarised as drift_stats.Summary.

This costs one read of the dataset (in the parsers' sandbox) and a model call over up to
REFERENCE_MAX_ROWS texts, so it happens at the version's first drift computation, in a worker
thread (the scheduled job, or the on-demand route's thread), and never again."""

import numpy as np
from sqlalchemy import select
from sqlmodel import Session

from app.core import ml
from app.core.errors import InvalidInput
from app.monitoring import drift_stats as stats
from app.monitoring.tables import DriftReference
from app.predict.serving import VersionRef, get_runtime
from app.predict.tables import ModelVersion, RegisteredModel
from app.training.running import RunGone, plan_run, read_rows
from app.training.tables import TrainingRun
from models.sketch import encode_projection

REFERENCE_MAX_ROWS = 1000
REFERENCE_SEED = 0


def summarise(texts: list[str], outputs: list[dict]) -> tuple[stats.Summary, bytes]:
    """Texts and the version's outputs on them as a Summary, and the projections' bytes."""
    known = [encode_projection(output["projection"]) if output.get("projection") else None for output in outputs]
    sketches = ml.get_sketcher().sketch(texts, known)
    summary = stats.Summary(rows=len(texts))
    for output, sketch in zip(outputs, sketches, strict=True):
        if output["label"] is not None:
            summary.labels[output["label"]] = summary.labels.get(output["label"], 0) + 1
            summary.confidence[stats.bin_index(output["confidence"], stats.CONFIDENCE_EDGES)] += 1
        summary.length[stats.bin_index(sketch.length, stats.LENGTH_EDGES)] += 1
        summary.oov[stats.bin_index(sketch.oov_share, stats.OOV_EDGES)] += 1
    projections = b"".join(sketch.projection for sketch in sketches)
    return summary, projections


def _holdout_texts(db_session: Session, run: TrainingRun) -> tuple[list[str], str] | None:
    """A sample of the run's holdout texts, and where they come from in words."""
    try:
        plan = plan_run(db_session=db_session, run_id=run.id)
    except (RunGone, InvalidInput):
        return None  # its dataset version or its author is gone: no training data to read
    rows = read_rows(plan, on_progress=lambda _fraction, _message: None)
    # Imported here: models.training brings scikit-learn and onnx (~130 MB) into every
    # web and worker process that imports this module, most of which never train.
    from models.training import split_rows

    _, holdout = split_rows(rows.labels, run.holdout_fraction, run.seed)
    if len(holdout) > REFERENCE_MAX_ROWS:
        holdout = np.sort(np.random.default_rng(REFERENCE_SEED).choice(holdout, REFERENCE_MAX_ROWS, replace=False))
    description = (
        f"training data: {plan.dataset} version {plan.version.number}, column {plan.text_column!r}, "
        f"{len(holdout)} holdout rows of training run {run.id}"
    )
    return [rows.texts[index] for index in holdout], description


def training_reference(*, db_session: Session, version: ModelVersion) -> DriftReference | None:
    """The version's stored reference, computed now if it was not yet; None for a version that
    was not trained in Strata or whose training data is gone (the staff's window then applies)."""
    stored = db_session.execute(select(DriftReference).where(DriftReference.version_id == version.id)).scalars().first()
    if stored is not None or version.source != "trained":
        return stored
    run = db_session.execute(select(TrainingRun).where(TrainingRun.model_version_id == version.id)).scalars().first()
    found = _holdout_texts(db_session, run) if run is not None else None
    if not found or not found[0]:
        return None
    texts, description = found
    model = db_session.get(RegisteredModel, version.model_id)
    loaded = get_runtime().versions.get(VersionRef(version.id, model.name, model.kind, version.artifact))
    summary, projections = summarise(texts, loaded.run(texts))
    reference = DriftReference(
        version_id=version.id,
        description=description[:500],
        rows=len(texts),
        histograms=summary.histograms(),
        projections=projections,
    )
    db_session.add(reference)
    db_session.flush()
    return reference
