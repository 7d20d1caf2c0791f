"""A change to the model registry, written twice in the caller's transaction: in the model's
own history (RegistryChange, shown on the Models page) and in the audit log; and this process
routes by the changed registry at once."""

from sqlmodel import Session

from app.audit.service import record
from app.core.roles import Actor
from app.predict.routing import routes
from app.predict.tables import RegisteredModel, RegistryChange

SYSTEM_USER = "system"


def who(actor: Actor) -> str:
    """How the registry names the actor: their e-mail, or "system" for Strata itself."""
    return SYSTEM_USER if actor.id is None else actor.email


def record_change(
    db_session: Session,
    model: RegisteredModel,
    actor: Actor,
    action: str,
    version: int | None,
    detail: str,
    *,
    old: dict | None = None,
    new: dict | None = None,
) -> None:
    """The model's own history (RegistryChange, shown on the Predict page) and the audit log."""
    db_session.add(
        RegistryChange(
            model_id=model.id,
            user_id=actor.id,
            user=who(actor),
            action=action,
            version_number=version,
            detail=detail,
        )
    )
    record(
        db_session=db_session,
        actor=actor,
        action=f"model.{action}",
        target=model.name if version is None else f"{model.name} version {version}",
        target_id=model.id,
        old=old,
        new=new,
        detail=detail,
    )
    # This process routes by the new registry at once; other replicas within ROUTE_TTL_SECONDS.
    routes.invalidate(model.name)
