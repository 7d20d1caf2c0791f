"""Reflex configuration, derived from the one Strata settings object.

Everything Reflex needs comes from `app.core.settings` (env vars STRATA_*), so
the web process, the frontend build and the tests agree on ports and URLs:

* production serves frontend, backend (websocket) and the FastAPI routes on
  one port, STRATA_PORT; the frontend bundle bakes `api_url` in at build time,
  which is why the build stamp in `app.core.runner.frontend` includes the port;
* UI state lives in the web process on the embedded install, and in Redis when
  STRATA_REDIS_URL points at a shared one, so web replicas can scale out behind a
  load balancer (see Settings.ui_state_in_redis);
* nothing here may reach the internet: telemetry off, no version checks, the
  npm registry explicit (see `app.core.runner.environment.child_env`);
* CORS: Reflex allows every origin by default ("*", with credentials, on the API and
  the websocket). Only the origins in STRATA_CORS_ORIGINS get CORS headers here; the
  app's own pages need none, and `app.core.http.SameOriginWebSockets` checks websocket
  origins (an empty list turns off the socket server's own origin check, which would
  otherwise accept only the listed origins and so not the app's own host).
"""

import reflex as rx

from app.core.settings import get_settings

_settings = get_settings()

config = rx.Config(
    app_name="app",
    telemetry_enabled=False,
    show_built_with_reflex=False,
    frontend_port=_settings.browser_port,
    backend_port=_settings.port,
    # Baked into the bundle: where the browser finds the backend (the proxy's port, if any).
    api_url=f"http://localhost:{_settings.browser_port}",
    redis_url=_settings.redis_url if _settings.ui_state_in_redis else None,
    state_manager_mode="redis" if _settings.ui_state_in_redis else "memory",
    # No sitemap plugin: it wants an absolute public deploy URL we do not know.
    disable_plugins=[rx.plugins.SitemapPlugin],
    cors_allowed_origins=_settings.cors_origin_list,
    plugins=[rx.plugins.RadixThemesPlugin(theme=rx.theme(accent_color="iris", radius="medium"))],
)
