"""Alerts: a model's drift, live accuracy or error rate crossed its threshold.

Whoever detects a crossing calls open_alert (the drift check, app/alerts/checks.py for accuracy
and error rate). One alert of a model, kind and statistic is open at a time: further crossings
update it. Staff acknowledge it; a crossing after that opens a new one. A newly opened alert is
handed to the enabled webhooks that take its kind (app/webhooks/deliveries.py).

Who sees what: open alerts are on the Home page for everyone signed in, so any viewer may list
open alerts (read-only); acknowledged ones (the history) and acknowledging are for staff."""

from datetime import datetime

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.alerts.schemas import AlertOut
from app.alerts.tables import ALERT_KINDS, Alert
from app.audit.service import record
from app.auth.tables import User
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.metrics import OPEN_ALERTS
from app.core.roles import Role, require_role
from app.core.time import utcnow
from app.predict.tables import ModelVersion, RegisteredModel
from app.webhooks.deliveries import queue_alert_deliveries

MAX_LIST = 500


def _open_key(model_id: int, kind: str, statistic: str) -> str:
    return f"{model_id}:{kind}:{statistic}"


def _refresh_open_alerts_metric(db_session: Session) -> None:
    """Sets strata_open_alerts{kind} to the database's count (zero included), so that every
    process reports the same figure whichever changed it last."""
    counts = dict(
        db_session.exec(
            select(Alert.kind, func.count()).where(col(Alert.open_key).is_not(None)).group_by(Alert.kind)
        ).all()
    )
    for kind in ALERT_KINDS:
        OPEN_ALERTS.labels(kind=kind).set(counts.get(kind, 0))


def refresh_open_alerts_metric(*, db_session: Session) -> None:
    """For the scheduled check: puts the gauge right in this process (also after a restart)."""
    _refresh_open_alerts_metric(db_session)


def _update_open(alert: Alert, *, version_id: int | None, value: float, threshold: float, message: str) -> None:
    alert.version_id = version_id
    alert.value = value
    alert.threshold = threshold
    alert.message = message
    alert.last_seen_at = utcnow()


def open_alert(
    *,
    db_session: Session,
    model_id: int,
    version_id: int | None,
    kind: str,
    statistic: str,
    value: float,
    threshold: float,
    message: str,
) -> Alert | None:
    """Records that a model crossed a threshold. Returns the alert when this opened it; None when
    an alert of the same model, kind and statistic was already open (it now holds this value,
    threshold, message and time). Called by the system, so it takes no actor."""
    if kind not in ALERT_KINDS:
        raise InvalidInput(f"An alert's kind is one of {', '.join(ALERT_KINDS)}; got {kind!r}.")
    key = _open_key(model_id, kind, statistic)
    existing = db_session.exec(select(Alert).where(Alert.open_key == key)).first()
    if existing is None:
        alert = Alert(
            model_id=model_id,
            version_id=version_id,
            kind=kind,
            statistic=statistic,
            value=value,
            threshold=threshold,
            message=message,
            open_key=key,
        )
        try:
            # A savepoint: when another process opened the same alert a moment ago, only this
            # insert is undone and the alert it opened is updated below.
            with db_session.begin_nested():
                db_session.add(alert)
        except IntegrityError:
            existing = db_session.exec(select(Alert).where(Alert.open_key == key)).one()
        else:
            queue_alert_deliveries(db_session=db_session, alert=alert)
            _refresh_open_alerts_metric(db_session)
            return alert
    _update_open(existing, version_id=version_id, value=value, threshold=threshold, message=message)
    db_session.add(existing)
    db_session.flush()
    return None


def _views(db_session: Session, alerts: list[Alert]) -> list[AlertOut]:
    model_ids = {alert.model_id for alert in alerts}
    version_ids = {alert.version_id for alert in alerts if alert.version_id is not None}
    names = (
        dict(
            db_session.exec(
                select(RegisteredModel.id, RegisteredModel.name).where(col(RegisteredModel.id).in_(model_ids))
            ).all()
        )
        if model_ids
        else {}
    )
    numbers = (
        dict(
            db_session.exec(
                select(ModelVersion.id, ModelVersion.number).where(col(ModelVersion.id).in_(version_ids))
            ).all()
        )
        if version_ids
        else {}
    )
    return [
        AlertOut(
            id=alert.id,
            model=names.get(alert.model_id, ""),
            version=numbers.get(alert.version_id),
            kind=alert.kind,
            statistic=alert.statistic,
            value=alert.value,
            threshold=alert.threshold,
            message=alert.message,
            open=alert.acknowledged_at is None,
            opened_at=alert.opened_at,
            last_seen_at=alert.last_seen_at,
            acknowledged_at=alert.acknowledged_at,
            acknowledged_by=alert.acknowledged_by,
        )
        for alert in alerts
    ]


def list_alerts(
    *,
    db_session: Session,
    actor: User,
    open_only: bool = False,
    model_name: str | None = None,
    limit: int = 100,
) -> list[AlertOut]:
    """Newest first. Open alerts for anyone signed in (the Home page shows them); with
    acknowledged ones, staff only. Raises NotFound for an unknown model."""
    require_role(actor, Role.viewer if open_only else Role.staff)
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit is 1 to {MAX_LIST}; got {limit}.")
    query = select(Alert)
    if open_only:
        query = query.where(col(Alert.acknowledged_at).is_(None))
    if model_name is not None:
        model_id = db_session.exec(select(RegisteredModel.id).where(RegisteredModel.name == model_name)).first()
        if model_id is None:
            raise NotFound(f"No model named {model_name!r}.")
        query = query.where(Alert.model_id == model_id)
    alerts = list(db_session.exec(query.order_by(col(Alert.opened_at).desc(), col(Alert.id).desc()).limit(limit)).all())
    return _views(db_session, alerts)


def acknowledge(*, db_session: Session, actor: User, alert_id: int, now: datetime | None = None) -> AlertOut:
    """Closes an open alert, recording who and when. Staff only. Raises NotFound for an unknown
    id and Conflict for an alert already acknowledged (saying by whom)."""
    require_role(actor, Role.staff)
    alert = db_session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"No alert with id {alert_id}.")
    if alert.acknowledged_at is not None:
        raise Conflict(
            f"Alert {alert_id} was already acknowledged by {alert.acknowledged_by or 'a deleted user'}"
            f" at {alert.acknowledged_at:%Y-%m-%d %H:%M} UTC."
        )
    alert.acknowledged_at = now or utcnow()
    alert.acknowledged_by_id = actor.id
    alert.acknowledged_by = actor.email
    alert.open_key = None
    db_session.add(alert)
    db_session.flush()
    _refresh_open_alerts_metric(db_session)
    view = _views(db_session, [alert])[0]
    record(
        db_session=db_session,
        actor=actor,
        action="alert.acknowledged",
        target=f"{view.model} {view.kind} ({view.statistic})",
        target_id=alert.id,
        new={"value": view.value, "threshold": view.threshold, "opened_at": view.opened_at},
    )
    return view
