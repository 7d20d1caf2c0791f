"""A real OpenID provider process (oidc-provider-mock, which signs real tokens) for company sign-in tests."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, TEST_ROOT, free_port, reset_caches, wait_until

CLIENT_ID = "strata-tests"
CLIENT_SECRET = "strata-tests-secret"


class Provider:
    """`python tests/auth/oidc_provider.py` on a free loopback port; stop() takes it down."""

    def __init__(self, *options: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = TEST_ROOT / f"oidc-provider-{self.url.rsplit(':', 1)[1]}.log"
        port = self.url.rsplit(":", 1)[1]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("oidc_provider.py")), "--port", port, *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        wait_until(
            lambda: httpx.get(f"{self.url}/.well-known/openid-configuration").status_code == 200,
            30,
            "the OpenID provider",
            log=self.log,
        )

    def set_user(self, subject: str, **claims) -> None:
        """The provider's account `subject` and its claims (a new role takes effect at its next sign-in)."""
        response = httpx.put(f"{self.url}/users/{subject}", json=claims)
        assert response.status_code == 204, response.text

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def start_provider() -> Iterator:
    started: list[Provider] = []

    def start(*options: str) -> Provider:
        provider = Provider("--require-nonce", *options)
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()


@pytest.fixture
def company_sign_in(db, redis_url, monkeypatch):
    """Points Strata's company sign-in at a provider: configure(provider_url, **settings)."""

    def configure(issuer: str, **settings: str) -> None:
        environment = {
            "STRATA_OIDC_ISSUER": issuer,
            "STRATA_OIDC_CLIENT_ID": CLIENT_ID,
            "STRATA_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "STRATA_OIDC_ROLE_CLAIM": "groups",
            "STRATA_OIDC_ADMIN_VALUES": "strata-admins",
            "STRATA_OIDC_STAFF_VALUES": "strata-staff, data-team",
            "STRATA_OIDC_VIEWER_VALUES": "everyone",
            **{f"STRATA_{name.upper()}": value for name, value in settings.items()},
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        reset_caches()

    yield configure
    monkeypatch.undo()
    reset_caches()
