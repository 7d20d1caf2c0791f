"""Schemathesis over /api/openapi.json against a stack started by `strata run`, as admin,
staff and viewer: no 5xx, no response that breaks its documented schema or content type,
and no route that answers a lower role than it needs with data (tests/fuzz_hooks.py).
A fixed seed and a bounded number of cases per operation keep it repeatable and quick."""

import os
import re
import subprocess
import uuid

import httpx
import pytest

from tests.conftest import REPO, TEST_ROOT
from tests.stack import Stack

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@fuzz.test", "admin-password-for-fuzzing"
SEED = 20261204
CASES_PER_OPERATION = 10
MIN_CASES = 2000
CHECKS = "not_a_server_error,response_schema_conformance,documented_media_type,no_data_for_a_lower_role"


@pytest.fixture(scope="module")
def fuzz_stack():
    with Stack(
        TEST_ROOT / "fuzz-stack",
        STRATA_ADMIN_EMAIL=ADMIN_EMAIL,
        STRATA_ADMIN_PASSWORD=ADMIN_PASSWORD,
        # The fuzzer is one client sending thousands of requests: the limits are tested elsewhere.
        STRATA_RATE_LIMIT_PER_MINUTE="1000000",
        STRATA_LOGIN_ATTEMPTS_PER_MINUTE="1000000",
        STRATA_PUBLIC_API_DOCS="true",
    ) as stack:
        stack.wait_up()
        yield stack


def _token(stack: Stack, email: str, password: str) -> str:
    response = httpx.post(f"{stack.url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def _sign_in_as_each_role(stack: Stack) -> dict[str, str]:
    admin_token = _token(stack, ADMIN_EMAIL, ADMIN_PASSWORD)
    signed_in = {"admin": admin_token}
    for role in ("staff", "viewer"):
        email, password = f"{role}-{uuid.uuid4().hex[:6]}@fuzz.test", f"{role}-password-fuzz"
        created = httpx.post(
            f"{stack.url}/api/v1/users",
            headers={"Authorization": f"Bearer {admin_token}"},
            json={"email": email, "role": role, "password": password},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        signed_in[role] = _token(stack, email, password)
    return signed_in


def _fuzz(stack: Stack, role: str, token: str, report: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "schemathesis"),
            "run",
            f"{stack.url}/api/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            # Routes that can end the run's own session (sign-out, a password reset or deactivation
            # of its user) would turn the rest of it into 401s; tests/auth covers them.
            "--exclude-path",
            "/api/v1/auth/logout",
            "--exclude-path-regex",
            r"^/api/v1/users/\{user_id\}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(CASES_PER_OPERATION),
            "--seed",
            str(SEED),
            "--generation-deterministic",
            "--workers",
            "1",
            "--no-shrink",
            "--continue-on-failure",
            "--request-timeout",
            "60",
            "--report",
            "junit",
            "--report-junit-path",
            report,
        ],
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
            "STRATA_FUZZ_ROLE": role,
            "PYTHONPATH": str(REPO),
        },
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.stack
@pytest.mark.timeout(1800)
def test_generated_requests_as_every_role_find_no_server_error_schema_break_or_role_leak(fuzz_stack):
    signed_in = _sign_in_as_each_role(fuzz_stack)
    generated = 0
    # Lowest role first: what admin cases create (users, knowledge bases) cannot sign the others out.
    for role in ("viewer", "staff", "admin"):
        result = _fuzz(fuzz_stack, role, signed_in[role], str(TEST_ROOT / f"fuzz-{role}.xml"))
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"schemathesis as {role}:\n{output[-12000:]}"
        counted = re.search(r"(\d+) generated", output)
        assert counted, output[-3000:]
        generated += int(counted.group(1))
        me = httpx.get(
            f"{fuzz_stack.url}/api/v1/me", headers={"Authorization": f"Bearer {signed_in[role]}"}, timeout=30
        )
        assert me.status_code == 200, f"the {role} run signed itself out, so it tested little: {me.text}"
    assert generated >= MIN_CASES, f"only {generated} cases were generated"
