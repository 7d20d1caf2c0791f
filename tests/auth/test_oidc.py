"""Company sign-in (OpenID Connect) against a real provider process, driven as a browser would:
one httpx client follows the redirects from Strata (in-process) to the provider and back."""

from urllib.parse import parse_qs

import httpx
import pytest

from app.api import build_api
from app.auth.oidc import PROBLEMS
from app.auth.service import PASSWORD_LOGIN_OFF
from tests.conftest import free_port

STRATA = "http://strata"


@pytest.fixture
async def browser():
    """Strata in-process at http://strata; every other address over the network (the provider)."""
    mounts = {STRATA: httpx.ASGITransport(app=build_api()), "all://": httpx.AsyncHTTPTransport()}
    async with httpx.AsyncClient(mounts=mounts, base_url=STRATA, follow_redirects=True) as client:
        yield client


async def sign_in_at_provider(browser, subject: str, next_path: str = "/api/v1/me", action: dict | None = None):
    """Clicks "Sign in with ..." and, on the provider's authorization form, signs in as `subject`
    (or submits `action`, e.g. Deny). Returns the page the browser ends on."""
    # The browser sends the login page's address, whose `next` says where to go afterwards.
    form = await browser.get("/api/v1/auth/oidc/login", headers={"Referer": f"{STRATA}/login?next={next_path}"})
    assert form.status_code == 200 and "<form" in form.text, form.text
    return await browser.post(str(form.url), data=action or {"sub": subject})


def problem_code(response: httpx.Response) -> str:
    """The login page's sign-in problem, which the page shows as PROBLEMS[code]."""
    assert response.url.path == "/login", response.url
    return parse_qs(response.url.query.decode())["error"][0]


async def test_first_sign_in_creates_the_user_with_the_mapped_role(company_sign_in, start_provider, browser):
    provider = start_provider()
    company_sign_in(provider.url)
    provider.set_user("alice", email="Alice@Corp.example", email_verified=True, name="Alice", groups=["data-team"])

    me = await sign_in_at_provider(browser, "alice")

    # Landed on `next`, signed in by the session cookie the callback set.
    assert me.url == f"{STRATA}/api/v1/me"
    assert me.status_code == 200, me.text
    assert me.json()["email"] == "alice@corp.example"
    assert me.json()["name"] == "Alice"
    assert me.json()["role"] == "staff"
    # The cookie is the server's alone, and the one-time sign-in cookie is gone.
    session_cookie = next(cookie for cookie in browser.cookies.jar if cookie.name == "strata_session")
    assert session_cookie.has_nonstandard_attr("HttpOnly")
    assert "strata_oidc" not in {cookie.name for cookie in browser.cookies.jar}


async def test_a_role_change_at_the_provider_applies_at_the_next_sign_in(
    company_sign_in, start_provider, browser, db_session
):
    provider = start_provider()
    company_sign_in(provider.url)
    provider.set_user("bob", email="bob@corp.example", email_verified=True, groups=["everyone"])
    first = await sign_in_at_provider(browser, "bob")
    assert first.json()["role"] == "viewer"

    provider.set_user("bob", email="bob@corp.example", email_verified=True, groups=["everyone", "strata-admins"])
    second = await sign_in_at_provider(browser, "bob")
    assert second.json()["role"] == "admin"
    assert second.json()["id"] == first.json()["id"]

    # Removed from every Strata group: refused at the next sign-in (STRATA_OIDC_DEFAULT_ROLE=none).
    provider.set_user("bob", email="bob@corp.example", email_verified=True, groups=["sales"])
    assert problem_code(await sign_in_at_provider(browser, "bob")) == "no_role"


async def test_unmapped_users_get_the_default_role_when_one_is_set(company_sign_in, start_provider, browser):
    provider = start_provider()
    company_sign_in(provider.url, oidc_default_role="viewer")
    provider.set_user("carol", email="carol@corp.example")
    assert (await sign_in_at_provider(browser, "carol")).json()["role"] == "viewer"


