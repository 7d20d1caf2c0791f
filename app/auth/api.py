from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import RedirectResponse

from app.auth import rate_limits, service
from app.auth.client_address import client_address, source_of
from app.auth.cookies import (
    SESSION_COOKIE,
    SIGN_IN_PATH,
    SIGNED_OUT_PATH,
    clear_session_cookie,
    safe_next_path,
    set_session_cookie,
    start_browser_session,
)
from app.auth.deps import AdminUser, CurrentUser, SessionDep, SettingsDep, bearer_credential
from app.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LoginIn,
    LoginOut,
    PasswordOut,
    RateLimitRequest,
    UserCreate,
    UserOut,
    UserUpdate,
)
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import Forbidden, StrataError, TooManyAttempts
from app.core.http import same_origin
from app.core.settings import get_settings

API_PREFIX = "/api/v1"
router = APIRouter(prefix=API_PREFIX, tags=["auth"])


async def take_sign_in_attempt(request: Request) -> str:
    """One sign-in attempt from the request's client address (429 with Retry-After beyond
    STRATA_LOGIN_ATTEMPTS_PER_MINUTE, whatever accounts it tries); returns the source that
    the account lockouts count."""
    settings = get_settings()
    address = client_address(
        peer=request.client.host if request.client else "",
        forwarded_for=request.headers.get("x-forwarded-for", ""),
        trusted_proxies=settings.trusted_proxies,
    )
    source = source_of(address)
    try:
        await ratelimit.take_token(f"sign-in:{source}", settings.login_attempts_per_minute)
    except TooManyAttempts as exc:
        raise TooManyAttempts(
            f"Too many sign-in attempts from your address; try again in {exc.retry_after_seconds} s.",
            exc.retry_after_seconds,
        ) from None
    return source


@router.post("/auth/login")
async def login(body: LoginIn, request: Request, response: Response, settings: SettingsDep) -> LoginOut:
    """Signs in with a password: the session token for `Authorization: Bearer`, also set as
    the browser's HttpOnly session cookie."""
    source = await take_sign_in_attempt(request)
    user = await run_in_session(
        service.authenticate, settings=settings, email=body.email, password=body.password, source=source
    )
    token = await run_in_session(service.create_session, settings=settings, user=user)
    set_session_cookie(response, token, settings)
    return LoginOut(token=token, user=UserOut.of(user))


def _back_to_sign_in(error: str, next_path: str, **extra: str) -> RedirectResponse:
    query = urlencode({"error": error, "next": next_path, **extra})
    return RedirectResponse(f"/login?{query}", status_code=status.HTTP_303_SEE_OTHER)


