"""Per-API-key rate limits: an admin's override of STRATA_RATE_LIMIT_PER_MINUTE for one key.
The bucket itself is app/core/ratelimit.py; this is whom it counts and at what limit."""

import time

from sqlmodel import Session, select

from app.audit.service import record
from app.auth.tables import ApiKey, ApiKeyRateLimit, User
from app.core.errors import InvalidInput, NotFound
from app.core.roles import Role, require_role
from app.core.security import token_hash

MAX_REQUESTS_PER_MINUTE = 1_000_000
# How long a process trusts what it read about an API key's limit.
KEY_LIMIT_TTL_SECONDS = 10.0

_key_limits: dict[str, tuple[float, int, int | None]] = {}


def remembered_api_key_identity(plaintext: str) -> tuple[int, int | None] | None:
    """What api_key_identity read for this key in the last few seconds, without a database trip."""
    cached = _key_limits.get(token_hash(plaintext))
    if cached and time.monotonic() - cached[0] < KEY_LIMIT_TTL_SECONDS:
        return cached[1], cached[2]
    return None


def api_key_identity(*, db_session: Session, plaintext: str) -> tuple[int, int | None]:
    """The key's id and its own limit (None: the default), remembered for a few seconds."""
    digest = token_hash(plaintext)
    row = db_session.exec(
        select(ApiKey.id, ApiKeyRateLimit.requests_per_minute)
        .join(ApiKeyRateLimit, ApiKeyRateLimit.api_key_id == ApiKey.id, isouter=True)
        .where(ApiKey.key_hash == digest)
    ).first()
    if row is None:
        raise NotFound("Unknown API key.")
    _key_limits[digest] = (time.monotonic(), row[0], row[1])
    return row[0], row[1]


def set_api_key_limit(*, db_session: Session, actor: User, key_id: int, requests_per_minute: int | None) -> None:
    """An admin sets one key's limit; None returns it to STRATA_RATE_LIMIT_PER_MINUTE."""
    require_role(actor, Role.admin)
    key = db_session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"No API key with id {key_id}.")
    if requests_per_minute is not None and not 1 <= requests_per_minute <= MAX_REQUESTS_PER_MINUTE:
        raise InvalidInput(f"A rate limit is 1 to {MAX_REQUESTS_PER_MINUTE} requests a minute.")
    override = db_session.get(ApiKeyRateLimit, key_id)
    old_limit = override.requests_per_minute if override else None
    if requests_per_minute is None:
        if override is not None:
            db_session.delete(override)
    else:
        override = override or ApiKeyRateLimit(api_key_id=key_id, requests_per_minute=requests_per_minute)
        override.requests_per_minute = requests_per_minute
        db_session.add(override)
    _key_limits.clear()
    if old_limit != requests_per_minute:
        owner = db_session.get(User, key.user_id)
        # None: the default, STRATA_RATE_LIMIT_PER_MINUTE.
        record(
            db_session=db_session,
            actor=actor,
            action="api_key.rate_limit_set",
            target=f"{key.name} ({key.prefix}…) of {owner.email if owner else 'a deleted user'}",
            target_id=key.id,
            old={"requests_per_minute": old_limit},
            new={"requests_per_minute": requests_per_minute},
        )
