"""Accuracy and error-rate alerts: each model's live figures over a recent window against its
thresholds, checked by the worker every STRATA_ALERT_CHECK_MINUTES (app/alerts/jobs.py) and by
staff on demand.

The figures are the Monitoring page's (app.monitoring.service.figures): accuracy against the
feedback users gave, and the share of logged predictions that failed. A figure counts only
once the window holds enough rows (min_feedback, min_predictions), so that two unlucky
corrections do not page anyone. Defaults, for a model whose staff set nothing: accuracy below
60% over at least 30 corrected predictions, or more than 5% of at least 100 predictions failed,
in the last 24 hours. Feedback leans towards wrong answers (people correct mistakes more than
they confirm right ones), so the accuracy default is well below a healthy model's."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from app.alerts.schemas import AlertThresholdsIn, AlertThresholdsOut
from app.alerts.service import open_alert, refresh_open_alerts_metric
from app.alerts.tables import Alert, AlertThresholds
from app.audit.service import record
from app.auth.service import SYSTEM
from app.auth.tables import User
from app.core.errors import NotFound
from app.core.roles import Role, require_role
from app.core.time import utcnow
from app.monitoring.service import figures
from app.predict.tables import RegisteredModel

DEFAULTS = AlertThresholdsIn(
    min_accuracy=0.6, min_feedback=30, max_error_rate=0.05, min_predictions=100, window_minutes=24 * 60
)


@dataclass(frozen=True)
class Crossing:
    kind: str
    value: float
    threshold: float
    message: str


def _model(db_session: Session, model_name: str) -> RegisteredModel:
    model = db_session.exec(select(RegisteredModel).where(RegisteredModel.name == model_name)).first()
    if model is None:
        raise NotFound(f"No model named {model_name!r}.")
    return model


def _thresholds_out(model: RegisteredModel, row: AlertThresholds | None) -> AlertThresholdsOut:
    values = DEFAULTS if row is None else AlertThresholdsIn.model_validate(row, from_attributes=True)
    return AlertThresholdsOut(
        **values.model_dump(),
        model=model.name,
        customised=row is not None,
        updated_by=row.updated_by if row else None,
        updated_at=row.updated_at if row else None,
    )


def get_thresholds(*, db_session: Session, actor: User, model_name: str) -> AlertThresholdsOut:
    """The model's thresholds (the defaults until staff set its own). Staff only."""
    require_role(actor, Role.staff)
    model = _model(db_session, model_name)
    return _thresholds_out(model, db_session.get(AlertThresholds, model.id))


def set_thresholds(
    *, db_session: Session, actor: User, model_name: str, thresholds: AlertThresholdsIn
) -> AlertThresholdsOut:
    """Replaces the model's thresholds; the next check uses them. Staff only."""
    require_role(actor, Role.staff)
    model = _model(db_session, model_name)
    row = db_session.get(AlertThresholds, model.id)
    old = _thresholds_out(model, row).model_dump(include=set(AlertThresholdsIn.model_fields))
    if row is None:
        row = AlertThresholds(model_id=model.id, updated_by=actor.email, **thresholds.model_dump())
    else:
        for field, value in thresholds.model_dump().items():
            setattr(row, field, value)
        row.updated_by, row.updated_at = actor.email, utcnow()
    db_session.add(row)
    db_session.flush()
    record(
        db_session=db_session,
        actor=actor,
        action="alert_thresholds.set",
        target=model.name,
        target_id=model.id,
        old=old,
        new=thresholds.model_dump(),
    )
    return _thresholds_out(model, row)


def crossings(*, db_session: Session, model_name: str, thresholds: AlertThresholdsIn, now: datetime) -> list[Crossing]:
    """The thresholds the model's figures over the window ending `now` cross."""
    window = figures(
        db_session=db_session,
        actor=SYSTEM,
        model_name=model_name,
        since=now - timedelta(minutes=thresholds.window_minutes),
        until=now,
    ).totals
    span = f"the last {_window_text(thresholds.window_minutes)}"
    found = []
    if (
        thresholds.min_accuracy is not None
        and window.feedback >= thresholds.min_feedback
        and window.accuracy is not None
        and window.accuracy < thresholds.min_accuracy
    ):
        found.append(
            Crossing(
                kind="accuracy",
                value=window.accuracy,
                threshold=thresholds.min_accuracy,
                message=f"Live accuracy {window.accuracy:.1%} ({window.correct} of {window.feedback} corrected"
                f" predictions right) over {span} is below {thresholds.min_accuracy:.1%}.",
            )
        )
    attempted = window.predictions + window.errors
    if thresholds.max_error_rate is not None and attempted and attempted >= thresholds.min_predictions:
        error_rate = round(window.errors / attempted, 4)
        if error_rate > thresholds.max_error_rate:
            found.append(
                Crossing(
                    kind="error_rate",
                    value=error_rate,
                    threshold=thresholds.max_error_rate,
                    message=f"{error_rate:.1%} of predictions failed ({window.errors} of {attempted}) over {span},"
                    f" above {thresholds.max_error_rate:.1%}.",
                )
            )
    return found


def _window_text(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if rest:
        return f"{minutes} minutes"
    return "hour" if hours == 1 else f"{hours} hours"


def _check(db_session: Session, model: RegisteredModel, now: datetime) -> list[Alert]:
    row = db_session.get(AlertThresholds, model.id)
    thresholds = DEFAULTS if row is None else AlertThresholdsIn.model_validate(row, from_attributes=True)
    opened = []
    for crossing in crossings(db_session=db_session, model_name=model.name, thresholds=thresholds, now=now):
        alert = open_alert(
            db_session=db_session,
            model_id=model.id,
            version_id=None,
            kind=crossing.kind,
            statistic=crossing.kind,
            value=crossing.value,
            threshold=crossing.threshold,
            message=crossing.message,
        )
        if alert is not None:
            opened.append(alert)
    return opened


def check_model(*, db_session: Session, actor: User, model_name: str, now: datetime | None = None) -> list[Alert]:
    """Checks one model now (staff, on demand). Returns the alerts it opened; an alert already
    open is updated with the new figure instead."""
    require_role(actor, Role.staff)
    return _check(db_session, _model(db_session, model_name), now or utcnow())


def check_all_models(*, db_session: Session, now: datetime | None = None) -> list[Alert]:
    """The worker's scheduled check of every model; also puts strata_open_alerts right in the
    worker's process."""
    now = now or utcnow()
    opened = []
    for model in db_session.exec(select(RegisteredModel).order_by(RegisteredModel.name)).all():
        opened += _check(db_session, model, now)
    refresh_open_alerts_metric(db_session=db_session)
    return opened
