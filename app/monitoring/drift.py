"""Drift detection: a model version's current window of logged predictions against its reference,
computed on demand (staff, POST /api/v1/models/{name}/drift, the Monitoring page) and by the
worker every STRATA_DRIFT_INTERVAL_MINUTES (app/monitoring/jobs.py).

- Reference: a trained version's training data (app/monitoring/drift_reference.py, computed once
  and stored); otherwise the window the staff set for the model (PUT .../drift-reference), read
  from the log of every version of the model in that window (what the model was asked and
  answered then). Neither: Conflict, saying to set a window.
- Current window: the version's rows over the last STRATA_DRIFT_WINDOW_HOURS, starting no earlier
  than the end of a window reference (the two never overlap), or the window asked for.
- Both windows are summarised by the database (counts per label and per histogram bin, one
  grouped scan over the (version_id, at) index) plus at most MAX_PROJECTIONS input sketches, and
  scored by app/monitoring/drift_stats.py with the model's thresholds.
- Each computation is stored (DriftResult), sets strata_model_drift_score, and opens (or updates)
  a drift alert for each statistic over its threshold (app.alerts.service.open_alert)."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from app.alerts import service as alerts_service
from app.audit.service import record
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.metrics import MODEL_DRIFT_SCORE
from app.core.roles import Actor, Role, require_role
from app.core.settings import get_settings
from app.core.time import utcnow
from app.monitoring import drift_reference
from app.monitoring import drift_stats as stats
from app.monitoring.aggregates import bin_of
from app.monitoring.drift_schemas import DriftConfigOut, DriftOverview, DriftReport
from app.monitoring.tables import DriftConfig, DriftResult
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel
from models.sketch import decode_projections

log = PredictionLog.__table__.c
MAX_HISTORY = 50


@dataclass
class Reference:
    summary: stats.Summary
    description: str
    # The end of a window reference: the current window starts no earlier.
    until: datetime | None = None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _binned(column: ColumnElement, edges: list[float]) -> ColumnElement:
    return case((column.is_(None), literal_column("-1")), else_=bin_of(column, edges))


def window_summary(db_session: Session, version_ids: list[int], since: datetime, until: datetime) -> stats.Summary:
    """The served predictions of these versions in [since, until), as drift sees them."""
    where = and_(log.version_id.in_(version_ids), log.at >= since, log.at < until, log.error.is_(None))
    grouped = db_session.execute(
        select(
            log.label,
            _binned(log.confidence, stats.CONFIDENCE_EDGES).label("confidence_bin"),
            _binned(log.input_length, stats.LENGTH_EDGES).label("length_bin"),
            _binned(log.input_oov_share, stats.OOV_EDGES).label("oov_bin"),
            func.count(),
        )
        .where(where)
        .group_by("label", "confidence_bin", "length_bin", "oov_bin")
    ).all()
    summary = stats.Summary()
    for label, confidence_bin, length_bin, oov_bin, count in grouped:
        summary.rows += count
        if label is not None:
            summary.labels[label] = summary.labels.get(label, 0) + count
        if confidence_bin >= 0:
            summary.confidence[confidence_bin] += count
        if length_bin >= 0 and oov_bin >= 0:
            summary.length[length_bin] += count
            summary.oov[oov_bin] += count
    # A systematic sample by id when the window holds more sketches than the statistics need.
    stride = max(1, math.ceil(summary.sketched / stats.MAX_PROJECTIONS))
    sketches = select(log.input_sketch).where(where, log.input_sketch.is_not(None))
    if stride > 1:
        sketches = sketches.where(log.id.op("%")(literal_column(str(stride))) == 0)
    summary.projections = decode_projections(db_session.execute(sketches).scalars().all())
    return summary


def _model(db_session: Session, model_name: str) -> RegisteredModel:
    model = db_session.execute(select(RegisteredModel).where(RegisteredModel.name == model_name)).scalars().first()
    if model is None:
        raise NotFound(f"No model named {model_name!r}.")
    return model


def _version(db_session: Session, model: RegisteredModel, number: int | None) -> ModelVersion:
    query = select(ModelVersion).where(ModelVersion.model_id == model.id)
    query = (
        query.where(ModelVersion.stage == "production")
        if number is None
        else query.where(ModelVersion.number == number)
    )
    version = db_session.execute(query).scalars().first()
    if version is None:
        raise NotFound(
            f"{model.name!r} has no production version."
            if number is None
            else f"{model.name!r} has no version {number}."
        )
    return version


def _config(db_session: Session, model: RegisteredModel) -> DriftConfig | None:
    return db_session.execute(select(DriftConfig).where(DriftConfig.model_id == model.id)).scalars().first()


def _thresholds(config: DriftConfig | None) -> dict[str, float]:
    return stats.DEFAULT_THRESHOLDS | (config.thresholds if config else {})


def _reference(db_session: Session, model: RegisteredModel, version: ModelVersion) -> Reference:
    trained = drift_reference.training_reference(db_session=db_session, version=version)
    if trained is not None:
        projections = decode_projections([trained.projections])
        return Reference(stats.Summary.from_histograms(trained.histograms, projections), trained.description)
    config = _config(db_session, model)
    if config is None or config.reference_since is None:
        raise Conflict(
            f"{model.name} version {version.number} has no training data to compare with: set a reference window "
            f'with PUT /api/v1/models/{model.name}/drift-reference {{"since", "until"}} (for example its first '
            "week in production), or on the Monitoring page."
        )
    since, until = _utc(config.reference_since), _utc(config.reference_until)
    version_ids = list(db_session.execute(select(ModelVersion.id).where(ModelVersion.model_id == model.id)).scalars())
    return Reference(
        window_summary(db_session, version_ids, since, until),
        f"window {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC",
        until,
    )


def _current_window(reference: Reference, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    until = _utc(until) if until else utcnow()
    if since is None:
        since = until - timedelta(hours=get_settings().drift_window_hours)
        if reference.until is not None:
            since = max(since, reference.until)
    since = _utc(since)
    if since >= until:
        raise InvalidInput(
            f"The current window would be empty: it starts at {since.isoformat()} (after the reference window) "
            f"and ends at {until.isoformat()}. Give since and until, or move the reference window earlier."
        )
    return since, until


def _message(status: str, crossed: list[str], found: dict[str, float], thresholds: dict[str, float]) -> str:
    if status == "not_enough_data":
        return (
            f"Not enough data: each window needs at least {get_settings().drift_min_samples} logged predictions "
            "(STRATA_DRIFT_MIN_SAMPLES)."
        )
    if status == "ok":
        return "No statistic crossed its threshold."
    return "Drift: " + ", ".join(f"{name} {found[name]:.3f} > {thresholds[name]:g}" for name in crossed) + "."


def report(db_session: Session, result: DriftResult) -> DriftReport:
    model = db_session.get(RegisteredModel, result.model_id)
    version = db_session.get(ModelVersion, result.version_id)
    return DriftReport(
        id=result.id,
        model=model.name,
        version=version.number,
        computed_at=result.computed_at,
        window_since=result.window_since,
        window_until=result.window_until,
        reference=result.reference,
        reference_rows=result.reference_rows,
        current_rows=result.current_rows,
        status=result.status,
        message=_message(result.status, result.crossed, result.scores, result.thresholds),
        scores=result.scores,
        thresholds=result.thresholds,
        crossed=result.crossed,
        details=result.details,
        triggered_by=result.triggered_by,
    )


def compute_for_version(
    *,
    db_session: Session,
    model: RegisteredModel,
    version: ModelVersion,
    since: datetime | None = None,
    until: datetime | None = None,
    triggered_by: str,
    keep_without_data: bool = True,
) -> DriftResult:
    """Computes, stores and publishes one drift result, and opens an alert per crossed statistic.
    A result with not enough data is returned unstored unless `keep_without_data` (the scheduled
    job does not fill the history with them). No role check: the callers made it."""
    reference = _reference(db_session, model, version)
    since, until = _current_window(reference, since, until)
    current = window_summary(db_session, [version.id], since, until)
    thresholds = _thresholds(_config(db_session, model))
    found, details = stats.scores(reference.summary, current, get_settings().drift_min_samples)
    crossed = stats.crossed(found, thresholds)
    status = "not_enough_data" if not found else "drift" if crossed else "ok"
    result = DriftResult(
        model_id=model.id,
        version_id=version.id,
        window_since=since,
        window_until=until,
        reference=reference.description[:500],
        reference_rows=reference.summary.rows,
        current_rows=current.rows,
        status=status,
        scores=found,
        thresholds={name: thresholds[name] for name in found} or thresholds,
        crossed=crossed,
        details=details,
        triggered_by=triggered_by[:320],
    )
    if status == "not_enough_data" and not keep_without_data:
        return result
    db_session.add(result)
    db_session.flush()
    for name, value in found.items():
        MODEL_DRIFT_SCORE.labels(model=model.name, version=str(version.number), statistic=name).set(value)
    for name in crossed:
        alerts_service.open_alert(
            db_session=db_session,
            model_id=model.id,
            version_id=version.id,
            kind="drift",
            statistic=name,
            value=found[name],
            threshold=thresholds[name],
            message=(
                f"{model.name} version {version.number}: {name} {found[name]:.3f} > {thresholds[name]:g}, "
                f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC against its reference ({reference.description})"
            )[:1000],
        )
    return result


def compute_drift(
    *,
    db_session: Session,
    actor: Actor,
    model_name: str,
    version_number: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> DriftReport:
    """Drift of one version (default the production one) now, stored. Staff only; runs in a
    worker thread (app/monitoring/drift_api.py). Raises NotFound, Conflict (no reference),
    InvalidInput (an empty window)."""
    require_role(actor, Role.staff)
    model = _model(db_session, model_name)
    version = _version(db_session, model, version_number)
    result = compute_for_version(
        db_session=db_session,
        model=model,
        version=version,
        since=since,
        until=until,
        triggered_by=getattr(actor, "email", "system"),
    )
    return report(db_session, result)


def _config_out(model: RegisteredModel, config: DriftConfig | None) -> DriftConfigOut:
    settings = get_settings()
    overrides = config.thresholds if config else {}
    return DriftConfigOut(
        model=model.name,
        reference_since=config.reference_since if config else None,
        reference_until=config.reference_until if config else None,
        thresholds=stats.DEFAULT_THRESHOLDS | overrides,
        defaults=stats.DEFAULT_THRESHOLDS,
        overridden=sorted(overrides),
        min_samples=settings.drift_min_samples,
        window_hours=settings.drift_window_hours,
        interval_minutes=settings.drift_interval_minutes,
    )


def _config_for_update(db_session: Session, model: RegisteredModel, actor: Actor) -> DriftConfig:
    config = _config(db_session, model) or DriftConfig(model_id=model.id, updated_by="")
    config.updated_by = getattr(actor, "email", "system")[:320]
    config.updated_at = utcnow()
    return config


def set_reference_window(
    *, db_session: Session, actor: Actor, model_name: str, since: datetime, until: datetime
) -> DriftConfigOut:
    """Sets the model's reference window (for its versions without training data). Staff only.
    The window must be in the past and at most 400 days long. Raises NotFound, InvalidInput."""
    require_role(actor, Role.staff)
    model = _model(db_session, model_name)
    since, until = _utc(since), _utc(until)
    if since >= until:
        raise InvalidInput(f"since ({since.isoformat()}) must be before until ({until.isoformat()}).")
    if until > utcnow():
        raise InvalidInput(f"The reference window must be in the past; until is {until.isoformat()}.")
    if until - since > timedelta(days=400):
        raise InvalidInput(f"A reference window is at most 400 days; got {(until - since).days}.")
    config = _config_for_update(db_session, model, actor)
    old = {"since": _iso(config.reference_since), "until": _iso(config.reference_until)}
    config.reference_since, config.reference_until = since, until
    db_session.add(config)
    db_session.flush()
    record(
        db_session=db_session,
        actor=actor,
        action="drift_reference.set",
        target=model.name,
        target_id=model.id,
        old=old,
        new={"since": _iso(since), "until": _iso(until)},
    )
    return _config_out(model, config)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def set_thresholds(
    *, db_session: Session, actor: Actor, model_name: str, thresholds: dict[str, float | None]
) -> DriftConfigOut:
    """Sets (or, with None, resets to the default) the model's thresholds. Staff only. Raises
    NotFound, InvalidInput naming an unknown statistic or a threshold out of range."""
    require_role(actor, Role.staff)
    model = _model(db_session, model_name)
    for name, value in thresholds.items():
        if name not in stats.DEFAULT_THRESHOLDS:
            raise InvalidInput(f"Unknown drift statistic {name!r}; known: {', '.join(stats.DEFAULT_THRESHOLDS)}.")
        maximum = stats.THRESHOLD_MAXIMA.get(name, math.inf)
        if value is not None and not (0 < value <= maximum and math.isfinite(value)):
            bound = f"at most {maximum:g}" if math.isfinite(maximum) else "finite"
            raise InvalidInput(f"The threshold of {name} must be above 0 and {bound}; got {value}.")
    config = _config_for_update(db_session, model, actor)
    before = dict(config.thresholds)
    merged = dict(before)
    for name, value in thresholds.items():
        if value is None or value == stats.DEFAULT_THRESHOLDS[name]:
            merged.pop(name, None)
        else:
            merged[name] = float(value)
    config.thresholds = merged
    db_session.add(config)
    db_session.flush()
    # Only the model's own thresholds (the defaults apply to the rest).
    record(
        db_session=db_session,
        actor=actor,
        action="drift_thresholds.set",
        target=model.name,
        target_id=model.id,
        old=before,
        new=merged,
    )
    return _config_out(model, config)


def overview(
    *, db_session: Session, actor: Actor, model_name: str, version_number: int | None = None, limit: int = 20
) -> DriftOverview:
    """The model's drift settings and its latest results (of one version, or all), newest first.
    Staff only. Raises NotFound."""
    require_role(actor, Role.staff)
    model = _model(db_session, model_name)
    query = select(DriftResult).where(DriftResult.model_id == model.id)
    if version_number is not None:
        query = query.where(DriftResult.version_id == _version(db_session, model, version_number).id)
    results = (
        db_session.execute(
            query.order_by(DriftResult.computed_at.desc(), DriftResult.id.desc()).limit(max(1, min(limit, MAX_HISTORY)))
        )
        .scalars()
        .all()
    )
    return DriftOverview(
        config=_config_out(model, _config(db_session, model)),
        results=[report(db_session, result) for result in results],
    )


async def compute_drift_now(
    *,
    actor: Actor,
    model_name: str,
    version_number: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> DriftReport:
    """compute_drift for the API and the page: staff only, one request from the caller's rate
    limit (it costs CPU: the statistics, and a trained version's first reference), computed in a
    worker thread, never on the event loop."""
    require_role(actor, Role.staff)
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    return await run_in_session(
        compute_drift, actor=actor, model_name=model_name, version_number=version_number, since=since, until=until
    )


def _watched_versions(db_session: Session) -> list[tuple[RegisteredModel, ModelVersion]]:
    """Every production version, and every canary taking a share of traffic."""
    watched = []
    for model in db_session.execute(select(RegisteredModel)).scalars():
        for version in db_session.execute(select(ModelVersion).where(ModelVersion.model_id == model.id)).scalars():
            canary = version.id == model.canary_version_id and model.canary_percent > 0
            if version.stage == "production" or canary:
                watched.append((model, version))
    return watched


def due_versions(*, db_session: Session, now: datetime) -> list[tuple[str, int]]:
    """(model name, version number) of the watched versions without a stored result in the last
    STRATA_DRIFT_INTERVAL_MINUTES, for the scheduled job."""
    since = now - timedelta(minutes=get_settings().drift_interval_minutes)
    recent = set(db_session.execute(select(DriftResult.version_id).where(DriftResult.computed_at > since)).scalars())
    return [
        (model.name, version.number) for model, version in _watched_versions(db_session) if version.id not in recent
    ]


def scheduled_drift(*, db_session: Session, model_name: str, version_number: int) -> DriftResult | None:
    """The scheduled computation of one version: None when it has no reference (nobody set a
    window: nothing to compare with, and nothing to say every hour); a result with not enough
    data is not stored."""
    model = _model(db_session, model_name)
    version = _version(db_session, model, version_number)
    try:
        return compute_for_version(
            db_session=db_session, model=model, version=version, triggered_by="schedule", keep_without_data=False
        )
    except Conflict:
        return None
