"""Password sign-in as an attacker would try it: parallel guesses, telling accounts apart by
their answers, locking the admin out from afar, guessing fast from one address, and reading
the session cookie from a script."""

import statistics
import threading
import time
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import select

from app.api import build_api
from app.auth import service
from app.auth.service import SYSTEM
from app.auth.tables import SignInAttempts, User
from app.core.db import session_scope
from app.core.errors import Unauthorized
from app.core.settings import get_settings

STRANGER = "203.0.113.9"
OWNER = "198.51.100.20"
PASSWORD = "password-123"


@pytest.fixture
def configure(monkeypatch, db):
    """configure(LOGIN_MAX_FAILURES=3, ...): settings for the app and the services, as env vars."""

    def apply(**values) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"STRATA_{name}", str(value))
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


@asynccontextmanager
async def client_at(address: str):
    """An API client whose requests come from `address` (the peer address the server sees)."""
    transport = httpx.ASGITransport(app=build_api(), client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        yield client


async def login(client, email: str, password: str, **headers) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password}, headers=headers)


def attempt(email: str, password: str, source: str) -> str:
    try:
        with session_scope() as db_session:
            service.authenticate(
                db_session=db_session, settings=get_settings(), email=email, password=password, source=source
            )
        return "signed in"
    except Unauthorized:
        return "refused"


# ------------------------------------------------------------------ point 5: the lockout


def test_parallel_wrong_guesses_check_no_more_passwords_than_the_limit(make_user, settings):
    """Twenty guesses at once from one address: exactly login_max_failures passwords are
    checked (the account's counter, incremented once per checked guess, says so), the rest
    are refused unchecked, and the right password is refused from there afterwards."""
    make_user("victim@x.io", password=PASSWORD)
    guesses = 20
    barrier = threading.Barrier(guesses)
    results: list[str] = []

    def guess(number: int) -> None:
        barrier.wait()
        results.append(attempt("victim@x.io", f"wrong-guess-{number}", STRANGER))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == ["refused"] * guesses
    with session_scope() as db_session:
        victim = db_session.exec(select(User).where(User.email == "victim@x.io")).one()
        counted = db_session.exec(select(SignInAttempts).where(SignInAttempts.user_id == victim.id)).one()
        assert victim.failed_logins == settings.login_max_failures  # passwords actually checked
        assert counted.attempts == guesses
    assert attempt("victim@x.io", PASSWORD, STRANGER) == "refused"
    assert attempt("victim@x.io", PASSWORD, OWNER) == "signed in"


async def test_unknown_wrong_locked_and_deactivated_answer_exactly_alike(configure, redis_url, make_user):
    configure(LOGIN_MAX_FAILURES=2, LOGIN_ATTEMPTS_PER_MINUTE=1000)
    make_user("active@x.io", password=PASSWORD)
    make_user("locked@x.io", password=PASSWORD)
    make_user("admin@x.io", role="admin")
    gone = make_user("gone@x.io", password=PASSWORD)
    with session_scope() as db_session:
        service.update_user(db_session=db_session, actor=SYSTEM, user_id=gone.id, active=False)

    async with client_at(STRANGER) as client:
        for _ in range(3):
            await login(client, "locked@x.io", "wrong-password")
        answers = {
            "unknown email": await login(client, "nobody@x.io", "wrong-password"),
            "wrong password": await login(client, "active@x.io", "wrong-password"),
            "locked, wrong password": await login(client, "locked@x.io", "wrong-password"),
            "locked, right password": await login(client, "locked@x.io", PASSWORD),
            "deactivated, wrong password": await login(client, "gone@x.io", "wrong-password"),
        }

    def seen(response: httpx.Response) -> tuple:
        headers = {k: v for k, v in response.headers.items() if k.lower() != "x-request-id"}
        return response.status_code, response.content, sorted(headers.items())

    reference = seen(answers["unknown email"])
    assert reference[0] == 401 and b"Wrong email or password" in reference[1]
    assert "retry-after" not in dict(reference[2])
    assert {name: seen(response) == reference for name, response in answers.items()} == dict.fromkeys(answers, True)


