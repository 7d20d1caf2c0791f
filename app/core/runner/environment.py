"""What each supervised program finds in its environment.

supervisord and the Strata programs (web, worker) get the settings object as
STRATA_* variables, secrets included: they need them. Valkey and Chroma get
only what they need to run (`service_env()`), so a secret never sits in the
environment of a process that has no use for it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Mapping

from app.core.runner import paths
from app.core.settings import Settings

# Passed through to Valkey and Chroma from the environment `strata run` got.
SERVICE_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


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
    """Environment of supervisord, and so of the Strata programs it starts."""
    env = dict(os.environ if base is None else base)
    env.update(_settings_env(settings))
    path = [str(paths.TOOLS_BIN), str(paths.BIN_DIR)]
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
            # Marks every process of this stack (see supervise.stale_processes()).
            paths.RUN_MARKER: str(paths.run_dir(settings)),
            # The web and the workers add up their metrics there (app/core/metrics.py).
            "PROMETHEUS_MULTIPROC_DIR": str(paths.metrics_dir(settings)),
        }
    )
    env.setdefault("REFLEX_WEB_WORKDIR", str(paths.web_dir(settings, env)))
    # glibc gives each thread that allocates its own heap arena (up to 8 per core), and each
    # keeps its freed memory: the web's and the worker's thread pools and onnxruntime's
    # threads would hold tens of MB apiece. Two is what glibc suggests for memory-bound use.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    if "NPM_CONFIG_REGISTRY" not in env and (registry := npm_registry()):
        env["NPM_CONFIG_REGISTRY"] = registry
    return env


def service_env(settings: Settings, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The whole environment of an embedded service (Valkey, Chroma): a few
    harmless variables of the caller's, the stack's marker, and `extra`."""
    base = os.environ if base is None else base
    env = {key: base[key] for key in SERVICE_ENV_PASSTHROUGH if key in base}
    env[paths.RUN_MARKER] = str(paths.run_dir(settings))
    env.update(extra)
    return env
