"""The browser session cookie: set only by the server, never readable by the page's scripts.

HttpOnly, so a script injected into a page (or an uploaded document that ran as one) cannot
read it; SameSite=Strict, so no other site's page sends it; Secure in production. The Reflex
UI never holds the token in its state: states read it from the Cookie header of their
websocket handshake (app/auth/state.py), which the browser sends on its own."""

from fastapi import Response
from sqlmodel import Session

from app.auth import service
from app.auth.tables import User
from app.core.settings import Settings

SESSION_COOKIE = "strata_session"
# The browser's sign-in form posts to SIGN_IN_PATH; Sign out ends the session, then loads
# SIGNED_OUT_PATH, whose response removes the cookie (app/auth/api.py).
SIGN_IN_PATH = "/api/v1/auth/sign-in"
SIGNED_OUT_PATH = "/api/v1/auth/signed-out"


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        path="/",
        httponly=True,
        secure=settings.env == "prod",
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def start_browser_session(*, db_session: Session, settings: Settings, user: User, response: Response) -> str:
    """Signs `user` in on this browser: a new session whose cookie `response` sets. Returns the token."""
    token = service.create_session(db_session=db_session, settings=settings, user=user)
    set_session_cookie(response, token, settings)
    return token


def session_token_from_cookie_header(cookie_header: str) -> str:
    """The session token in a raw Cookie header ("" when there is none or the header is malformed)."""
    # Split by hand: http.cookies stops at the first cookie it cannot parse, and any site on
    # a parent domain can plant such a cookie.
    for pair in cookie_header.split(";"):
        name, _, value = pair.strip().partition("=")
        if name == SESSION_COOKIE:
            return value.strip().strip('"')
    return ""


def safe_next_path(target: str) -> str:
    """Where to go after signing in: a path on this site, never another site (an open
    redirect would lend Strata's sign-in page to phishing)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return "/"
