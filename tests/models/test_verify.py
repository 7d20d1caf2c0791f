"""Verification catches tampering and reports parity and speed."""

from __future__ import annotations

import json
from pathlib import Path

from models.manifest import EMBEDDER_NAME
from models.verify import verify_all, verify_model

REPORT_KEYS = {
    "name",
    "file",
    "sha256_expected",
    "sha256_actual",
    "sha256_ok",
    "parity_min_cosine",
    "parity_mean_cosine",
    "parity_threshold",
    "parity_ok",
    "load_seconds",
    "latency_ms_p50",
    "latency_ms_p95",
    "throughput_per_s",
    "passed",
}


def test_built_model_passes_verification(model_dir: Path):
    steps: list[tuple[float, str]] = []
    report = verify_model(model_dir, on_progress=lambda f, m: steps.append((f, m)))

    assert REPORT_KEYS <= report.keys()
    json.dumps(report)  # serialisable as is
    assert report["passed"] is True, report
    assert report["sha256_ok"] and report["sha256_actual"] == report["sha256_expected"]
    assert report["parity_ok"] and report["parity_min_cosine"] >= report["parity_threshold"] >= 0.999
    assert report["latency_ms_p95"] >= report["latency_ms_p50"] > 0
    assert report["throughput_per_s"] > 0 and report["load_seconds"] > 0

    fractions = [f for f, _ in steps]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions) and len(steps) >= 5
    assert all(EMBEDDER_NAME in m for _, m in steps)


def test_tampered_model_fails_sha256_check(model_copy: Path):
    path = model_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(16)  # same size: only the hash can tell
    path.write_bytes(bytes(data))

    report = verify_model(model_copy)

    assert report["sha256_ok"] is False
    assert report["sha256_actual"] != report["sha256_expected"]
    assert report["passed"] is False
    assert "sha256" in report["error"]
    json.dumps(report)


def test_truncated_model_is_reported_not_raised(model_copy: Path):
    path = model_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])

    report = verify_model(model_copy)

    assert report["passed"] is False and report["sha256_ok"] is False
    assert report["error"]


def test_verify_all_covers_every_model_with_overall_progress(models_dir: Path, built_manifests):
    steps: list[float] = []
    reports = verify_all(models_dir, on_progress=lambda f, m: steps.append(f))
    assert [r["name"] for r in reports] == sorted(m.name for m in built_manifests)
    assert all(r["passed"] for r in reports)
    assert steps == sorted(steps) and steps[-1] == 1.0
