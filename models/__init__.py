"""Strata's machine-learning models: export, load, run, verify. Imports nothing from app/ or jobs/."""

import os

# onnxruntime on Linux reports telemetry unless told not to; Strata runs offline.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