async def test_a_token_issued_for_another_application_is_refused(company_sign_in, start_provider, browser, db_session):
    provider = start_provider("--audience", "some-other-app")
    company_sign_in(provider.url)
    provider.set_user("mallory", email="mallory@corp.example", groups=["strata-admins"])

    landed = await sign_in_at_provider(browser, "mallory")

    assert problem_code(landed) == "audience"
    assert "another application" in PROBLEMS["audience"]
    assert (await browser.get("/api/v1/me")).status_code == 401


async def test_an_expired_token_is_refused(company_sign_in, start_provider, browser):
    # The provider signs ID tokens that expired an hour ago: far beyond the allowed clock skew.
    provider = start_provider("--token-max-age=-3600")
    company_sign_in(provider.url)
    provider.set_user("dave", email="dave@corp.example", groups=["everyone"])

    assert problem_code(await sign_in_at_provider(browser, "dave")) == "expired"
    assert (await browser.get("/api/v1/me")).status_code == 401


async def test_a_provider_that_is_down_gives_a_clear_message(company_sign_in, start_provider, browser):
    # Down before the sign-in starts: the login page says so, keeping where the user was going.
    company_sign_in(f"http://127.0.0.1:{free_port()}")
    landed = await browser.get("/api/v1/auth/oidc/login", params={"next": "/knowledge"})
    assert problem_code(landed) == "unreachable"
    assert parse_qs(landed.url.query.decode())["next"] == ["/knowledge"]
    assert "127.0.0.1" not in PROBLEMS["unreachable"]

    # Down between the user's sign-in at the provider and the code exchange.
    provider = start_provider()
    company_sign_in(provider.url)
    provider.set_user("erin", email="erin@corp.example", groups=["everyone"])
    form = await browser.get("/api/v1/auth/oidc/login", params={"next": "/api/v1/me"})
    back = await browser.post(str(form.url), data={"sub": "erin"}, follow_redirects=False)
    provider.stop()
    landed = await browser.get(back.headers["location"])
    assert problem_code(landed) == "unreachable"


async def test_cancelling_at_the_provider_ends_on_the_login_page(company_sign_in, start_provider, browser):
    provider = start_provider()
    company_sign_in(provider.url)
    landed = await sign_in_at_provider(browser, "frank", action={"action": "deny"})
    assert problem_code(landed) == "denied"


async def test_a_callback_not_started_in_this_browser_is_refused(company_sign_in, start_provider, browser):
    provider = start_provider()
    company_sign_in(provider.url)
    provider.set_user("grace", email="grace@corp.example", groups=["strata-admins"])
    form = await browser.get("/api/v1/auth/oidc/login")
    back = await browser.post(str(form.url), data={"sub": "grace"}, follow_redirects=False)
    callback = back.headers["location"]

    # An attacker's code and state, opened in the victim's browser (login CSRF), or a forged state.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_api()), base_url=STRATA, follow_redirects=True
    ) as victim:
        assert problem_code(await victim.get(callback)) == "stale"
    forged = callback.replace("state=", "state=x")
    assert problem_code(await browser.get(forged)) == "stale"


