"""Users, sign-in sessions and API keys."""

import re
import threading
import time
from datetime import timedelta

import structlog
from sqlmodel import Session, col, func, select

from app.auth.tables import ApiKey, User, UserSession
from app.core import security
from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyAttempts, Unauthorized
from app.core.roles import Role
from app.core.settings import Settings
from app.core.time import utcnow

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD_LENGTH = 8
PASSWORD_LOGIN_OFF = "Password sign-in is turned off here: use the company sign-in button."
WRONG_CREDENTIALS = "Wrong email or password."

# Who changed what: the acting user id is bound to the log context by the API or the UI.
audit = structlog.get_logger("strata.audit")


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


def get_user(*, db_session: Session, user_id: int) -> User:
    user = db_session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id}.")
    return user


def get_user_by_email(*, db_session: Session, email: str) -> User | None:
    return db_session.exec(select(User).where(User.email == email.strip().lower())).first()


def list_users(*, db_session: Session) -> list[User]:
    return list(db_session.exec(select(User).order_by(col(User.email))))


def create_user(*, db_session: Session, email: str, name: str, role: str, password: str) -> User:
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise InvalidInput(f"{email!r} is not an email address.")
    _check_password_strength(password)
    if get_user_by_email(db_session=db_session, email=email):
        raise Conflict(f"A user with email {email} already exists.")
    user = User(
        email=email,
        name=name.strip() or email.split("@")[0],
        role=parse_role(role).value,
        password_hash=security.hash_password(password),
    )
    db_session.add(user)
    db_session.flush()
    audit.info("user.created", target_user_id=user.id, role=user.role)
    return user


def _count_active_admins(db_session: Session) -> int:
    query = select(func.count()).select_from(User).where(User.role == Role.admin.value, User.is_active)
    return db_session.exec(query).one()


def _refuse_losing_last_admin(db_session: Session, user: User) -> None:
    if user.role == Role.admin.value and user.is_active and _count_active_admins(db_session) <= 1:
        raise Conflict("This is the last active admin; make another admin first.")


def set_role(*, db_session: Session, user_id: int, role: str) -> User:
    user = get_user(db_session=db_session, user_id=user_id)
    new_role = parse_role(role)
    if new_role != Role.admin:
        _refuse_losing_last_admin(db_session, user)
    user.role = new_role.value
    db_session.add(user)
    _remembered.forget(user_id=user.id)
    audit.info("user.role_set", target_user_id=user.id, role=user.role)
    return user


def set_active(*, db_session: Session, user_id: int, active: bool) -> User:
    user = get_user(db_session=db_session, user_id=user_id)
    if not active:
        _refuse_losing_last_admin(db_session, user)
        _end_sessions(db_session, user.id)
    user.is_active = active
    db_session.add(user)
    _remembered.forget(user_id=user.id)
    audit.info("user.activated" if active else "user.deactivated", target_user_id=user.id)
    return user


def reset_password(*, db_session: Session, user_id: int, new_password: str | None = None) -> str:
    """Sets the password (generated when none is given), ends the user's sessions, returns it."""
    user = get_user(db_session=db_session, user_id=user_id)
    password = new_password or security.new_password()
    _check_password_strength(password)
    user.password_hash = security.hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    _end_sessions(db_session, user.id)
    db_session.add(user)
    audit.info("user.password_reset", target_user_id=user.id)
    return password


def _end_sessions(db_session: Session, user_id: int) -> None:
    for session in db_session.exec(select(UserSession).where(UserSession.user_id == user_id)):
        db_session.delete(session)
    _remembered.forget(user_id=user_id)


def authenticate(*, db_session: Session, settings: Settings, email: str, password: str) -> User:
    """Checks a password. Repeated failures lock the account for a while."""
    if not settings.password_login and email.strip().lower() != settings.admin_email.strip().lower():
        # Decided before any lookup: the same answer for every address but the break-glass admin's.
        raise Forbidden(PASSWORD_LOGIN_OFF)
    user = get_user_by_email(db_session=db_session, email=email)
    if user is None:
        # Same work as a real check, so timing does not reveal which emails exist.
        security.verify_password(security.hash_password("x" * MIN_PASSWORD_LENGTH), password)
        raise Unauthorized(WRONG_CREDENTIALS)
    now = utcnow()
    if user.locked_until and user.locked_until > now:
        seconds = int((user.locked_until - now).total_seconds()) + 1
        raise TooManyAttempts(
            f"Too many failed sign-ins. Try again in {max(1, round(seconds / 60))} minute(s).", seconds
        )
    if not security.verify_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= settings.login_max_failures:
            user.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
            user.failed_logins = 0
            audit.warning("user.locked_out", target_user_id=user.id, minutes=settings.login_lockout_minutes)
        db_session.add(user)
        # Committed here: the caller's transaction rolls back on the error we raise.
        db_session.commit()
        raise Unauthorized(WRONG_CREDENTIALS)
    if not user.is_active:
        raise Forbidden("This account is deactivated. Ask an admin to reactivate it.")
    user.failed_logins = 0
    user.locked_until = None
    db_session.add(user)
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
        db_session.delete(session)


def create_api_key(*, db_session: Session, user_id: int, name: str) -> tuple[ApiKey, str]:
    """Returns the stored key and its plaintext, which is never retrievable again."""
    user = get_user(db_session=db_session, user_id=user_id)
    plaintext = security.new_api_key()
    key = ApiKey(
        user_id=user.id,
        name=name.strip() or "API key",
        prefix=plaintext[: len(security.API_KEY_PREFIX) + 4],
        key_hash=security.token_hash(plaintext),
    )
    db_session.add(key)
    db_session.flush()
    audit.info("api_key.created", api_key_id=key.id, owner_user_id=user.id)
    return key, plaintext


def list_api_keys(*, db_session: Session, user_id: int | None = None) -> list[tuple[ApiKey, User]]:
    query = select(ApiKey, User).join(User).order_by(col(ApiKey.created_at).desc())
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(db_session.exec(query))


def revoke_api_key(*, db_session: Session, key_id: int) -> ApiKey:
    key = db_session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"No API key with id {key_id}.")
    _remembered.forget(digest=key.key_hash)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db_session.add(key)
        audit.info("api_key.revoked", api_key_id=key.id)
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
        email=settings.admin_email,
        name="Administrator",
        role=Role.admin.value,
        password=password,
    )
    return None if settings.admin_password else password
