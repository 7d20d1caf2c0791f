"""Roles and the one role check every service makes. Here, at the bottom layer, so that
the job machinery and every domain can check a role without importing the auth domain."""

from enum import StrEnum
from typing import Protocol

from app.core.errors import Forbidden


class Role(StrEnum):
    admin = "admin"
    staff = "staff"
    viewer = "viewer"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "staff": 1, "admin": 2}[self.value]


class Actor(Protocol):
    """Whoever acts: a signed-in user or an API key's owner (auth's User satisfies it)."""

    id: int | None
    role: str


def has_role(actor: Actor, minimum: Role) -> bool:
    return Role(actor.role).rank >= minimum.rank


def require_role(actor: Actor, minimum: Role) -> None:
    if not has_role(actor, minimum):
        raise Forbidden(f"This needs the {minimum.value} role; you are {actor.role}.")
