"""A real Strata stack for tests: `strata run` (the command `make run` and the
container use) in a subprocess, on free ports and its own data dir."""

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx

from app.core.runner import paths, supervise
from app.core.settings import Settings
from tests.conftest import REPO, free_port, wait_until

# `make test` pre-builds the frontend for this port (the bundle bakes its port in).
PREBUILT_PORT = 3000


def processes_of(data_dir: Path) -> dict[int, str]:
    """Live processes started for this data dir: `strata run` itself (its STRATA_DATA_DIR)
    and what supervisord started (what `strata stop` would clean up)."""
    marker = f"STRATA_DATA_DIR={data_dir}".encode()
    pids = set(supervise.stale_processes(Settings(_env_file=None, data_dir=data_dir)))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                pids.add(int(proc.name))
        except OSError:
            continue
    found = {}
    for pid in sorted(pids):
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return found


class Stack:
    def __init__(self, root: Path, *, port: int | None = None, **strata_env: str) -> None:
        self.data_dir = (root / "data").resolve()
        self.port = port or free_port(PREBUILT_PORT)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_") or k == "STRATA_MODELS_DIR"}
        env.update(
            STRATA_DATA_DIR=str(self.data_dir),
            STRATA_PORT=str(self.port),
            STRATA_EMBEDDED_REDIS_PORT=str(free_port()),
            STRATA_EMBEDDED_CHROMA_PORT=str(free_port()),
            STRATA_WORKER_HEARTBEAT_SECONDS="1",
            STRATA_LOG_LEVEL="WARNING",
            STRATA_ADMIN_PASSWORD="admin-password-for-tests",
        )
        env.update(strata_env)
        self.env = env
        # Explicit empty URLs: Settings would otherwise read those other tests left in os.environ.
        values = {"database_url": "", "redis_url": "", "chroma_url": ""}
        values.update({k.removeprefix("STRATA_").lower(): v for k, v in env.items() if k.startswith("STRATA_")})
        self.settings = Settings(_env_file=None, **values)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "strata-run.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Stack":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(paths.BIN_DIR / "strata"), "run"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(60)
        # A program supervisord was starting again as it stopped can outlive one round of kills
        # and keep the port the next stack wants: kill until none is left.
        wait_until(self._kill_leftovers, 30, f"every process of {self.data_dir} to end")
        if self.port != PREBUILT_PORT:  # a one-off build for a random port: do not let them pile up
            shutil.rmtree(paths.web_dir(self.settings, env={}), ignore_errors=True)

    def _kill_leftovers(self) -> bool:
        leftovers = processes_of(self.data_dir)
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not leftovers

    def wait(self, predicate, timeout: float, what: str):
        return wait_until(predicate, timeout, what, interval=0.5, log=self.log)

    def get(self, path: str, timeout: float = 10) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=timeout)

    def status(self) -> dict[str, tuple[str, int | None]]:
        """supervisorctl status: program -> (state, pid)."""
        result = {}
        for line in self.supervisorctl("status", check=False).splitlines():
            parts = line.split()
            if len(parts) >= 2:
                pid = re.search(r"pid (\d+)", line)
                result[parts[0]] = (parts[1], int(pid.group(1)) if pid else None)
        return result

    def supervisorctl(self, *args: str, check: bool = True) -> str:
        result = supervise.supervisorctl(self.settings, *args)
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def health(self) -> httpx.Response:
        return self.get("/api/v1/health", timeout=15)

    def components(self) -> dict:
        return self.health().json()["components"]

    def wait_up(self, names=("database", "redis", "chroma", "workers")) -> None:
        self.wait(lambda: self.get("/ping", timeout=5).status_code == 200, 600, "the web server")
        page = self.get("/")
        assert page.status_code == 200 and "<html" in page.text.lower()
        self.wait(lambda: all(self.components()[n]["ok"] for n in names), 120, f"{names} ok in /api/v1/health")
        # Serving can come before supervisord's startsecs have passed; "up" is also its word for it.
        self.wait(lambda: {state for state, _ in self.status().values()} == {"RUNNING"}, 30, "every program RUNNING")
