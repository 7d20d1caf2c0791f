"""Users, sign-in sessions and API keys.

Every function that acts on someone's behalf takes the acting user (`actor`) and checks
their role itself; `SYSTEM` is Strata acting on its own (first start, the `strata` command,
which only whoever runs the server can use)."""

import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import NoReturn

from sqlalchemy import ColumnElement, case, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, func, select

from app.audit.service import record
from app.auth.tables import ApiKey, SignInAttempts, User, UserSession
from app.core import security
from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound, StrataError, Unauthorized
from app.core.roles import Actor, Role, require_role
from app.core.settings import Settings
from app.core.time import utcnow

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
PASSWORD_LOGIN_OFF = "Password sign-in is turned off here: use the company sign-in button."


@dataclass(frozen=True)
class SystemActor:
    """Strata itself (satisfies app.core.roles.Actor): acts with the admin role, as nobody."""

    id: None = None
    role: str = Role.admin.value


SYSTEM = SystemActor()


# How long a process trusts a credential it checked, so that API traffic does not read the
# database on every request. Revoking a key, ending a session, changing a user's role, active
# flag or password forgets the user's credentials in this process at once; another process
# (a second web replica, the UI's own checks) acts on such a change within this many seconds.
CREDENTIAL_CACHE_SECONDS = 2.0
_MAX_REMEMBERED_CREDENTIALS = 10_000


class _RememberedCredentials:
    """Credential digest -> (trusted until, monotonic; the user as read then). Only credentials
    that resolved to an active user are kept: unknown ones always go to the database."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> User | None:
        entry = self._entries.get(digest)
        if entry is None or time.monotonic() >= entry[0]:
            return None
        return entry[1]

    def put(self, digest: str, user: User, seconds: float) -> None:
        with self._lock:
            if len(self._entries) >= _MAX_REMEMBERED_CREDENTIALS:
                now = time.monotonic()
                self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
            self._entries[digest] = (time.monotonic() + min(seconds, CREDENTIAL_CACHE_SECONDS), user)

    def forget(self, *, digest: str | None = None, user_id: int | None = None) -> None:
        with self._lock:
            if digest is not None:
                self._entries.pop(digest, None)
            if user_id is not None:
                self._entries = {d: e for d, e in self._entries.items() if e[1].id != user_id}


_remembered = _RememberedCredentials()


def remembered_user(credential: str) -> User | None:
    """The active user behind an API key or session token checked in the last
    CREDENTIAL_CACHE_SECONDS, without a database trip; None: ask user_for_api_key /
    user_for_session. The User is shared between requests: read it, never change it."""
    return _remembered.get(security.token_hash(credential)) if credential else None


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"Unknown role {role!r}; choose one of admin, staff, viewer.") from None


def _check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Passwords need at least {MIN_PASSWORD_LENGTH} characters.")


def _user(db_session: Session, user_id: int) -> User:
    user = db_session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def _user_by_email(db_session: Session, email: str) -> User | None:
    return db_session.exec(select(User).where(User.email == email.strip().lower())).first()


def get_user(*, db_session: Session, actor: Actor, user_id: int) -> User:
    """A user's record: admins read anyone's, others only their own."""
    if actor.id != user_id:
        require_role(actor, Role.admin)
    return _user(db_session, user_id)


def find_user(*, db_session: Session, actor: Actor, email: str) -> User:
    require_role(actor, Role.admin)
    user = _user_by_email(db_session, email)
    if user is None:
        raise NotFound(f"No user with email {email.strip().lower()}.")
    return user


def list_users(*, db_session: Session, actor: Actor) -> list[User]:
    require_role(actor, Role.admin)
    return list(db_session.exec(select(User).order_by(col(User.email))))


def create_user(*, db_session: Session, actor: Actor, email: str, name: str, role: str, password: str) -> User:
    require_role(actor, Role.admin)
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise InvalidInput(f"{email!r} is not an email address.")
    _check_password_strength(password)
    if _user_by_email(db_session, email):
        raise Conflict(f"A user with email {email} already exists.")
    user = User(
        email=email,
        name=name.strip() or email.split("@")[0],
        role=parse_role(role).value,
        password_hash=security.hash_password(password),
    )
    db_session.add(user)
    db_session.flush()
    record(
        db_session=db_session,
        actor=actor,
        action="user.created",
        target=user.email,
        target_id=user.id,
        new={"email": user.email, "name": user.name, "role": user.role, "active": user.is_active},
    )
    return user


def _count_active_admins(db_session: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == Role.admin.value, User.is_active)
    return db_session.exec(query).one()


def _refuse_losing_last_admin(db_session: Session, user: User) -> None:
    if user.role == Role.admin.value and user.is_active and _count_active_admins(db_session) <= 1:
        raise Conflict("This is the last active admin; make another admin first.")


def update_user(
    *, db_session: Session, actor: Actor, user_id: int, role: str | None = None, active: bool | None = None
) -> User:
    """Changes a user's role and/or active flag; deactivating ends their sessions."""
    require_role(actor, Role.admin)
    user = _user(db_session, user_id)
    if role is not None:
        new_role = parse_role(role)
        if new_role != Role.admin:
            _refuse_losing_last_admin(db_session, user)
        if user.role != new_role.value:
            record(
                db_session=db_session,
                actor=actor,
                action="user.role_set",
                target=user.email,
                target_id=user.id,
                old={"role": user.role},
                new={"role": new_role.value},
            )
        user.role = new_role.value
    if active is not None:
        if not active:
            _refuse_losing_last_admin(db_session, user)
            _end_sessions(db_session, user.id)
        if user.is_active != active:
            record(
                db_session=db_session,
                actor=actor,
                action="user.activated" if active else "user.deactivated",
                target=user.email,
                target_id=user.id,
                old={"active": user.is_active},
                new={"active": active},
            )
        user.is_active = active
    db_session.add(user)
    _remembered.forget(user_id=user.id)
    return user


