import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.api import build_api
from app.cli import cli
from tests.conftest import run_strata


@pytest.fixture
def cli_env(database_url, db):
    return {"STRATA_DATABASE_URL": database_url}


def test_every_command_has_help():
    """In-process: the installed `strata` entry point itself is exercised by the tests below."""
    runner = CliRunner()
    for command in (
        [],
        ["run"],
        ["stop"],
        ["worker"],
        ["migrate"],
        ["backup"],
        ["restore"],
        ["users", "create"],
        ["users", "list"],
        ["users", "set-role"],
        ["keys", "create"],
        ["keys", "list"],
        ["keys", "revoke"],
        ["models", "build"],
        ["models", "verify"],
    ):
        result = runner.invoke(cli, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output


def test_first_migrate_prints_a_generated_admin_password_once(cli_env):
    env = {**cli_env, "STRATA_ADMIN_PASSWORD": "", "STRATA_ADMIN_EMAIL": "root@x.io"}
    first = run_strata("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "Created admin root@x.io with password" in first.stdout
    second = run_strata("migrate", env=env)
    assert second.returncode == 0 and "password" not in second.stdout


def test_users_and_keys_from_the_shell(cli_env):
    created = run_strata("users", "create", "ops@x.io", "--role", "staff", "--password", "ops-password", env=cli_env)
    assert created.returncode == 0, created.stderr
    duplicate = run_strata("users", "create", "ops@x.io", "--password", "ops-password", env=cli_env)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    assert run_strata("users", "set-role", "ops@x.io", "admin", env=cli_env).returncode == 0
    listed = json.loads(run_strata("users", "list", "--json", env=cli_env).stdout)
    assert {"email": "ops@x.io", "role": "admin"}.items() <= next(u for u in listed if u["email"] == "ops@x.io").items()

    key = run_strata("keys", "create", "--user", "ops@x.io", env=cli_env)
    assert key.returncode == 0
    plaintext = key.stdout.strip()
    assert plaintext.startswith("sk-strata-")
    with TestClient(build_api()) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
        assert me.json()["email"] == "ops@x.io"
    key_id = run_strata("keys", "list", env=cli_env).stdout.split()[0]
    assert plaintext not in run_strata("keys", "list", env=cli_env).stdout
    assert run_strata("keys", "revoke", key_id, env=cli_env).returncode == 0
    assert "revoked" in run_strata("keys", "list", env=cli_env).stdout


def test_production_mode_refuses_the_default_secret():
    result = run_strata("users", "list", env={"STRATA_ENV": "prod"})
    assert result.returncode == 2
    assert "STRATA_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr
    short = run_strata("users", "list", env={"STRATA_ENV": "prod", "STRATA_SECRET_KEY": "short"})
    assert short.returncode == 2 and "at least 32" in short.stderr