async def test_next_must_be_a_path_on_this_site(company_sign_in, start_provider, browser):
    provider = start_provider()
    company_sign_in(provider.url)
    provider.set_user("heidi", email="heidi@corp.example", groups=["everyone"])
    form = await browser.get("/api/v1/auth/oidc/login", params={"next": "//evil.example/steal"})
    back = await browser.post(str(form.url), data={"sub": "heidi"}, follow_redirects=False)
    done = await browser.get(back.headers["location"], follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"


async def test_sign_in_starts_are_throttled_per_address(company_sign_in, start_provider, browser):
    # Each start costs Strata a call to the provider: a flood from one address must not become one.
    provider = start_provider()
    company_sign_in(provider.url, login_attempts_per_minute="2")
    for _ in range(2):
        assert (await browser.get("/api/v1/auth/oidc/login")).url.host == "127.0.0.1"
    landed = await browser.get("/api/v1/auth/oidc/login", params={"next": "/knowledge"})
    assert problem_code(landed) == "throttled"
    assert int(parse_qs(landed.url.query.decode())["retry"][0]) > 0


async def test_company_accounts_link_to_existing_users_only_by_a_verified_address(
    company_sign_in, start_provider, browser, make_user, settings
):
    provider = start_provider()
    company_sign_in(provider.url)
    make_user("ivan@corp.example", role="viewer")
    make_user(settings.admin_email, role="admin")

    # Unverified: anyone could have typed the address into their profile at the provider.
    provider.set_user("ivan-unverified", email="ivan@corp.example", groups=["strata-staff"])
    assert problem_code(await sign_in_at_provider(browser, "ivan-unverified")) == "email_taken"
    # The break-glass admin is never handed to a provider account.
    provider.set_user("admin", email=settings.admin_email, email_verified=True, groups=["strata-admins"])
    assert problem_code(await sign_in_at_provider(browser, "admin")) == "email_taken"

    provider.set_user("ivan", email="ivan@corp.example", email_verified=True, groups=["strata-staff"])
    linked = await sign_in_at_provider(browser, "ivan")
    assert linked.json()["email"] == "ivan@corp.example" and linked.json()["role"] == "staff"


async def test_password_sign_in_off_leaves_the_break_glass_admin(company_sign_in, start_provider, browser, make_user):
    provider = start_provider()
    company_sign_in(provider.url, password_login="false", admin_email="root@corp.example")
    make_user("root@corp.example", role="admin", password="break-glass-pass")
    make_user("staff@corp.example", role="staff", password="staff-password")

    refused = await browser.post(
        "/api/v1/auth/login", json={"email": "staff@corp.example", "password": "staff-password"}
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == PASSWORD_LOGIN_OFF
    # Unknown addresses get the same answer: it reveals no account.
    unknown = await browser.post("/api/v1/auth/login", json={"email": "nobody@corp.example", "password": "x" * 9})
    assert unknown.status_code == 403 and unknown.json()["detail"] == PASSWORD_LOGIN_OFF

    admin = await browser.post(
        "/api/v1/auth/login", json={"email": "Root@corp.example", "password": "break-glass-pass"}
    )
    assert admin.status_code == 200, admin.text
    assert (await browser.get("/api/v1/me")).json()["role"] == "admin"

    # Company users still sign in.
    provider.set_user("judy", email="judy@corp.example", groups=["everyone"])
    assert (await sign_in_at_provider(browser, "judy")).json()["email"] == "judy@corp.example"


def login_page(url: str):
    """The login page's states (sign-in errors, company sign-in button) as served at `url`."""
    import reflex as rx
    from reflex.istate.data import ReflexURL, RouterData

    import app.app  # noqa: F401 - builds every page and state
    from app.auth.oidc_state import CompanySignInState
    from app.auth.state import LoginState

    root = rx.State(_reflex_internal_init=True)
    root.router = RouterData(url=ReflexURL(url))
    path = lambda state: state.get_full_name().split(".")[1:]  # noqa: E731
    return root.get_substate(path(LoginState)), root.get_substate(path(CompanySignInState))


def test_the_login_page_offers_company_sign_in_and_says_why_it_failed(company_sign_in):
    company_sign_in("https://sso.corp.example", oidc_provider_name="Corp SSO")
    errors, button = login_page(f"{STRATA}/login?error=expired&next=/knowledge")
    assert errors.error == PROBLEMS["expired"]
    assert button.company_sign_in_enabled
    assert button.company_sign_in_label == "Sign in with Corp SSO"
    # Only Strata's own words: an unknown code shows nothing.
    errors, _ = login_page(f"{STRATA}/login?error=Call+0800-SCAM")
    assert errors.error == ""


def test_production_refuses_a_provider_reached_without_tls():
    from pydantic import ValidationError

    from app.core.settings import Settings

    secret = "s" * 40
    with pytest.raises(ValidationError, match="https"):
        Settings(env="prod", secret_key=secret, oidc_issuer="http://sso.corp.example")
    assert Settings(env="prod", secret_key=secret, oidc_issuer="https://sso.corp.example").oidc_enabled is False