def reset_password(
    *, db_session: Session, actor: Actor, user_id: int, new_password: str | None = None
) -> tuple[User, str]:
    """Sets the password (generated when none is given), lifts its lockouts, ends the user's
    sessions; returns the user and the password."""
    require_role(actor, Role.admin)
    user = _user(db_session, user_id)
    password = new_password or security.new_password()
    _check_password_strength(password)
    user.password_hash = security.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    db_session.exec(delete(SignInAttempts).where(SignInAttempts.user_id == user.id))
    _end_sessions(db_session, user.id)
    db_session.add(user)
    record(
        db_session=db_session,
        actor=actor,
        action="user.password_reset",
        target=user.email,
        target_id=user.id,
        detail="a password the admin chose" if new_password else "a generated password",
    )
    return user, password


def _end_sessions(db_session: Session, user_id: int) -> None:
    for session in db_session.exec(select(UserSession).where(UserSession.user_id == user_id)):
        db_session.delete(session)
    _remembered.forget(user_id=user_id)


# ------------------------------------------------------------------ password sign-in
#
# Every refusal looks the same (status, message, headers) whether the email is unknown,
# the password wrong, the account locked or deactivated, and costs one password check:
# the answer tells a guesser nothing about which accounts exist. A locked account answers
# the same even to its right password, or the lock would tell a guesser which guess was
# right. Attempts are counted before the password is checked, by single UPDATE statements,
# so parallel guesses cannot check more passwords than the limit allows.


def wrong_credentials_message(settings: Settings) -> str:
    return (
        f"Wrong email or password. After {settings.login_max_failures} failed attempts, "
        f"sign-in pauses for {settings.login_lockout_minutes:g} minutes."
    )


@cache
def _dummy_password_hash() -> str:
    """Checked against for refusals that have no real hash to check: made once, with the
    same parameters as real hashes, so checking it costs what a real check costs."""
    return security.hash_password(secrets.token_urlsafe(16))


def _take_attempt(count: ColumnElement, window_ends: ColumnElement, *, now: datetime, limit: int, window: timedelta):
    """SET clauses that count one attempt: a window past its end starts again at 1, and an
    attempt within the limit pushes the window's end `window` past now (so a lockout lasts
    `window` after the last attempt that was checked). Evaluated by the database on the
    row's current values, so concurrent attempts each get their own number."""
    expired = or_(window_ends.is_(None), window_ends <= now)
    return {
        count.name: case((expired, 1), else_=count + 1),
        window_ends.name: case((or_(expired, count < limit), now + window), else_=window_ends),
    }


