"""FastAPI dependencies every domain's routes use: database session and the caller, by API key or
session. The auth domain's, since resolving a caller is auth's business (app/core stays below every domain)."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from sqlmodel import Session

from app.auth import rate_limits
from app.auth import service as auth_service
from app.auth.cookies import SESSION_COOKIE
from app.auth.tables import User
from app.core import coalesce
from app.core.db import run_in_session, session_scope
from app.core.errors import Unauthorized
from app.core.roles import Role, require_role
from app.core.security import API_KEY_PREFIX
from app.core.settings import Settings, get_settings


def db_session() -> Iterator[Session]:
    with session_scope() as session:
        yield session


# Scoped to the route function, so the transaction commits before the response is sent:
# a client's next request always sees what the previous one wrote.
SessionDep = Annotated[Session, Depends(db_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def bearer_credential(request: Request) -> str:
    authorization = request.headers.get("authorization", "")
    if not authorization:
        return ""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("Use 'Authorization: Bearer <api key>'.")
    return credential.strip()


async def _user_from_database(credential: str) -> User:
    if credential.startswith(API_KEY_PREFIX):
        user = await run_in_session(auth_service.user_for_api_key, plaintext=credential)
        problem = "This API key is unknown or revoked."
    else:
        user = await run_in_session(auth_service.user_for_session, token=credential)
        problem = "Your session has expired; sign in again."
    if user is None:
        raise Unauthorized(problem)
    return user


async def user_for_credential(credential: str) -> User:
    """The active user behind an API key or session token: remembered for a moment, else read
    once however many requests ask at the same time. Raises Unauthorized saying why not."""
    return auth_service.remembered_user(credential) or await coalesce.shared(
        ("credential", credential), lambda: _user_from_database(credential)
    )


async def current_user(request: Request) -> User:
    """The caller, by API key or session. Async so that the ids it binds to the log
    context stay in the request's context for everything after it."""
    credential = bearer_credential(request) or request.cookies.get(SESSION_COOKIE, "")
    if not credential:
        raise Unauthorized("Sign in or send 'Authorization: Bearer <api key>'.")
    user = await user_for_credential(credential)
    request.state.user_id = user.id
    structlog.contextvars.bind_contextvars(user_id=user.id)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def role_at_least(minimum: Role):
    def check(user: CurrentUser) -> User:
        require_role(user, minimum)
        return user

    check.minimum_role = minimum
    return Depends(check)


def minimum_role(dependant: Dependant) -> str:
    """The role a route's dependencies demand ("public" without a caller), published in the
    OpenAPI document as x-strata-minimum-role so that clients (and the API fuzz test) know it."""
    found, rank = "public", -1
    pending = [dependant]
    while pending:
        current = pending.pop()
        role = getattr(current.call, "minimum_role", Role.viewer if current.call is current_user else None)
        if role is not None and role.rank > rank:
            found, rank = role.value, role.rank
        pending.extend(current.dependencies)
    return found


StaffUser = Annotated[User, role_at_least(Role.staff)]
AdminUser = Annotated[User, role_at_least(Role.admin)]


@dataclass(frozen=True)
class Caller:
    user: User
    # "key:<api key id>" for API keys, else "user:<user id>": whom the rate limit counts.
    identity: str
    # The key's own limit, else STRATA_RATE_LIMIT_PER_MINUTE.
    limit_per_minute: int


async def identified_caller(request: Request, user: CurrentUser) -> Caller:
    """The caller and their rate limit. Services take the token themselves (ask, search, predict,
    uploads, job starts, /v1), so that pages and routes count against the same limit."""
    credential = bearer_credential(request)
    # Not SettingsDep: FastAPI runs a sync dependency in a worker thread, a round trip per request.
    limit = get_settings().rate_limit_per_minute
    if credential.startswith(API_KEY_PREFIX):
        key_id, key_limit = rate_limits.remembered_api_key_identity(credential) or await coalesce.shared(
            ("key limit", credential), lambda: run_in_session(rate_limits.api_key_identity, plaintext=credential)
        )
        identity = f"key:{key_id}"
        limit = key_limit or limit
    else:
        identity = f"user:{user.id}"
    return Caller(user=user, identity=identity, limit_per_minute=limit)


IdentifiedCaller = Annotated[Caller, Depends(identified_caller)]
