"""What a person sees in the browser: sign-in, the shell, admin pages, live system
health and a job's progress bar, all without reloading a page."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, sign_in

pytestmark = pytest.mark.browser


def mark_page(page) -> None:
    """A flag that a reload or navigation would wipe out."""
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__noReload") is True


def test_unsigned_visitor_is_sent_to_sign_in_and_a_wrong_password_is_explained(new_page):
    page = new_page()
    page.goto("/system")
    page.wait_for_url(re.compile(r"/login\?next=/system"))
    sign_in(page, ADMIN_EMAIL, "not-the-password")
    expect(page.locator("#login-error")).to_contain_text("Wrong email or password.")


def test_admin_lands_in_the_shell_with_navigation_name_and_role(admin_page):
    for nav in ("#nav-home", "#nav-jobs", "#nav-system", "#nav-admin-users", "#nav-admin-keys"):
        expect(admin_page.locator(nav)).to_be_visible()
    expect(admin_page.locator("#shell-user-name")).to_have_text("Administrator")
    expect(admin_page.locator("#shell-user-role")).to_have_text("admin")
    admin_page.click("#sign-out")
    admin_page.wait_for_url("**/login")
    admin_page.goto("/admin/users")
    admin_page.wait_for_url(re.compile(r"/login"))


def test_system_page_shows_every_component_up(admin_page):
    admin_page.click("#nav-system")
    expect(admin_page.locator("#system-summary")).to_have_text("All components up", timeout=60_000)
    for component in ("database", "redis", "chroma", "workers", "models"):
        expect(admin_page.locator(f"#status-{component}")).to_have_text("up")
    expect(admin_page.locator("#component-models")).to_contain_text("model.onnx")


def test_admin_creates_a_viewer_who_is_refused_the_admin_pages(admin_page, new_page):
    email = f"viewer-{uuid.uuid4().hex[:8]}@strata.test"
    admin_page.click("#nav-admin-users")
    admin_page.fill("#new-user-email", email)
    admin_page.fill("#new-user-name", "Vera Viewer")
    admin_page.fill("#new-user-password", "viewer-password")
    admin_page.click("#create-user")
    expect(admin_page.locator(f"[id='user-{email}']")).to_contain_text("Vera Viewer")

    viewer = new_page()
    sign_in(viewer, email, "viewer-password")
    viewer.wait_for_url("**/")
    expect(viewer.locator("#shell-user-role")).to_have_text("viewer")
    expect(viewer.locator("#nav-home")).to_be_visible()
    for hidden in ("#nav-admin-users", "#nav-admin-keys", "#nav-jobs", "#nav-system"):
        expect(viewer.locator(hidden)).to_have_count(0)
    for admin_url in ("/admin/users", "/admin/keys", "/system", "/jobs"):
        viewer.goto(admin_url)
        expect(viewer.locator("#access-denied")).to_contain_text("needs the")
        expect(viewer.locator("table")).to_have_count(0)


def test_admin_creates_an_api_key_shown_once_and_it_works(admin_page, stack):
    import httpx

    admin_page.click("#nav-admin-keys")
    admin_page.locator("#new-key-owner").click()
    admin_page.get_by_role("option", name=ADMIN_EMAIL).click()
    admin_page.fill("#new-key-name", "browser test")
    admin_page.click("#create-key")
    key = admin_page.locator("#created-key").inner_text()
    assert key.startswith("sk-strata-")
    me = httpx.get(f"{stack.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert me.status_code == 200 and me.json()["email"] == ADMIN_EMAIL


def test_verify_models_progress_reaches_100_percent_without_a_reload(admin_page):
    admin_page.click("#nav-jobs")
    expect(admin_page.locator("#start-verify_models")).to_be_visible()
    mark_page(admin_page)
    # Other tests' jobs (ingestion) may be listed too; count them as the server sees them.
    before = len(admin_page.request.get("/api/v1/jobs").json())
    expect(admin_page.locator(".job-row")).to_have_count(before)
    admin_page.click("#start-verify_models")
    expect(admin_page.locator(".job-row")).to_have_count(before + 1)
    newest = admin_page.locator(".job-row").first
    expect(newest.locator(".job-status")).to_have_text("running", timeout=60_000)
    # The chat model's token-by-token parity replay: about two minutes on an AVX2-only CPU under load.
    expect(newest.locator(".job-percent")).to_have_text("100%", timeout=240_000)
    expect(newest.locator(".job-status")).to_have_text("succeeded")
    assert_not_reloaded(admin_page)
    newest.get_by_role("link").click()
    checks = admin_page.locator("#model-checks")
    expect(checks).to_contain_text("all-MiniLM-L6-v2")
    expect(checks).to_contain_text("SmolLM2-135M-Instruct")
    expect(checks.locator(".check-verdict")).to_have_text(["passed", "passed"])
    expect(checks.locator(".check-parity")).to_contain_text(["0.99", "0.99"])


def test_stopping_redis_turns_the_system_page_red_and_back_green(admin_page, stack):
    admin_page.click("#nav-system")
    expect(admin_page.locator("#status-redis")).to_have_text("up", timeout=60_000)
    mark_page(admin_page)
    stack.supervisorctl("stop", "valkey")
    try:
        expect(admin_page.locator("#status-redis")).to_have_text("down", timeout=30_000)
        expect(admin_page.locator("#error-redis")).to_contain_text("Connection")
        response = stack.health()
        assert response.status_code == 503 and response.json()["components"]["redis"]["ok"] is False
    finally:
        stack.supervisorctl("start", "valkey")
    expect(admin_page.locator("#status-redis")).to_have_text("up", timeout=60_000)
    assert stack.health().status_code == 200
    assert_not_reloaded(admin_page)


def test_an_expired_session_sends_the_user_back_to_sign_in(admin_page, stack):
    from datetime import timedelta

    from sqlmodel import Session, select

    from app.auth.tables import UserSession
    from app.core.db import make_engine
    from app.core.time import utcnow

    admin_page.click("#nav-admin-users")
    reset_own_password = admin_page.locator(f"[id='user-{ADMIN_EMAIL}']").get_by_role("button", name="Reset password")
    expect(reset_own_password).to_be_visible()
    engine = make_engine(stack.settings.effective_database_url)
    with Session(engine) as db_session:
        for session in db_session.exec(select(UserSession)):
            session.expires_at = utcnow() - timedelta(seconds=1)
            db_session.add(session)
        db_session.commit()
    engine.dispose()
    # An event handler on an open page notices the expired session...
    reset_own_password.click()
    admin_page.wait_for_url(re.compile(r"/login\?next=/admin/users"))
    expect(admin_page.get_by_text("Your session has expired; sign in again.")).to_be_visible()
    # ...and the admin's password was not reset: it still signs in.
    sign_in(admin_page, ADMIN_EMAIL, ADMIN_PASSWORD)
    admin_page.wait_for_url("**/")
    expect(admin_page.locator("#shell-user-role")).to_have_text("admin")