def _take_source_attempt(db_session: Session, *, user_id: int, source: str, now: datetime, settings: Settings) -> int:
    """The number of this attempt on the account from this source in its window."""
    table = SignInAttempts.__table__
    window = timedelta(minutes=settings.login_lockout_minutes)
    dialect = postgresql if db_session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(table)
        .values(user_id=user_id, source=source, attempts=1, window_ends=now + window)
        .on_conflict_do_update(
            index_elements=[table.c.user_id, table.c.source],
            set_=_take_attempt(
                table.c.attempts, table.c.window_ends, now=now, limit=settings.login_max_failures, window=window
            ),
        )
        .returning(table.c.attempts)
    )
    return db_session.execute(statement).scalar_one()


def _take_account_attempt(db_session: Session, *, user_id: int, now: datetime, settings: Settings) -> int:
    """The number of this attempt on the account from all sources in its window."""
    table = User.__table__
    statement = (
        update(table)
        .where(table.c.id == user_id)
        .values(
            _take_attempt(
                table.c.failed_logins,
                table.c.locked_until,
                now=now,
                limit=settings.login_account_max_failures,
                window=timedelta(minutes=settings.login_lockout_minutes),
            )
        )
        .returning(table.c.failed_logins)
    )
    return db_session.execute(statement).scalar() or 0


def _refuse_sign_in(db_session: Session, error: StrataError, *, email: str, user: User | None, reason: str) -> NoReturn:
    """Audits a refused sign-in (the e-mail tried, never the password) and commits the entry
    now: the caller rolls back on the error raised."""
    record(
        db_session=db_session,
        actor=None,
        action="session.sign_in_failed",
        target=email.strip().lower(),
        target_id=user.id if user else None,
        detail=reason,
    )
    db_session.commit()
    raise error


def authenticate(*, db_session: Session, settings: Settings, email: str, password: str, source: str) -> User:
    """Checks a password sent from `source` (app/auth/client_address.py). After
    login_max_failures attempts on an account from one source, that source is refused for
    login_lockout_minutes; after login_account_max_failures from all sources, everyone is.
    Every outcome is audited (the reason for a refusal is in the audit log only)."""
    if not settings.password_login and email.strip().lower() != settings.admin_email.strip().lower():
        # Decided before any lookup: the same answer for every address but the break-glass admin's.
        _refuse_sign_in(
            db_session, Forbidden(PASSWORD_LOGIN_OFF), email=email, user=None, reason="password sign-in is off"
        )
    refused = Unauthorized(wrong_credentials_message(settings))
    user = _user_by_email(db_session, email)
    now = utcnow()
    if user is None:
        # The database work of a known account's attempt (on no row), then the same check.
        _take_account_attempt(db_session, user_id=0, now=now, settings=settings)
        db_session.commit()
        security.verify_password(_dummy_password_hash(), password)
        _refuse_sign_in(db_session, refused, email=email, user=None, reason="no such account")
    within_limits = (
        _take_source_attempt(db_session, user_id=user.id, source=source, now=now, settings=settings)
        <= settings.login_max_failures
        and _take_account_attempt(db_session, user_id=user.id, now=now, settings=settings)
        <= settings.login_account_max_failures
    )
    # Now, not with the caller's transaction: other attempts must see this one while the
    # password is checked, and the caller rolls back on the error raised below.
    db_session.commit()
    if not within_limits:
        security.verify_password(_dummy_password_hash(), password)
        _refuse_sign_in(db_session, refused, email=email, user=user, reason="locked out after too many attempts")
    if not security.verify_password(user.password_hash, password):
        _refuse_sign_in(db_session, refused, email=email, user=user, reason="wrong password")
    if not user.is_active:
        deactivated = Forbidden("This account is deactivated. Ask an admin to reactivate it.")
        _refuse_sign_in(db_session, deactivated, email=email, user=user, reason="account deactivated")
    # This source's count, and any other source's that has run out.
    db_session.exec(
        delete(SignInAttempts).where(
            SignInAttempts.user_id == user.id,
            or_(SignInAttempts.source == source, col(SignInAttempts.window_ends) <= now),
        )
    )
    db_session.execute(update(User.__table__).where(User.id == user.id).values(failed_logins=0, locked_until=None))
    record(
        db_session=db_session,
        actor=user,
        action="session.signed_in",
        target=user.email,
        target_id=user.id,
        detail="password",
    )
    return user


