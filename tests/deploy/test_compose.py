"""deploy/compose.yaml, read as Docker Compose reads it (YAML, then ${VAR} interpolation from
deploy/.env). No engine runs here: the tests check that every service, port, volume and
variable is one Strata and its image actually use."""

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from app.core.runner import paths
from app.core.settings import Settings
from tests.test_packaging import MAKEFILE, dockerfile_stages, instructions
from tests.test_runner import REPO

COMPOSE = REPO / "deploy" / "compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / "compose.env.example"
STRATA_SERVICES = ("migrate", "web", "worker")
# What deploy/.env holds once filled in (deploy/compose.env.example lists the variables).
FILLED_ENV = {
    "STRATA_SECRET_KEY": "0123456789abcdef" * 4,
    "POSTGRES_PASSWORD": "a1b2c3d4e5f6",
    "VALKEY_PASSWORD": "f6e5d4c3b2a1",
}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, and $$ for "$".
VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of every string in the parsed file."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        present = env.get(name)
        unset = present is None if op in ("-", "?") else not present
        if op and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return present or ""

    return VARIABLE.sub(substitute, value)


def compose_file(env: dict[str, str] | None = None) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), FILLED_ENV if env is None else env)


def variables_read(text: str) -> set[str]:
    return {match.group("name") for match in VARIABLE.finditer(text) if match.group("name")}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {key: str(value) for key, value in env.items()}


def strata_settings(env: dict[str, str]) -> Settings:
    """The settings a Strata process builds from `env`, after checking that every STRATA_*
    variable in it is a field of the one Settings object (a typo would be ignored silently)."""
    fields = {f"STRATA_{name}".upper(): name for name in Settings.model_fields}
    unknown = sorted(key for key in env if key.startswith("STRATA_") and key not in fields)
    assert not unknown, f"not Strata settings: {unknown}"
    return Settings(_env_file=None, **{fields[key]: value for key, value in env.items() if key in fields})


def assert_scaled_out_settings(settings: Settings) -> None:
    """What every process of a scaled-out Strata needs: production mode, and external
    stores, so that no process starts (or looks for) an embedded Valkey or Chroma."""
    assert settings.env == "prod"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.redis_url.startswith("redis://") and settings.ui_state_in_redis
    assert settings.chroma_url.startswith("http://")


def runtime_stage() -> list[tuple[str, str]]:
    return list(dockerfile_stages().values())[-1]


def image_port() -> int:
    (exposed,) = instructions(runtime_stage(), "EXPOSE")
    return int(exposed)


def image_volume() -> str:
    (volume,) = instructions(runtime_stage(), "VOLUME")
    return volume


def image_health_path() -> str:
    (healthcheck,) = instructions(runtime_stage(), "HEALTHCHECK")
    return re.search(r"http://127\.0\.0\.1:\S*?(/\S+?)\"", healthcheck).group(1)


def makefile_image() -> str:
    """The tag `make image` builds."""
    return re.search(r"^image:.*?\n\t.*?-t (\S+)", MAKEFILE.read_text(), re.MULTILINE).group(1)


def test_services_have_health_checks_restarts_and_declared_volumes():
    compose = compose_file()
    services = compose["services"]
    assert set(services) == {"postgres", "valkey", "chroma", "migrate", "web", "worker"}
    declared = set(compose["volumes"])
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source = volume.split(":")[0]
                assert not source.startswith((".", "/")), f"{name}: a named volume, not a host path ({volume})"
                used.add(source)
            else:
                assert volume["type"] == "tmpfs", f"{name}: {volume}"
        if name == "migrate":  # one-shot: retried until the database takes it, then done
            assert service["restart"] == "on-failure"
            continue
        assert service["restart"] in ("unless-stopped", "always"), name
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and check["interval"] and check["retries"] >= 3, name
    assert used == declared, "every named volume declared, every declared one used"
    # The stores keep their data in volumes where their images keep it.
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "valkey-data:/data" in services["valkey"]["volumes"]
    assert "--appendonly" in services["valkey"]["command"]


def test_workers_scale_with_scale_worker_n():
    services = compose_file()["services"]
    worker = services["worker"]
    # A fixed name or host port would make the second replica of `--scale worker=N` fail.
    assert "container_name" not in worker and "ports" not in worker
    assert all("container_name" not in service for service in services.values())
    assert worker["command"] == ["strata", "worker"]
    # Only the web publishes a port; Valkey and Chroma (no sign-in) stay on the network.
    assert [name for name, service in services.items() if "ports" in service] == ["web"]


