"""The running app must never pull in torch, transformers or optimum."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "optimum", "sentence_transformers")

SCRIPT = """
import json, sys
from pathlib import Path
import models.embedder, models.verify, models.manifest, models.build
model_dir = Path(sys.argv[1])
e = models.embedder.Embedder.load(model_dir)
e.embed(["does this import torch?", "no it should not"])
report = models.verify.verify_model(model_dir)
ok, _ = models.build.check_up_to_date(model_dir)
models.build.build_models(model_dir.parent, log=lambda line: None)
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2:]))
print(json.dumps({"heavy": heavy, "passed": report["passed"], "up_to_date": ok}))
"""


def test_runtime_modules_do_not_import_torch_transformers_or_optimum(model_dir: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model_dir), *HEAVY],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"heavy": [], "passed": True, "up_to_date": True}, result