def create_session(*, db_session: Session, settings: Settings, user: User) -> str:
    token = security.new_token()
    db_session.add(
        UserSession(
            token_hash=security.token_hash(token),
            user_id=user.id,
            expires_at=utcnow() + timedelta(hours=settings.session_hours),
        )
    )
    return token


def user_for_session(*, db_session: Session, token: str) -> User | None:
    """The active user behind a session token, or None if it is unknown or expired."""
    if not token:
        return None
    session = db_session.exec(select(UserSession).where(UserSession.token_hash == security.token_hash(token))).first()
    if session is None:
        return None
    now = utcnow()
    if session.expires_at <= now:
        db_session.delete(session)
        return None
    user = db_session.get(User, session.user_id)
    if user is None or not user.is_active:
        return None
    _remembered.put(session.token_hash, user, (session.expires_at - now).total_seconds())
    return user


def end_session(*, db_session: Session, token: str) -> None:
    digest = security.token_hash(token)
    _remembered.forget(digest=digest)
    session = db_session.exec(select(UserSession).where(UserSession.token_hash == digest)).first()
    if session:
        user = db_session.get(User, session.user_id)
        if user is not None:
            record(db_session=db_session, actor=user, action="session.signed_out", target=user.email, target_id=user.id)
        db_session.delete(session)


def create_api_key(*, db_session: Session, actor: Actor, user_id: int, name: str) -> tuple[ApiKey, str]:
    """Returns the stored key and its plaintext, which is never retrievable again."""
    require_role(actor, Role.admin)
    user = _user(db_session, user_id)
    plaintext = security.new_api_key()
    key = ApiKey(
        user_id=user.id,
        name=name.strip() or "API key",
        prefix=plaintext[: len(security.API_KEY_PREFIX) + 4],
        key_hash=security.token_hash(plaintext),
    )
    db_session.add(key)
    db_session.flush()
    record(
        db_session=db_session,
        actor=actor,
        action="api_key.created",
        target=f"{key.name} ({key.prefix}…) of {user.email}",
        target_id=key.id,
        new={"name": key.name, "prefix": key.prefix, "owner": user.email},
    )
    return key, plaintext


def list_api_keys(*, db_session: Session, actor: Actor, user_id: int | None = None) -> list[tuple[ApiKey, User]]:
    require_role(actor, Role.admin)
    query = select(ApiKey, User).join(User).order_by(col(ApiKey.created_at).desc())
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(db_session.exec(query))


def revoke_api_key(*, db_session: Session, actor: Actor, key_id: int) -> ApiKey:
    require_role(actor, Role.admin)
    key = db_session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"No API key with id {key_id}.")
    _remembered.forget(digest=key.key_hash)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db_session.add(key)
        owner = db_session.get(User, key.user_id)
        record(
            db_session=db_session,
            actor=actor,
            action="api_key.revoked",
            target=f"{key.name} ({key.prefix}…) of {owner.email if owner else 'a deleted user'}",
            target_id=key.id,
            old={"revoked": False},
            new={"revoked": True},
        )
    return key


LAST_USED_PRECISION = timedelta(minutes=1)


def user_for_api_key(*, db_session: Session, plaintext: str) -> User | None:
    key = db_session.exec(select(ApiKey).where(ApiKey.key_hash == security.token_hash(plaintext))).first()
    if key is None or key.revoked_at is not None:
        return None
    user = db_session.get(User, key.user_id)
    if user is None or not user.is_active:
        return None
    now = utcnow()
    # A write per request would serialise all API traffic on the database; a minute's precision is enough.
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        key.last_used_at = now
        db_session.add(key)
    _remembered.put(key.key_hash, user, CREDENTIAL_CACHE_SECONDS)
    return user


def ensure_admin(*, db_session: Session, settings: Settings) -> str | None:
    """Creates the first admin if there is no user yet. Returns a generated password
    (to print once) when none was configured, else None."""
    if db_session.exec(select(func.count()).select_from(User)).one() > 0:
        return None
    password = settings.admin_password or security.new_password()
    create_user(
        db_session=db_session,
        actor=SYSTEM,
        email=settings.admin_email,
        name="Administrator",
        role=Role.admin.value,
        password=password,
    )
    return None if settings.admin_password else password