def test_strata_processes_start_after_migrate_and_healthy_stores():
    services = compose_file()["services"]
    assert services["migrate"]["command"] == ["strata", "migrate"]
    for store in ("postgres", "valkey", "chroma"):
        assert services["migrate"]["depends_on"][store] == {"condition": "service_healthy"}
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_every_variable_is_a_strata_setting_and_the_urls_name_the_services():
    compose = compose_file()
    services = compose["services"]
    for name in STRATA_SERVICES:
        settings = strata_settings(environment(services[name]))
        assert_scaled_out_settings(settings)
        assert settings.secret_key == FILLED_ENV["STRATA_SECRET_KEY"]

        database = urlparse(settings.database_url)
        postgres = environment(services["postgres"])
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert database.username == postgres["POSTGRES_USER"] and database.path == f"/{postgres['POSTGRES_DB']}"
        assert database.password == postgres["POSTGRES_PASSWORD"] == FILLED_ENV["POSTGRES_PASSWORD"]

        redis = urlparse(settings.redis_url)
        valkey_command = services["valkey"]["command"]
        assert (redis.hostname, redis.port) == ("valkey", 6379)
        assert redis.password == valkey_command[valkey_command.index("--requirepass") + 1]

        chroma = urlparse(settings.chroma_url)
        chroma_command = services["chroma"]["command"]
        assert chroma.hostname == "chroma"
        assert chroma.port == int(chroma_command[chroma_command.index("--port") + 1])
    # Workers serve their metrics where Prometheus on the network reaches them.
    worker = strata_settings(environment(services["worker"]))
    assert worker.worker_metrics_host == "0.0.0.0"
    assert str(worker.worker_metrics_port) in services["worker"]["expose"]
    assert str(worker.worker_metrics_port) in " ".join(services["worker"]["healthcheck"]["test"])


def test_compose_refuses_to_start_without_its_secrets():
    for missing in FILLED_ENV:
        with pytest.raises(MissingVariable, match=missing):
            compose_file({key: value for key, value in FILLED_ENV.items() if key != missing})
    # deploy/compose.env.example names every variable compose.yaml reads, and no other.
    example = {line.split("=")[0] for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line}
    example = {name.lstrip("# ").strip() for name in example}
    assert example == variables_read(COMPOSE.read_text())


def test_a_short_or_default_secret_key_is_refused():
    env = environment(compose_file({**FILLED_ENV, "STRATA_SECRET_KEY": "too-short"})["services"]["web"])
    with pytest.raises(ValueError, match="STRATA_SECRET_KEY"):
        strata_settings(env)


def test_web_matches_the_image_port_health_check_and_data_volume():
    services = compose_file()["services"]
    web = services["web"]
    settings = strata_settings(environment(web))
    port = image_port()
    # The image's frontend is built (without STRATA_PORT) for the default port, and the
    # browser's websocket goes to the published port: all the same number.
    assert settings.port == port == Settings.model_fields["port"].default
    assert web["ports"] == [f"3000:{port}"]
    assert f"http://127.0.0.1:{port}{image_health_path()}" in web["healthcheck"]["test"]
    assert web["command"] == ["python", "-m", "app.core.runner", "web"]
    for name in ("chroma", *STRATA_SERVICES):
        assert services[name]["image"] == makefile_image(), name
    for name in STRATA_SERVICES:
        mounts = services[name]["volumes"]
        assert f"strata-data:{image_volume()}" in mounts, name
        assert str(strata_settings(environment(services[name])).data_dir) == image_volume()
    # Each web and worker container adds up its own processes' metrics: the multiprocess
    # directory is in a mount of that container's own, not in the shared volume.
    metrics_dir = paths.metrics_dir(settings)
    for name in ("web", "worker"):
        own = [Path(m["target"]) for m in services[name]["volumes"] if isinstance(m, dict) and m["type"] == "tmpfs"]
        assert any(metrics_dir.is_relative_to(target) for target in own), name


def test_the_commands_are_ones_the_image_has(monkeypatch):
    import app.cli
    import app.core.runner.__main__ as runner

    commands = {command.name or command.callback.__name__ for command in app.cli.cli.registered_commands}
    services = compose_file()["services"]
    for name in ("migrate", "worker"):
        program, subcommand = services[name]["command"]
        assert program == "strata" and subcommand in commands
    served = []
    monkeypatch.setattr(runner, "serve_web", lambda settings: served.append(settings) or 0)
    assert runner.main(services["web"]["command"][3:]) == 0 and served
    assert Path(paths.bin_path(services["chroma"]["command"][0])).exists()  # chromadb's server


def test_the_deploy_readme_says_what_to_run_for_each_size_with_the_repository_figures():
    readme = (REPO / "deploy" / "README.md").read_text()
    sizes = readme[readme.index("## Which size") : readme.index("## One command")]
    rows = {line.split("|")[1].strip(): line for line in sizes.splitlines() if line.startswith("| ")}
    assert {"laptop", "one container", "compose", "Kubernetes"} <= set(rows)
    assert "`make run`" in rows["laptop"] and re.search(r"^run:", MAKEFILE.read_text(), re.MULTILINE)
    assert (
        f"-v strata-data:{image_volume()}" in rows["one container"]
        and f"-p 3000:{image_port()}" in rows["one container"]
    )
    assert "deploy/compose.yaml" in rows["compose"] and "--scale worker=" in rows["compose"]
    assert "kubectl apply -k deploy/kubernetes" in rows["Kubernetes"]
    assert (REPO / "deploy" / "kubernetes" / "kustomization.yaml").exists()
    # The figures behind "move the database out first" are the ones the benchmark recorded.
    moving = readme[readme.index("## What to move out first") :]
    benchmarks = (REPO / "README.md").read_text()
    for figure in ("0.51 / 0.24", "0.34 / 0.24", "3.46 / 1.56", "2.48 / 1.54", "0.044 / 0.033", "0.240 / 0.049"):
        assert figure in moving and figure in benchmarks, figure
