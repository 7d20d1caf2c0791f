"""The production frontend build (app/core/runner/frontend.py): what its fingerprint
covers, and that a build with unchanged inputs is skipped."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.runner import environment, frontend, paths
from app.core.settings import Settings
from tests.test_runner import REPO, make_settings


@pytest.fixture
def fake_project(tmp_path, monkeypatch):
    root = tmp_path / "project"
    (root / "app" / "__pycache__").mkdir(parents=True)
    (root / "app" / "app.py").write_text("app = 1\n")
    (root / "app" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (root / "assets").mkdir()
    (root / "assets" / "logo.svg").write_text("<svg/>")
    (root / "reflex.lock").mkdir()
    (root / "reflex.lock" / "package.json").write_text('{"a": 1, "b": 2}')
    (root / "rxconfig.py").write_text("config = None\n")
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "app" / "ask").mkdir()
    (root / "app" / "ask" / "page.py").write_text("def ask_page(): ...\n")
    (root / "app" / "core" / "runner").mkdir(parents=True)
    (root / "app" / "core" / "runner" / "supervise.py").write_text("def run(): ...\n")
    (root / "app" / "cli.py").write_text("cli = None\n")
    monkeypatch.setattr(paths, "PROJECT_ROOT", root)
    monkeypatch.setenv("STRATA_CACHE_DIR", str(tmp_path / "cache"))
    return root


def test_frontend_fingerprint_follows_its_inputs(fake_project, tmp_path):
    settings = make_settings(tmp_path)
    first = frontend.frontend_fingerprint(settings, env={})
    assert frontend.frontend_fingerprint(settings, env={}) == first
    # Byte-code and the formatting of Reflex's package.json do not count.
    (fake_project / "app" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\1")
    (fake_project / "reflex.lock" / "package.json").write_text('{\n  "b": 2,\n  "a": 1\n}\n')
    (fake_project / "pyproject.toml").write_text("[tool.ruff]\nline-length = 120\n")  # tool config only
    assert frontend.frontend_fingerprint(settings, env={}) == first
    # The port is baked into the bundle.
    assert frontend.frontend_fingerprint(make_settings(tmp_path, port=3001), env={}) != first
    assert frontend.frontend_fingerprint(settings, env={"REFLEX_API_URL": "https://strata.example"}) != first
    (fake_project / "assets" / "logo.svg").write_text("<svg></svg>")
    second = frontend.frontend_fingerprint(settings, env={})
    assert second != first
    (fake_project / "app" / "page.py").write_text("x = 1\n")
    assert frontend.frontend_fingerprint(settings, env={}) != second


def test_frontend_is_current_only_with_a_matching_stamp(fake_project, tmp_path):
    settings = make_settings(tmp_path)
    client = paths.web_dir(settings, env={}) / "build" / "client"
    assert not frontend.frontend_is_current(settings, env={})
    client.mkdir(parents=True)
    (client / "index.html").write_text("<html></html>")
    assert not frontend.frontend_is_current(settings, env={})  # no stamp
    stamp = paths.web_dir(settings, env={}) / "build" / frontend.FRONTEND_STAMP
    stamp.write_text(json.dumps({"fingerprint": frontend.frontend_fingerprint(settings, env={})}))
    assert frontend.frontend_is_current(settings, env={})
    (client / "index.html").unlink()  # a build that died half-way
    assert not frontend.frontend_is_current(settings, env={})
    (client / "index.html").write_text("<html></html>")
    (fake_project / "app" / "app.py").write_text("app = 2\n")
    assert not frontend.frontend_is_current(settings, env={})


def test_ensure_frontend_skips_the_build_when_current(fake_project, tmp_path, monkeypatch):
    settings = make_settings(tmp_path)
    calls = []

    def fake_export(args, **kwargs):
        calls.append(args)
        client = paths.web_dir(settings, env={}) / "build" / "client"
        client.mkdir(parents=True, exist_ok=True)
        (client / "index.html").write_text("<html></html>")
        (fake_project / ".gitignore").write_text(".web\n*.db\n")  # what Reflex's init does
        return subprocess.CompletedProcess(args, 0)

    (fake_project / ".gitignore").write_text(".venv/\n")
    monkeypatch.setattr(frontend.subprocess, "run", fake_export)
    assert frontend.ensure_frontend(settings, env={}) is True
    assert calls and calls[0][1:5] == ["export", "--frontend-only", "--no-zip", "--env"]
    assert (fake_project / ".gitignore").read_text() == ".venv/\n"
    assert frontend.ensure_frontend(settings, env={}) is False
    assert len(calls) == 1
    assert frontend.ensure_frontend(settings, env={}, force=True) is True
    assert len(calls) == 2


def test_a_fresh_checkout_with_the_same_inputs_copies_the_cached_build(fake_project, tmp_path, monkeypatch):
    settings = make_settings(tmp_path)
    exports = []

    def fake_export(args, **kwargs):
        exports.append(args)
        web = paths.web_dir(settings, env={})
        (web / "build" / "client").mkdir(parents=True, exist_ok=True)
        (web / "build" / "client" / "index.html").write_text(f"<html>build {len(exports)}</html>")
        (web / "node_modules" / "vite").mkdir(parents=True, exist_ok=True)
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(frontend.subprocess, "run", fake_export)
    assert frontend.ensure_frontend(settings, env={}) is True

    shutil.rmtree(fake_project / ".web")  # what a fresh clone has
    assert frontend.ensure_frontend(settings, env={}) is False
    client = paths.web_dir(settings, env={}) / "build" / "client" / "index.html"
    assert client.read_text() == "<html>build 1</html>"
    assert frontend.frontend_is_current(settings, env={})
    assert not (paths.web_dir(settings, env={}) / "node_modules").exists()
    assert len(exports) == 1

    (fake_project / "app" / "ask" / "page.py").write_text("def ask_page(): return 2\n")
    shutil.rmtree(fake_project / ".web")
    assert frontend.ensure_frontend(settings, env={}) is True
    assert client.read_text() == "<html>build 2</html>"


def _fake_build(settings: Settings) -> None:
    client = paths.web_dir(settings, env={}) / "build" / "client"
    client.mkdir(parents=True)
    (client / "index.html").write_text("<html></html>")
    stamp = paths.web_dir(settings, env={}) / "build" / frontend.FRONTEND_STAMP
    stamp.write_text(json.dumps({"fingerprint": frontend.frontend_fingerprint(settings, env={})}))


def test_editing_supervision_code_keeps_the_frontend_build(fake_project, tmp_path):
    settings = make_settings(tmp_path)
    _fake_build(settings)
    assert frontend.frontend_is_current(settings, env={})
    (fake_project / "app" / "core" / "runner" / "supervise.py").write_text("def run(): return 1\n")
    (fake_project / "app" / "core" / "runner" / "web.py").write_text("def serve_web(): ...\n")
    (fake_project / "app" / "cli.py").write_text("cli = 1\n")
    assert frontend.frontend_is_current(settings, env={})
    (fake_project / "app" / "ask" / "page.py").write_text("def ask_page(): return 1\n")
    assert not frontend.frontend_is_current(settings, env={})


def test_compiling_the_app_imports_nothing_the_fingerprint_leaves_out():
    # What `reflex export` imports to compile: rxconfig, then app.app (app_name "app").
    code = (
        "import sys, rxconfig, app.app\n"
        "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) if getattr(m, '__file__', None)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {Path(line).resolve() for line in result.stdout.splitlines()}
    assert REPO / "app" / "app.py" in imported
    left_out = [REPO / rel for rel in frontend.FRONTEND_EXCLUDED]
    assert all(path.exists() for path in left_out), left_out
    leaked = sorted(f for f in imported if any(f == e or e in f.parents for e in left_out))
    assert not leaked, f"compiling the app imports modules the frontend fingerprint ignores: {leaked}"


def test_each_port_has_its_own_web_build_dir(fake_project, tmp_path):
    on_3000 = paths.web_dir(make_settings(tmp_path, port=3000), env={})
    on_3999 = paths.web_dir(make_settings(tmp_path, port=3999), env={})
    assert on_3000 != on_3999
    assert on_3000.parent == on_3999.parent == fake_project / ".web"  # ignored by git
    env = environment.child_env(make_settings(tmp_path, port=3999), base={})
    assert env["REFLEX_WEB_WORKDIR"] == str(on_3999)
    custom = environment.child_env(make_settings(tmp_path), base={"REFLEX_WEB_WORKDIR": "/srv/web"})
    assert custom["REFLEX_WEB_WORKDIR"] == "/srv/web"


def test_assets_hold_the_icons_every_page_links():
    import importlib.util
    import struct

    from app.ui.layout import favicon_links

    hrefs = {str(link.href).strip('"') for link in favicon_links()}
    assert hrefs == {"/favicon.ico", "/logo.svg"}
    for href in hrefs:  # Reflex serves assets/ at the root
        assert (REPO / "assets" / href.lstrip("/")).is_file(), href
    # The committed files are what scripts/make-favicon.py draws.
    spec = importlib.util.spec_from_file_location("make_favicon", REPO / "scripts" / "make-favicon.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (REPO / "assets" / "logo.svg").read_text() == script.svg()
    ico = (REPO / "assets" / "favicon.ico").read_bytes()
    assert ico == script.ico()
    reserved, kind, count = struct.unpack("<HHH", ico[:6])
    assert (reserved, kind) == (0, 1) and count >= 2  # an icon, several sizes
    sizes = sorted(ico[6 + 16 * i] for i in range(count))
    assert 16 in sizes and 32 in sizes
