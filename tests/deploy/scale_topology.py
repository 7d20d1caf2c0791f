"""The scale-out topology on one machine, as separate machines would run it: HAProxy in front
of web processes on their own ports, `strata worker` processes, one PostgreSQL database, the
machine's Redis (one database number of it), one Chroma server. Each web and worker has its
own data dir; they share only the files root (STRATA_FILES_DIR, as an NFS mount would be).

Used by tests/deploy/test_scale_out.py and benchmarks/scale.py. Ports come from
18000-18999; the proxy prefers PROXY_PORT, so the frontend bundle built for it (the browser's
port is baked in, see Settings.public_port) is reused from one run to the next."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import make_url, text

from app.core.db import make_engine
from tests.conftest import REPO, wait_until

PROXY_PORT = 18080
PORT_RANGE = range(18000, 19000)
HAPROXY = "/usr/sbin/haproxy"
ADMIN_EMAIL = "admin@strata.test"
ADMIN_PASSWORD = "admin-password-for-tests"
STRATA = str(REPO / ".venv" / "bin" / "strata")
PYTHON = str(REPO / ".venv" / "bin" / "python")
CHROMA = str(REPO / ".venv" / "bin" / "chroma")

_taken: set[int] = set()


def port_in_range(preferred: int | None = None) -> int:
    """A free port in PORT_RANGE (`preferred` if free), never one this process handed out before."""
    candidates = ([preferred] if preferred else []) + [p for p in PORT_RANGE if p != preferred]
    for port in candidates:
        if port in _taken:
            continue
        with socket.socket() as sock:
            # As servers bind: a port whose last connections linger in TIME_WAIT is free to them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _taken.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


@dataclass
class Process:
    """One program of the topology: its command, environment and log, started in its own
    process group (killed as a group, like a container)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group: no chance to clean up, as in a crash or an OOM kill."""
        self.signal(signal.SIGKILL)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, as a supervisor or Kubernetes stops it; SIGKILL if it does not end in time."""
        if not self.running():
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def signal(self, number: int) -> None:
        try:
            os.killpg(self.popen.pid, number)
        except ProcessLookupError:
            pass
        if number == signal.SIGKILL:
            self.popen.wait(10)


