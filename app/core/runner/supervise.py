"""Run the stack under supervisord, stop it from any shell, drive single programs.

`run(settings)` writes the config (`config.write_config`) and becomes
supervisord (exec, so no Python process stays behind only to wait for it, and
signals reach supervisord directly). It refuses to start a second stack on the
same data dir (a lock, which supervisord inherits and holds until it ends, and
the pidfile) or on ports something already listens on (granian binds with
SO_REUSEPORT, so a second server would otherwise share the port silently). It
first cleans up what a killed run left behind: its programs (they carry
STRATA_RUN_DIR=<data_dir>/run in their environment), pidfile and socket. Every
program also gets a parent-death signal (`config.die_with_supervisord`), so a
killed supervisord takes them with it.

`stop(settings)` asks that supervisord (over its unix socket in
`<data_dir>/run/`) to shut down. `supervisorctl(settings, ...)` drives single
programs (tests: `stop valkey`, `start valkey`, `signal KILL web`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from app.core.runner import paths
from app.core.runner.config import write_config
from app.core.runner.environment import child_env
from app.core.runner.frontend import ensure_frontend
from app.core.settings import Settings, get_settings


def _supervisord_pid(settings: Settings) -> int | None:
    try:
        pid = int(paths.pid_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A stale pidfile whose pid now belongs to another process (another stack's
    # supervisord included) does not count.
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"supervisord" not in cmdline or str(paths.config_path(settings)).encode() not in cmdline.split(b"\0"):
            return None
    return pid


def stale_processes(settings: Settings) -> list[int]:
    """Processes left from a stack whose supervisord died without stopping them
    (SIGKILL, OOM): they carry this data dir's STRATA_RUN_DIR marker (Linux).
    Valkey overwrites its environment with its process title, marker included, so
    it is known by its binary and its working directory, this data dir's redis/."""
    marker = f"{paths.RUN_MARKER}={paths.run_dir(settings)}".encode()
    valkey = Path(paths.valkey_binary()).resolve()
    redis_dir = settings.resolved_data_dir / "redis"
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
            elif Path(os.readlink(proc / "exe")) == valkey and Path(os.readlink(proc / "cwd")) == redis_dir:
                found.append(int(proc.name))
    return sorted(found)


def kill_stale(settings: Settings, grace: float = 10) -> list[int]:
    """SIGTERM (then SIGKILL) the `stale_processes()`; returns their pids."""
    pids = stale_processes(settings)
    if not pids:
        return []
    print(f"strata: stopping {len(pids)} processes left by an earlier run: {pids}", file=sys.stderr)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and stale_processes(settings):
            time.sleep(0.2)
        if not stale_processes(settings):
            break
    return pids


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port. Bound without SO_REUSEPORT on
    purpose: granian listens with SO_REUSEPORT, so a second web server on the same
    port would otherwise start silently and share the traffic with the first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def busy_ports(settings: Settings) -> list[str]:
    """The ports this stack needs that something else already listens on."""
    wanted = [("web", settings.host, settings.port)]
    if not settings.redis_url:
        wanted.append(("valkey", "127.0.0.1", settings.embedded_redis_port))
    if not settings.chroma_url:
        wanted.append(("chroma", "127.0.0.1", settings.embedded_chroma_port))
    return [f"{name} port {port}" for name, host, port in wanted if port_in_use(host, port)]


def is_running(settings: Settings) -> bool:
    return _supervisord_pid(settings) is not None


