"""Who is signed in, for every page state. Each page state subclasses AuthState, and
every event handler that reads or changes data is wrapped in @guarded(role)."""

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import reflex as rx
import structlog

from app.auth import oidc
from app.auth import service as auth_service
from app.auth.client_address import address_of_handshake
from app.auth.cookies import SIGNED_OUT_PATH, session_token_from_cookie_header
from app.auth.tables import User
from app.core.db import run_in_session
from app.core.errors import StrataError, Unauthorized
from app.core.request_address import request_address
from app.core.roles import Role, require_role
from app.core.settings import get_settings

_acting_user: ContextVar[User] = ContextVar("acting_user")


def acting_user() -> User:
    """The user whose event is being handled (inside a @guarded handler or a live refresh)."""
    return _acting_user.get()


@contextmanager
def acting_as(user: User) -> Iterator[None]:
    reset = _acting_user.set(user)
    try:
        yield
    finally:
        _acting_user.reset(reset)


class AuthState(rx.State):
    """The session token is never a state var (those reach the browser): the browser sends
    its HttpOnly session cookie with the websocket handshake, and the server reads it from
    the connection's headers (app/auth/cookies.py)."""

    user_email: str = ""
    user_name: str = ""
    user_role: str = ""
    # "checking" until the page's on_load has looked at the session, then "allowed" or "denied".
    access: str = "checking"
    denied_reason: str = ""

    @rx.var
    def is_staff(self) -> bool:
        return self.user_role in (Role.staff.value, Role.admin.value)

    @rx.var
    def is_admin(self) -> bool:
        return self.user_role == Role.admin.value

    def _session_token(self) -> str:
        return session_token_from_cookie_header(self.router.headers.cookie)

    def _client_address(self) -> str:
        """For the audit entries this event's work writes."""
        return address_of_handshake(self.router.headers.raw_headers)

    async def _require(self, minimum: Role) -> User:
        user = await run_in_session(auth_service.user_for_session, token=self._session_token())
        if user is None:
            raise Unauthorized("Your session has expired; sign in again.")
        self.user_email, self.user_name, self.user_role = user.email, user.name, user.role
        require_role(user, minimum)
        return user

    def _signed_out(self, message: str):
        """To sign-in, saying why only if there was a session (once, however many handlers ask)."""
        had_session = bool(self._session_token())
        self.user_email = self.user_name = self.user_role = ""
        redirect = rx.redirect(f"/login?next={self.router.url.path}")
        return [rx.toast.error(message), redirect] if had_session else redirect

    @rx.event
    async def open_page(self, minimum: str = Role.viewer.value):
        """on_load of every page: signed-out users go to sign-in, others see the page or a refusal."""
        self.access = "checking"
        try:
            await self._require(Role(minimum))
        except Unauthorized as exc:
            return self._signed_out(exc.message)
        except StrataError as exc:
            self.access, self.denied_reason = "denied", exc.message
            return None
        self.access, self.denied_reason = "allowed", ""
        return None

    @rx.event
    async def sign_out(self):
        with request_address(self._client_address()):
            await run_in_session(auth_service.end_session, token=self._session_token())
        self.user_email = self.user_name = self.user_role = ""
        # Only a response can remove the HttpOnly cookie. This page's websocket keeps the old
        # one in its handshake headers, but that session has just ended; signing in again
        # loads a page, and so opens a new websocket.
        return [
            rx.call_script(f"fetch({SIGNED_OUT_PATH!r}, {{method: 'POST', credentials: 'same-origin'}})"),
            rx.redirect("/login"),
        ]


def guarded(minimum: Role, *, background: bool = False):
    """Checks the caller's role before an event handler runs; turns errors into toasts.
    A background handler (`@rx.event(background=True)`) passes background=True: its check
    runs under the state lock, and its body takes the lock itself."""

    def decorate(handler):
        async def refusal_or_user(self: AuthState):
            try:
                return None, await self._require(minimum)
            except Unauthorized as exc:
                return self._signed_out(exc.message), None
            except StrataError as exc:
                return rx.toast.error(exc.message), None

        @functools.wraps(handler)
        async def wrapper(self: AuthState, *args, **kwargs):
            if background:
                async with self:
                    refusal, user = await refusal_or_user(self)
            else:
                refusal, user = await refusal_or_user(self)
            if user is None:
                return refusal
            reset = _acting_user.set(user)
            try:
                with structlog.contextvars.bound_contextvars(user_id=user.id), request_address(self._client_address()):
                    return await handler(self, *args, **kwargs)
            except StrataError as exc:
                return rx.toast.error(exc.message)
            finally:
                _acting_user.reset(reset)

        wrapper.minimum_role = minimum

        return wrapper

    return decorate


