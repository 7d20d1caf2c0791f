import json
import subprocess

from tests.conftest import REPO

BUILD_ONLY = ["torch", "transformers", "optimum", "sentence_transformers", "gguf", "accelerate"]


def test_web_app_and_worker_never_import_build_only_packages():
    """The runtime image carries no torch: the web app and the worker must not need it."""
    code = f"import json, sys, app.app, jobs.worker; print(json.dumps([m for m in {BUILD_ONLY!r} if m in sys.modules]))"
    result = subprocess.run(
        [str(REPO / ".venv/bin/python"), "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