@router.post(SIGN_IN_PATH.removeprefix(API_PREFIX), include_in_schema=False)
async def sign_in_form(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> RedirectResponse:
    """The sign-in page's form posts here (a plain form POST, so that the session cookie
    is set by this response and never passes through a script). Success: on to the page
    named by the sign-in page's `next` parameter; failure: back to the sign-in page with an
    error code it explains."""
    origin = request.headers.get("origin", "")
    if origin and not same_origin(request.scope, origin):
        # Another site's page posting its own credentials would sign the visitor in as someone else.
        raise Forbidden("Sign in from Strata's own sign-in page.")
    settings = get_settings()
    # The sign-in page's own address carries `next`: read from the Referer, since the page may
    # have been reached by client-side navigation that its state never saw.
    referer_query = parse_qs(urlsplit(request.headers.get("referer", "")).query)
    next_path = safe_next_path(referer_query.get("next", ["/"])[0])
    try:
        source = await take_sign_in_attempt(request)
        user = await run_in_session(
            service.authenticate, settings=settings, email=email, password=password, source=source
        )
    except TooManyAttempts as exc:
        return _back_to_sign_in("throttled", next_path, retry=str(exc.retry_after_seconds))
    except Forbidden as exc:
        return _back_to_sign_in(
            "password-off" if exc.message == service.PASSWORD_LOGIN_OFF else "deactivated", next_path
        )
    except StrataError:
        return _back_to_sign_in("credentials", next_path)
    response = RedirectResponse(next_path, status_code=status.HTTP_303_SEE_OTHER)
    await run_in_session(start_browser_session, settings=settings, user=user, response=response)
    return response


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(_: CurrentUser, request: Request, response: Response, db_session: SessionDep) -> None:
    """Ends the calling session. API keys are revoked, not logged out."""
    token = bearer_credential(request) or request.cookies.get(SESSION_COOKIE, "")
    service.end_session(db_session=db_session, token=token)
    clear_session_cookie(response)


@router.post(SIGNED_OUT_PATH.removeprefix(API_PREFIX), include_in_schema=False, status_code=status.HTTP_204_NO_CONTENT)
def signed_out(request: Request, response: Response) -> None:
    """Called by the UI's Sign out once it has ended the session: only a response can remove
    an HttpOnly cookie."""
    origin = request.headers.get("origin", "")
    if origin and not same_origin(request.scope, origin):
        raise Forbidden("Sign out from Strata's own pages.")
    clear_session_cookie(response)


@router.get("/me")
def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)


@router.get("/users")
def list_users(user: AdminUser, db_session: SessionDep) -> list[UserOut]:
    return [UserOut.of(each) for each in service.list_users(db_session=db_session, actor=user)]


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, user: AdminUser, db_session: SessionDep) -> UserOut:
    created = service.create_user(
        db_session=db_session, actor=user, email=body.email, name=body.name, role=body.role, password=body.password
    )
    return UserOut.of(created)


@router.patch("/users/{user_id}")
def update_user(user_id: int, body: UserUpdate, user: AdminUser, db_session: SessionDep) -> UserOut:
    updated = service.update_user(
        db_session=db_session, actor=user, user_id=user_id, role=body.role, active=body.is_active
    )
    return UserOut.of(updated)


@router.post("/users/{user_id}/reset-password")
def reset_password(user_id: int, user: AdminUser, db_session: SessionDep) -> PasswordOut:
    _, password = service.reset_password(db_session=db_session, actor=user, user_id=user_id)
    return PasswordOut(password=password)


@router.get("/keys")
def list_keys(user: AdminUser, db_session: SessionDep, user_id: int | None = None) -> list[ApiKeyOut]:
    pairs = service.list_api_keys(db_session=db_session, actor=user, user_id=user_id)
    return [ApiKeyOut.of(key, owner) for key, owner in pairs]


@router.post("/keys", status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, user: AdminUser, db_session: SessionDep) -> ApiKeyCreated:
    key, plaintext = service.create_api_key(db_session=db_session, actor=user, user_id=body.user_id, name=body.name)
    owner = service.get_user(db_session=db_session, actor=user, user_id=key.user_id)
    return ApiKeyCreated(**ApiKeyOut.of(key, owner).model_dump(), key=plaintext)


@router.delete("/keys/{key_id}")
def revoke_key(key_id: int, user: AdminUser, db_session: SessionDep) -> ApiKeyOut:
    key = service.revoke_api_key(db_session=db_session, actor=user, key_id=key_id)
    return ApiKeyOut.of(key, service.get_user(db_session=db_session, actor=user, user_id=key.user_id))


@router.put("/api-keys/{key_id}/rate-limit", status_code=status.HTTP_204_NO_CONTENT)
def set_api_key_rate_limit(key_id: int, body: RateLimitRequest, user: AdminUser, db_session: SessionDep) -> None:
    """An API key's own requests a minute; null returns it to STRATA_RATE_LIMIT_PER_MINUTE."""
    rate_limits.set_api_key_limit(
        db_session=db_session, actor=user, key_id=key_id, requests_per_minute=body.requests_per_minute
    )
