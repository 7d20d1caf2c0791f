"""The session cookie in a real browser: scripts on Strata's pages cannot read it, and
signing in, going on to the page asked for, and signing out still work."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

pytestmark = pytest.mark.browser


def session_cookies(page) -> list[dict]:
    return [cookie for cookie in page.context.cookies() if cookie["name"] == "strata_session"]


def test_scripts_cannot_read_the_session_cookie_and_sign_in_and_out_still_work(new_page):
    page = new_page()
    page.goto("/system")
    page.wait_for_url(re.compile(r"/login\?next=/system"))
    # Signing in from there goes on to the page asked for.
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r"/system/?$"))
    expect(page.locator("#shell-user-role")).to_have_text("admin")

    (cookie,) = session_cookies(page)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert "strata_session" not in page.evaluate("document.cookie")
    # Nor is the token anywhere in what the UI state holds on the page.
    assert cookie["value"] not in page.content()

    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/login/?$"))
    deadline = time.monotonic() + 15
    while session_cookies(page) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert session_cookies(page) == []
    page.goto("/admin/users")
    page.wait_for_url(re.compile(r"/login\?next=/admin/users"))
