"""``python -m app.core.runner {web|build-frontend [--force]|config|run|stop}``."""

import sys

from app.core.runner import paths
from app.core.runner.config import write_config
from app.core.runner.frontend import ensure_frontend
from app.core.runner.supervise import run, stop
from app.core.runner.web import serve_web
from app.core.settings import get_settings


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
        print(paths.config_path(settings).read_text(), end="")
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
