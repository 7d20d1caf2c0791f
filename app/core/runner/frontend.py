"""The production frontend: built once, rebuilt only when its inputs change.

Why not a bare `reflex run --env prod`: on Reflex 0.10.1 that command recompiles
the app and re-runs the whole Vite production build on every start
(`reflex.utils.build.build()` deletes `.web/build` first), which makes every
restart as slow as the first one. Instead `ensure_frontend()` builds with
`reflex export --frontend-only --no-zip` (the same compile + build steps) and
records a fingerprint of the inputs next to the output; the web program
(`web.serve_web`) then serves it, and a start with nothing changed skips the
build. The bundle bakes in the port, so each port gets its own build directory
(`paths.web_dir`).

What the fingerprint covers: Reflex compiles what importing `rxconfig` and
`app.app` defines, so the inputs are the `app/` tree, `assets/`, `rxconfig.py`,
`reflex.lock`, the Reflex packages' versions, the environment Reflex bakes in,
and the export command itself. Left out are the modules that compile never
imports (`FRONTEND_EXCLUDED`: this package and the `strata` command line; a test
imports `app.app` and checks it), so editing them cannot change the bundle and
does not cost a rebuild.

A finished build is also kept under `${STRATA_CACHE_DIR:-~/.cache/strata}/frontend/
<fingerprint>` (without node_modules, about 20 MB; the three newest are kept), so a
fresh clone with the same inputs - CI, a second checkout - copies it instead of
building again. The fingerprint covers every input, so a cached copy is only used
for identical ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from app.core.runner import paths
from app.core.runner.environment import child_env
from app.core.settings import Settings

# Inputs of the compiled frontend, relative to PROJECT_ROOT ...
FRONTEND_INPUTS = ("app", "assets", "rxconfig.py", "reflex.lock")
# ... except these, which compiling the app never imports.
FRONTEND_EXCLUDED = ("app/core/runner", "app/cli.py")
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
# Left out of the cache: serving does not need the packages, and without them their
# "installed" marker would make the next build in that dir skip installing them.
NOT_CACHED = ("node_modules", "reflex.install_frontend_packages.cached")
CACHED_BUILDS_KEPT = 3
# `reflex ...`; part of the fingerprint, so changing how it builds rebuilds.
EXPORT_ARGS = ("export", "--frontend-only", "--no-zip", "--env", "prod")


def _excluded(rel: str) -> bool:
    return any(rel == e or rel.startswith(f"{e}/") for e in FRONTEND_EXCLUDED)


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
    inputs = {"port": str(settings.browser_port), "recipe": " ".join(EXPORT_ARGS)}
    # Reflex and its component packages (their versions, not pyproject.toml, so
    # that editing tool config there does not cost a rebuild).
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("reflex"):
            inputs[f"dist:{name}"] = dist.version
    for key in FRONTEND_ENV:
        inputs[f"env:{key}"] = env.get(key, "")
    for top in FRONTEND_INPUTS:
        for path in _iter_files(paths.PROJECT_ROOT / top):
            rel = path.relative_to(paths.PROJECT_ROOT).as_posix()
            if _excluded(rel):
                continue
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
    return paths.web_dir(settings, env) / "build" / FRONTEND_STAMP


def _read_stamp(settings: Settings, env: Mapping[str, str] | None = None) -> dict:
    try:
        stamp = json.loads(_stamp_path(settings, env).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def frontend_is_current(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """True when `.web/build` was built from exactly the current inputs."""
    index = paths.web_dir(settings, env) / "build" / "client" / "index.html"
    stamp = _read_stamp(settings, env)
    return index.exists() and stamp.get("fingerprint") == frontend_fingerprint(settings, env)


def _changed_inputs(settings: Settings, env: Mapping[str, str]) -> list[str]:
    old = _read_stamp(settings, env).get("inputs") or {}
    new = frontend_inputs(settings, env)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _cache_root() -> Path:
    return Path(os.environ.get("STRATA_CACHE_DIR") or Path.home() / ".cache" / "strata") / "frontend"


def _restore_cached_build(web_dir: Path, fingerprint: str) -> bool:
    cached = _cache_root() / fingerprint
    if not (cached / ".complete").exists():
        return False
    shutil.rmtree(web_dir / "build", ignore_errors=True)
    shutil.copytree(cached, web_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
    return True


def _cache_build(web_dir: Path, fingerprint: str) -> None:
    """Best effort: a full disk or a read-only home only costs the next clone a build."""
    root = _cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{fingerprint[:12]}-", dir=root))
        shutil.copytree(web_dir, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*NOT_CACHED))
        (staging / ".complete").touch()
        shutil.rmtree(root / fingerprint, ignore_errors=True)
        staging.rename(root / fingerprint)
        builds = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
        for old in builds[:-CACHED_BUILDS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        print(f"strata: frontend build not cached ({exc})", flush=True)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    key = hashlib.sha1(str(paths.PROJECT_ROOT).encode()).hexdigest()[:12]
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
    root = paths.PROJECT_ROOT
    with _build_lock():
        if not force and frontend_is_current(settings, env):
            return False
        web_dir = paths.web_dir(settings, env)
        if not force and _restore_cached_build(web_dir, frontend_fingerprint(settings, env)):
            if frontend_is_current(settings, env):
                print("strata: web frontend copied from the build cache", flush=True)
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
        gitignore = root / ".gitignore"
        package_json = root / "reflex.lock" / "package.json"
        saved = {p: p.read_bytes() for p in (gitignore, package_json) if p.exists()}
        started = time.monotonic()
        print(f"strata: building the web frontend (reflex export --frontend-only){reason}...", flush=True)
        try:
            result = subprocess.run(
                [
                    paths.bin_path("reflex"),
                    *EXPORT_ARGS,
                    "--loglevel",
                    env.get("STRATA_REFLEX_LOGLEVEL", "info"),
                ],
                cwd=root,
                # Compiling records no metrics (and the stack's metrics directory may not exist yet).
                env={key: value for key, value in env.items() if key != "PROMETHEUS_MULTIPROC_DIR"},
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
        fingerprint = frontend_fingerprint(settings, env)
        _stamp_path(settings, env).write_text(
            json.dumps(
                {
                    "fingerprint": fingerprint,
                    "port": settings.browser_port,
                    "built_at": time.time(),
                    "inputs": frontend_inputs(settings, env),
                }
            )
        )
        print(f"strata: frontend built in {time.monotonic() - started:.1f}s", flush=True)
        _cache_build(web_dir, fingerprint)
        return True