def test_refusals_cost_one_password_check_whatever_the_account(make_user, settings):
    """Benchmark-like (prints, asserts nothing about time): median time of a refusal for an
    unknown email, a wrong password and a locked account. Run with -s to see it."""
    make_user("known@x.io", password=PASSWORD)
    make_user("locked@x.io", password=PASSWORD)
    for _ in range(settings.login_max_failures):
        attempt("locked@x.io", "wrong-password", STRANGER)
    cases = {"unknown": "nobody@x.io", "wrong password": "known@x.io", "locked": "locked@x.io"}
    attempt("nobody@x.io", "warm-up", STRANGER)  # the dummy hash is made once per process
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(5):
        for name, email in cases.items():
            start = time.perf_counter()
            assert attempt(email, "wrong-password", STRANGER if name == "locked" else OWNER) == "refused"
            timings[name].append(time.perf_counter() - start)
    print("\nsign-in refusal, median ms:", {name: round(statistics.median(t) * 1000, 1) for name, t in timings.items()})


async def test_a_stranger_guessing_from_afar_does_not_lock_the_owner_out(configure, redis_url, make_user):
    configure(LOGIN_MAX_FAILURES=3, LOGIN_ACCOUNT_MAX_FAILURES=8, LOGIN_ATTEMPTS_PER_MINUTE=1000)
    make_user("admin@x.io", role="admin", password=PASSWORD)
    async with client_at(STRANGER) as stranger, client_at(OWNER) as owner:
        for _ in range(6):
            assert (await login(stranger, "admin@x.io", "guess-123")).status_code == 401
        # The stranger's address is locked out, even with the right password...
        assert (await login(stranger, "admin@x.io", PASSWORD)).status_code == 401
        # ...the owner's is not.
        assert (await login(owner, "admin@x.io", PASSWORD)).status_code == 200

    # Guesses spread over many addresses still meet the account's own cap, which locks it for everyone.
    for number in range(8):
        async with client_at(f"203.0.113.{100 + number}") as guesser:
            await login(guesser, "admin@x.io", "guess-123")
    async with client_at(OWNER) as owner:
        assert (await login(owner, "admin@x.io", PASSWORD)).status_code == 401


# ------------------------------------------------------------------ point 4: per-address throttle


async def test_sign_in_attempts_are_throttled_per_address(configure, redis_url, make_user):
    configure(LOGIN_ATTEMPTS_PER_MINUTE=3, LOGIN_MAX_FAILURES=100)
    make_user("u@x.io", password=PASSWORD)
    async with client_at(STRANGER) as stranger, client_at(OWNER) as owner:
        for number in range(3):
            assert (await login(stranger, f"guess-{number}@x.io", "wrong-password")).status_code == 401
        throttled = await login(stranger, "u@x.io", PASSWORD)
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1
        assert "sign-in attempts from your address" in throttled.json()["detail"]
        # A claimed address from an untrusted peer changes nothing.
        assert (await login(stranger, "u@x.io", PASSWORD, **{"X-Forwarded-For": "192.0.2.55"})).status_code == 429
        # Another address still gets through.
        assert (await login(owner, "u@x.io", PASSWORD)).status_code == 200


async def test_forwarded_for_names_the_client_only_behind_a_trusted_proxy(configure, redis_url, make_user):
    proxy = "10.0.0.5"
    configure(LOGIN_ATTEMPTS_PER_MINUTE=2, LOGIN_MAX_FAILURES=100, TRUSTED_PROXIES="10.0.0.0/24")
    make_user("u@x.io", password=PASSWORD)
    async with client_at(proxy) as through_proxy:
        # The client forged a first entry; the proxy appended the address it saw.
        first = {"X-Forwarded-For": f"192.0.2.1, {STRANGER}"}
        for _ in range(2):
            assert (await login(through_proxy, "u@x.io", "wrong-password", **first)).status_code == 401
        assert (await login(through_proxy, "u@x.io", PASSWORD, **first)).status_code == 429
        second = {"X-Forwarded-For": OWNER}
        assert (await login(through_proxy, "u@x.io", PASSWORD, **second)).status_code == 200


# ------------------------------------------------------------------ point 1: the session cookie


