"""A real Strata stack started with `strata run` (the command `make run` and the
container use), driven by Playwright in Debian's Chromium."""

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import TEST_ROOT, free_port, wait_until
from tests.stack import PREBUILT_PORT, Stack

STACK_PORT = int(os.environ.get("STRATA_TEST_STACK_PORT", PREBUILT_PORT))
ADMIN_EMAIL = "admin@strata.test"
ADMIN_PASSWORD = "admin-password-for-tests"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Package scope, not session: the stack frees port 3000 and Playwright's event loop (which its
# sync API keeps running in the main thread) ends once the last browser test is done, so the
# pytest-xdist process that ran them can go on with other tests.
@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    # The stack test before these may still be letting go of the port.
    wait_until(lambda: free_port(STACK_PORT) == STACK_PORT, 60, f"port {STACK_PORT} to be free")
    with Stack(
        TEST_ROOT / "browser-stack",
        port=STACK_PORT,
        STRATA_ADMIN_EMAIL=ADMIN_EMAIL,
        STRATA_ADMIN_PASSWORD=ADMIN_PASSWORD,
    ) as stack:
        stack.wait_up(names=("database", "redis", "chroma", "workers", "models"))
        yield stack


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, stack):
    contexts = []

    def open_page():
        context = browser.new_context(base_url=stack.url)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def create_user(stack, role: str) -> tuple[str, str]:
    """(email, password) of a new user with this role, made by the admin through the API."""
    email, password = f"{role}-{uuid.uuid4().hex[:8]}@strata.test", f"{role}-password-123"
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        login = client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        created = client.post(
            "/api/v1/users",
            headers={"Authorization": f"Bearer {login.json()['token']}"},
            json={"email": email, "role": role, "password": password},
        )
        assert created.status_code == 201, created.text
    return email, password


def sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in")


@pytest.fixture
def admin_page(new_page):
    page = new_page()
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.wait_for_url("**/")
    page.locator("#shell-user-role").filter(has_text="admin").wait_for()
    return page


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps a screenshot of every open page of a failed browser test, for the person debugging it."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "new_page" in item.fixturenames:
        browser = item.funcargs.get("browser")
        for index, context in enumerate(browser.contexts if browser else []):
            for number, page in enumerate(context.pages):
                path = TEST_ROOT / f"{item.name}-{index}-{number}.png"
                page.screenshot(path=str(path))
                report.sections.append(("screenshot", str(path)))


def watch_console(page) -> list[str]:
    """Console errors, uncaught exceptions and CSP violations of this page, as they happen."""
    problems: list[str] = []
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    return problems


def choose(page, trigger: str, option: str) -> None:
    """Picks `option` in the Radix select whose trigger has id `trigger`."""
    page.click(f"#{trigger}")
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.locator(f"#{trigger}")).to_contain_text(option)