class LoginState(AuthState):
    """The sign-in page: its form posts to SIGN_IN_PATH (app/auth/api.py), which sets the
    session cookie and sends the browser on, or back here with an error code."""

    @rx.var(cache=False)
    def error(self) -> str:
        query = self.router.url.query_parameters
        code = query.get("error", "")
        if code == "throttled":
            return f"Too many sign-in attempts from your address; try again in {query.get('retry', 'a few')} s."
        if code == "password-off":
            return auth_service.PASSWORD_LOGIN_OFF
        if code == "deactivated":
            return "This account is deactivated. Ask an admin to reactivate it."
        if code == "credentials":
            return auth_service.wrong_credentials_message(get_settings())
        return oidc.PROBLEMS.get(code, "")


@dataclass
class UserRow:
    id: int
    email: str
    name: str
    role: str
    active: bool
    created: str


@dataclass
class KeyRow:
    id: int
    name: str
    prefix: str
    owner: str
    created: str
    last_used: str
    revoked: bool


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


class UsersState(AuthState):
    users: list[UserRow] = []
    # A reset password, shown once to the admin who reset it.
    password_notice: str = ""

    @rx.event
    @guarded(Role.admin)
    async def load(self):
        await self._reload()

    @rx.event
    @guarded(Role.admin)
    async def create(self, form: dict):
        user = await run_in_session(
            auth_service.create_user,
            actor=acting_user(),
            email=str(form.get("email", "")),
            name=str(form.get("name", "")),
            role=str(form.get("role") or Role.viewer.value),
            password=str(form.get("password", "")),
        )
        await self._reload()
        return rx.toast.success(f"Created {user.email} ({user.role}).")

    @rx.event
    @guarded(Role.admin)
    async def change_role(self, user_id: int, role: str):
        user = await run_in_session(auth_service.update_user, actor=acting_user(), user_id=user_id, role=role)
        await self._reload()
        return rx.toast.success(f"{user.email} is now {user.role}.")

    @rx.event
    @guarded(Role.admin)
    async def change_active(self, user_id: int, active: bool):
        user = await run_in_session(auth_service.update_user, actor=acting_user(), user_id=user_id, active=active)
        await self._reload()
        return rx.toast.success(f"{user.email} {'reactivated' if active else 'deactivated'}.")

    @rx.event
    @guarded(Role.admin)
    async def reset_password(self, user_id: int):
        user, password = await run_in_session(auth_service.reset_password, actor=acting_user(), user_id=user_id)
        self.password_notice = f"New password for {user.email}: {password}"

    @rx.event
    def dismiss_notice(self):
        self.password_notice = ""

    async def _reload(self) -> None:
        users = await run_in_session(auth_service.list_users, actor=acting_user())
        self.users = [UserRow(u.id, u.email, u.name, u.role, u.is_active, _when(u.created_at)) for u in users]


class KeysState(AuthState):
    keys: list[KeyRow] = []
    owner_emails: list[str] = []
    # The secret of a key just created: shown once, never stored.
    created_key: str = ""

    @rx.event
    @guarded(Role.admin)
    async def load(self):
        await self._reload()

    @rx.event
    @guarded(Role.admin)
    async def create(self, form: dict):
        owner = await run_in_session(auth_service.find_user, actor=acting_user(), email=str(form.get("owner", "")))
        _, plaintext = await run_in_session(
            auth_service.create_api_key, actor=acting_user(), user_id=owner.id, name=str(form.get("name", ""))
        )
        self.created_key = plaintext
        await self._reload()
        return None

    @rx.event
    @guarded(Role.admin)
    async def revoke(self, key_id: int):
        await run_in_session(auth_service.revoke_api_key, actor=acting_user(), key_id=key_id)
        await self._reload()
        return rx.toast.success("Key revoked; it stops working at once.")

    @rx.event
    def dismiss_key(self):
        self.created_key = ""

    async def _reload(self) -> None:
        pairs = await run_in_session(auth_service.list_api_keys, actor=acting_user())
        self.keys = [
            KeyRow(
                k.id, k.name, k.prefix, u.email, _when(k.created_at), _when(k.last_used_at), k.revoked_at is not None
            )
            for k, u in pairs
        ]
        users = await run_in_session(auth_service.list_users, actor=acting_user())
        self.owner_emails = [u.email for u in users if u.is_active]