def cookie_attributes(response: httpx.Response) -> tuple[str, set[str]]:
    (set_cookie,) = [v for k, v in response.headers.multi_items() if k == "set-cookie" and "strata_session" in v]
    token = set_cookie.split(";")[0].split("=", 1)[1]
    return token, {part.strip().lower() for part in set_cookie.split(";")[1:]}


async def test_the_session_cookie_is_http_only_and_same_site_strict(configure, redis_url, make_user):
    make_user("u@x.io", password=PASSWORD)
    async with client_at(OWNER) as client:
        token, attributes = cookie_attributes(await login(client, "u@x.io", PASSWORD))
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        assert "secure" not in attributes  # dev serves plain HTTP on localhost
    configure(ENV="prod", SECRET_KEY="a-production-secret-of-32-characters-or-more")
    make_user("p@x.io", password=PASSWORD)
    async with client_at(OWNER) as client:
        _, attributes = cookie_attributes(await login(client, "p@x.io", PASSWORD))
        assert {"httponly", "samesite=strict", "secure"} <= attributes


async def test_the_sign_in_form_sets_the_cookie_and_goes_on_or_back(redis_url, make_user):
    make_user("u@x.io", password=PASSWORD)
    async with client_at(OWNER) as client:
        form = {"email": "u@x.io", "password": PASSWORD}
        page = {"Origin": "http://strata", "Referer": "http://strata/login?next=%2Fknowledge%3Fkb%3D3"}
        signed_in = await client.post("/api/v1/auth/sign-in", data=form, headers=page)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/knowledge?kb=3"
        token, attributes = cookie_attributes(signed_in)
        assert {"httponly", "samesite=strict"} <= attributes
        me = await client.get("/api/v1/me", cookies={"strata_session": token})
        assert me.json()["email"] == "u@x.io"

        wrong = await client.post("/api/v1/auth/sign-in", data={**form, "password": "wrong-password"}, headers=page)
        assert wrong.status_code == 303 and "set-cookie" not in wrong.headers
        back = urlsplit(wrong.headers["location"])
        assert back.path == "/login"
        assert parse_qs(back.query) == {"error": ["credentials"], "next": ["/knowledge?kb=3"]}

        # Never on to another site, and never signed in by another site's page.
        from_elsewhere = {"Referer": "http://strata/login?next=//evil.example/x"}
        elsewhere = await client.post("/api/v1/auth/sign-in", data=form, headers=from_elsewhere)
        assert elsewhere.headers["location"] == "/"
        forged = await client.post("/api/v1/auth/sign-in", data=form, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403 and "set-cookie" not in forged.headers

        signed_out = await client.post("/api/v1/auth/signed-out", headers={"Origin": "http://strata"})
        assert signed_out.status_code == 204
        _, removal = cookie_attributes(signed_out)
        assert "max-age=0" in removal
        assert (
            await client.post("/api/v1/auth/signed-out", headers={"Origin": "https://evil.example"})
        ).status_code == 403


async def test_ui_state_reads_the_session_from_the_handshake_and_never_holds_the_token(make_user):
    import reflex as rx
    from reflex.istate.data import HeaderData
    from reflex_base.utils.format import json_dumps

    import app.app  # noqa: F401 - builds every page and state
    from app.auth.state import AuthState

    user = make_user("u@x.io", password=PASSWORD)
    with session_scope() as db_session:
        token = service.create_session(db_session=db_session, settings=get_settings(), user=user)
    root = rx.State(_reflex_internal_init=True)
    state = root.get_substate(AuthState.get_full_name().split(".")[1:])
    assert "session_token" not in AuthState.vars
    state.rx_router_headers = HeaderData(cookie=f"theme=dark; strata_session={token}")
    await AuthState.open_page.fn(state)
    assert state.access == "allowed" and state.user_email == "u@x.io"
    # Everything the browser could be sent, serialised as Reflex sends it: no token anywhere.
    assert token not in json_dumps(root.dict())

    state.rx_router_headers = HeaderData(cookie="strata_session=forged")
    redirect = await AuthState.open_page.fn(state)
    assert "/login" in str(redirect)
