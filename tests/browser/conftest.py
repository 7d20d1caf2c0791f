"""A real Strata stack started with `strata run` (the command `make run` and the
container use), driven by Playwright in Debian's Chromium."""

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.core import runner
from app.core.settings import Settings
from tests.conftest import REPO, TEST_ROOT, free_port, wait_until

# The frontend bundle bakes its port in; `make test` pre-builds it for this one.
STACK_PORT = int(os.environ.get("STRATA_TEST_STACK_PORT", "3000"))
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


@dataclass
class Stack:
    url: str
    settings: Settings
    log: Path

    def supervisorctl(self, *args: str) -> str:
        result = runner.supervisorctl(self.settings, *args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/api/v1/health", timeout=15)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    data_dir = TEST_ROOT / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k == "STRATA_MODELS_DIR"}
    env.update(
        STRATA_DATA_DIR=str(data_dir),
        STRATA_PORT=str(STACK_PORT),
        STRATA_EMBEDDED_REDIS_PORT=str(free_port()),
        STRATA_EMBEDDED_CHROMA_PORT=str(free_port()),
        STRATA_WORKER_HEARTBEAT_SECONDS="1",
        STRATA_LOG_LEVEL="WARNING",
        STRATA_ADMIN_EMAIL=ADMIN_EMAIL,
        STRATA_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    # Explicit empty URLs: Settings would otherwise read the ones other tests left in os.environ.
    settings = Settings(
        _env_file=None,
        database_url="",
        redis_url="",
        chroma_url="",
        **{k.removeprefix("STRATA_").lower(): v for k, v in env.items() if k.startswith("STRATA_")},
    )
    log = TEST_ROOT / "stack.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "strata"), "run"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    stack = Stack(url=f"http://127.0.0.1:{STACK_PORT}", settings=settings, log=log)
    try:
        wait_until(
            lambda: process.poll() is None and stack.health().json()["status"] == "ok",
            600,
            f"the stack to be healthy (log: {log})",
            interval=1,
        )
        yield stack
    finally:
        runner.stop(settings)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
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