class ScaleOut:
    """`with ScaleOut(root, database_url=..., redis_url=...) as topology:` brings everything up
    and waits until the proxy serves; leaving stops every process it started."""

    def __init__(
        self, root: Path, *, database_url: str, redis_url: str, webs: int = 2, workers: int = 2, **strata_env: str
    ) -> None:
        self.root = root.resolve()
        self.extra_env = strata_env
        self.database_url = database_url
        self.redis_url = redis_url
        self.files_dir = self.root / "files"
        self.proxy_port = port_in_range(PROXY_PORT)
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        chroma_port = port_in_range()
        self.chroma = Process(
            "chroma",
            [CHROMA, "run", "--path", str(self.root / "chroma"), "--host", "127.0.0.1", "--port", str(chroma_port)],
            {**self._base_env(), "ANONYMIZED_TELEMETRY": "False"},
            self.root / "logs" / "chroma.log",
            port=chroma_port,
        )
        self.webs = [self._web(f"web-{chr(ord('a') + i)}") for i in range(webs)]
        self.workers = [self._worker(f"worker-{i + 1}") for i in range(workers)]
        self.proxy = Process(
            "haproxy",
            [HAPROXY, "-f", str(self.root / "haproxy.cfg"), "-db"],
            self._base_env(),
            self.root / "logs" / "haproxy.log",
            port=self.proxy_port,
        )

    # ------------------------------------------------------------------ environment

    @staticmethod
    def _base_env() -> dict[str, str]:
        keep = ("STRATA_MODELS_DIR",)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k in keep}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return env

    def strata_env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        """What every Strata process of the topology gets: the shared stores and secret, its own data dir."""
        return {
            **self._base_env(),
            "STRATA_DATA_DIR": str(data_dir),
            "STRATA_FILES_DIR": str(self.files_dir),
            "STRATA_DATABASE_URL": self.database_url,
            "STRATA_REDIS_URL": self.redis_url,
            "STRATA_CHROMA_URL": f"http://127.0.0.1:{self.chroma.port}",
            "STRATA_SECRET_KEY": "scale-out-test-secret-key-0123456789abcdef",
            "STRATA_ADMIN_EMAIL": ADMIN_EMAIL,
            "STRATA_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "STRATA_WORKER_HEARTBEAT_SECONDS": "1",
            "STRATA_LOG_LEVEL": "WARNING",
            "ANONYMIZED_TELEMETRY": "False",
            "ORT_DISABLE_TELEMETRY": "1",
            "REFLEX_TELEMETRY_ENABLED": "false",
            **self.extra_env,
            **extra,
        }

    def _web(self, name: str) -> Process:
        port = port_in_range()
        env = self.strata_env(self.root / name, STRATA_PORT=str(port), STRATA_PUBLIC_PORT=str(self.proxy_port))
        return Process(name, [PYTHON, "-m", "app.core.runner", "web"], env, self.root / "logs" / f"{name}.log", port)

    def _worker(self, name: str) -> Process:
        data_dir = self.root / name
        metrics_port = port_in_range()
        env = self.strata_env(
            data_dir,
            STRATA_WORKER_METRICS_PORT=str(metrics_port),
            STRATA_WORKER_METRICS_HOST="127.0.0.1",
            # Its own machine's metrics, never added up with another worker's.
            PROMETHEUS_MULTIPROC_DIR=str(data_dir / "run" / "metrics"),
        )
        return Process(name, [STRATA, "worker"], env, self.root / "logs" / f"{name}.log", metrics_port)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ScaleOut:
        try:
            self._reset_stores()
            self.chroma.start()
            wait_until(self._chroma_up, 60, "the Chroma server")
            self._migrate()
            for process in (*self.webs, *self.workers):
                Path(process.env["STRATA_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
                if process in self.workers:
                    Path(process.env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
                process.start()
            self.write_proxy_config()
            self.proxy.start()
            for web in self.webs:
                self.wait_web(web)
            self.wait(lambda: self.health()["components"]["workers"]["ok"], 120, "workers in /api/v1/health")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for process in (self.proxy, *self.webs, *self.workers, self.chroma):
            if process.popen is not None:
                process.stop(timeout=20)

    def _reset_stores(self) -> None:
        """An empty database and Redis database number: nothing of an earlier run answers."""
        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        engine = make_engine(self.database_url)
        with engine.begin() as connection:
            owner = make_url(self.database_url).username or "postgres"
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text(f'CREATE SCHEMA public AUTHORIZATION "{owner}"'))
        engine.dispose()

    def _chroma_up(self) -> bool:
        return httpx.get(f"http://127.0.0.1:{self.chroma.port}/api/v2/heartbeat", timeout=5).status_code == 200

    def _migrate(self) -> None:
        """`strata migrate` once, as the Kubernetes Job or compose's `migrate` service runs it."""
        result = subprocess.run(
            [STRATA, "migrate"],
            cwd=REPO,
            env=self.strata_env(self.root / "migrate"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def write_proxy_config(self) -> None:
        servers = "\n".join(f"    server {web.name} 127.0.0.1:{web.port} check cookie {web.name}" for web in self.webs)
        (self.root / "haproxy.cfg").write_text(
            HAPROXY_CONFIG.format(socket=self.stats_socket, port=self.proxy_port, servers=servers)
        )

    @property
    def stats_socket(self) -> Path:
        return self.root / "haproxy.sock"

    # ------------------------------------------------------------------ observing

    def wait(self, predicate, timeout: float, what: str, interval: float = 0.5):
        return wait_until(predicate, timeout, what, interval=interval)

    def wait_web(self, web: Process, timeout: float = 600) -> None:
        """Until the web answers on its own port and the proxy's health check sends it traffic."""

        def up() -> bool:
            assert web.running(), f"{web.name} exited:\n{tail(web.log)}"
            return httpx.get(f"http://127.0.0.1:{web.port}/ping", timeout=5).status_code == 200

        self.wait(up, timeout, f"{web.name} on port {web.port}")
        self.wait(lambda: self.proxy_server_states()[web.name] == "UP", 30, f"the proxy to see {web.name} UP")

    def health(self) -> dict:
        return httpx.get(f"{self.url}/api/v1/health", timeout=15).json()

    def proxy_command(self, command: str) -> str:
        """One command on HAProxy's stats socket (the runtime API)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def proxy_server_states(self) -> dict[str, str]:
        """web name -> UP / DOWN / MAINT ..., as the proxy's health checks see it."""
        lines = self.proxy_command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {row["svname"]: row["status"] for row in rows if row["pxname"] == "webs" and row["svname"] != "BACKEND"}

    def web(self, name: str) -> Process:
        return next(web for web in self.webs if web.name == name)

    def restart(self, process: Process) -> None:
        process.stop()
        process.start()
        if process in self.webs:
            self.wait_web(process)

    def worker_job_runs(self, worker: Process, kind: str, status: str = "succeeded") -> float:
        """strata_job_runs_total of this worker alone (its own metrics port)."""
        metrics = httpx.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=10).text
        prefix = "strata_job_runs_total{"
        total = 0.0
        for line in metrics.splitlines():
            if line.startswith(prefix) and f'kind="{kind}"' in line and f'status="{status}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def worker_running(self, job_id: str) -> Process:
        """The worker process a running job is on (a worker's id holds its pid, see jobs/runtime.py)."""
        engine = make_engine(self.database_url)
        with engine.connect() as connection:
            worker_id = connection.execute(text("SELECT worker_id FROM job WHERE id = :id"), {"id": job_id}).scalar()
        engine.dispose()
        pid = int(worker_id.split("-")[-2])
        return next(worker for worker in self.workers if worker.pid == pid)

    def admin_token(self) -> str:
        response = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["token"]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


# Health checks on Reflex's /ping (answers while the server runs), every second; a web is out
# after 2 failed checks, or at once when connecting to it fails (observe layer4). A request whose
# connection fails or that gets no answer is sent again to the other web (redispatch, l7 retries):
# a web that stops or dies loses no request. The cookie STRATA_WEB says which web a browser is on
# (stickiness is not needed: the UI state lives in Redis); API calls ignore it, so a script that
# keeps cookies is still balanced. The websocket's tunnel timeout is long.
HAPROXY_CONFIG = """\
global
    stats socket {socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    log stdout format raw local0 err
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 120s
    timeout tunnel 1h
    timeout http-keep-alive 5s
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response response-timeout
    option http-buffer-request

frontend strata
    bind 127.0.0.1:{port}
    default_backend webs

backend webs
    balance roundrobin
    option httpchk GET /ping
    http-check expect status 200
    cookie STRATA_WEB insert indirect nocache httponly
    ignore-persist if {{ path_beg /api/ }}
    http-response set-header X-Strata-Web %[srv_name]
    default-server inter 1s fall 2 rise 1 observe layer4 error-limit 1 on-error mark-down
{servers}
"""
