"""The supervisor's `web` program: Reflex's production backend with the built
frontend mounted, on one port (STRATA_HOST:STRATA_PORT).

It serves through Reflex's own `run_backend_prod(...,
mount_frontend_compiled_app=True)` - exactly what `reflex run --env prod` does
after its build - with the build `frontend.ensure_frontend()` keeps current.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from app.core.runner import paths
from app.core.runner.environment import child_env
from app.core.runner.frontend import ensure_frontend
from app.core.runner.supervise import port_in_use
from app.core.security import redact_credentials
from app.core.settings import Settings, get_settings


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
            print(f"strata web: waiting for Redis at {redact_credentials(url)}...", flush=True)
            last_note = time.monotonic()
        time.sleep(interval)
    return True


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
    """Serve pages, websocket and API on one port until stopped."""
    settings = settings or get_settings()
    os.chdir(paths.PROJECT_ROOT)
    env = child_env(settings)
    os.environ.update(env)
    # `strata run` empties it before it starts the programs; the web program started on its own finds it too.
    paths.metrics_dir(settings).mkdir(parents=True, exist_ok=True)
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