def run(settings: Settings | None = None) -> int:
    """Become supervisord, in the foreground, with the stack's config; return 1
    only when the stack cannot start.

    SIGINT/SIGTERM/SIGHUP/SIGQUIT make supervisord stop every program (whole
    process groups) in reverse priority order before it exits.
    """
    settings = settings or get_settings()
    paths.run_dir(settings).mkdir(parents=True, exist_ok=True)
    # Held for the whole run (released by the kernel however we exit): one stack
    # per data dir, including while the frontend builds before supervisord starts.
    lock = (paths.run_dir(settings) / "run.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        pid = None
    else:
        pid = _supervisord_pid(settings)
        if pid is None:
            return _run_locked(settings, lock)
        lock.close()
    print(
        f"strata: already running (data dir {settings.resolved_data_dir}"
        f"{f', supervisord pid {pid}' if pid else ''}); `make stop` or `strata stop` first",
        file=sys.stderr,
    )
    return 1


def _run_locked(settings: Settings, lock) -> int:
    with lock:
        kill_stale(settings)
        if busy := busy_ports(settings):
            print(
                f"strata: {', '.join(busy)} already in use (another Strata, or another "
                "program); stop it or set STRATA_PORT / STRATA_EMBEDDED_REDIS_PORT / "
                "STRATA_EMBEDDED_CHROMA_PORT",
                file=sys.stderr,
            )
            return 1
        remove_leftover_files(settings)
        env = child_env(settings)
        ensure_frontend(settings, env=env)
        conf = write_config(settings)
        empty_metrics_dir(settings)
        _exec_supervisord(conf, env, lock)


def remove_leftover_files(settings: Settings) -> None:
    """The pidfile and control socket of a supervisord that was killed. Only called
    holding the run lock with no supervisord of this data dir alive; supervisord
    would refuse to start while its socket file answered."""
    for leftover in (paths.pid_path(settings), paths.socket_path(settings)):
        leftover.unlink(missing_ok=True)


def empty_metrics_dir(settings: Settings) -> None:
    """The metrics directory starts empty with the stack. Not when a single program restarts:
    the files of a process that stopped keep its counts in the totals, so that no counter of
    /metrics goes backwards while the stack runs."""
    shutil.rmtree(paths.metrics_dir(settings), ignore_errors=True)
    paths.metrics_dir(settings).mkdir(parents=True)


def _exec_supervisord(conf: Path, env: Mapping[str, str], lock) -> NoReturn:
    """Replace this process with supervisord: the lock stays held (inherited across
    exec) for as long as supervisord runs, and the memory of this Python process
    (the CLI, migrations, settings) goes back to the system."""
    os.set_inheritable(lock.fileno(), True)
    os.chdir(paths.PROJECT_ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    supervisord = paths.bin_path("supervisord")
    os.execve(supervisord, [supervisord, "-n", "-c", str(conf)], dict(env))


def _exited(pid: int) -> bool:
    """Gone, or a zombie: supervisord is the process `strata run` started (it execs), and
    whatever started that may reap it only later (a test's Popen, a shell script)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def supervisorctl(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `supervisorctl -c <data_dir>/run/supervisord.conf ARGS...` and capture output.

    Examples: ``supervisorctl(s, "status")``, ``supervisorctl(s, "stop", "valkey")``,
    ``supervisorctl(s, "signal", "KILL", "worker")``. Exit codes are supervisorctl's
    (0 ok; status returns 3 when a program is not RUNNING).
    """
    return subprocess.run(
        [paths.bin_path("supervisorctl"), "-c", str(paths.config_path(settings)), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=paths.PROJECT_ROOT,
    )


def stop(settings: Settings | None = None, timeout: float = 120) -> int:
    """Stop a running stack from any shell; 0 when it is stopped (or was not running)."""
    settings = settings or get_settings()
    pid = _supervisord_pid(settings)
    if pid is None:
        if kill_stale(settings):
            print("strata: stopped")
        else:
            print(f"strata: not running (data dir {settings.resolved_data_dir})")
        return 0
    result = supervisorctl(settings, "shutdown", timeout=timeout)
    if result.returncode != 0:
        # The socket is gone or broken: fall back to the signal supervisord also
        # understands as "stop everything and exit".
        print(result.stdout + result.stderr, file=sys.stderr, end="")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            print("strata: stopped")
            return 0
        time.sleep(0.2)
    print(f"strata: supervisord (pid {pid}) still running after {timeout:.0f}s", file=sys.stderr)
    return 1
