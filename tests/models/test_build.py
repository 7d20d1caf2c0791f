"""Building the ONNX model: skipped when up to date, atomic when it runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import models.export_embedder as export_embedder
from models.build import build_models, check_up_to_date
from models.manifest import EMBEDDER_NAME, GENERATOR_NAME, ManifestError, list_manifests, read_manifest, sha256_file


def test_built_model_has_manifest_and_passing_parity(built_manifests, model_dir: Path):
    manifest = next(m for m in built_manifests if m.name == EMBEDDER_NAME)
    assert manifest.name == EMBEDDER_NAME
    assert manifest.task == "embedding"
    assert manifest.dimensions == 384
    assert manifest.max_length == 256  # sentence-transformers' max_seq_length, not tokenizer.json's 128
    assert manifest.parity.n_sentences >= 20
    assert manifest.parity.min_cosine >= manifest.parity.threshold >= 0.999
    assert manifest.exporter["optimum-onnx"] and manifest.exporter["torch"]
    assert (model_dir / manifest.file).stat().st_size == manifest.size_bytes
    assert sha256_file(model_dir / manifest.file) == manifest.sha256
    assert read_manifest(model_dir) == manifest


def test_second_build_is_skipped(built_manifests, models_dir: Path, model_dir: Path):
    onnx_file = model_dir / built_manifests[0].file
    mtime_before = onnx_file.stat().st_mtime_ns
    lines: list[str] = []

    again = build_models(models_dir, log=lines.append)

    assert again == built_manifests
    assert onnx_file.stat().st_mtime_ns == mtime_before
    assert any("up to date" in line for line in lines), lines
    assert not any("building" in line for line in lines), lines


def test_up_to_date_check_notices_changed_inputs_and_missing_files(model_copy: Path):
    assert check_up_to_date(model_copy) == (True, "up to date")

    manifest_path = model_copy / "manifest.json"
    original = manifest_path.read_text()
    data = json.loads(original)
    data["inputs_fingerprint"] = "0" * 64  # as if torch or build.py had changed
    manifest_path.write_text(json.dumps(data))
    ok, reason = check_up_to_date(model_copy)
    assert not ok and "inputs changed" in reason

    manifest_path.write_text(original)
    (model_copy / "model.onnx").unlink()
    ok, reason = check_up_to_date(model_copy)
    assert not ok and "missing" in reason


def test_failed_build_keeps_previous_model_and_leaves_no_half_model(model_copy: Path, tmp_path: Path, monkeypatch):
    models_dir = tmp_path
    sha_before = sha256_file(model_copy / "model.onnx")
    # A folder left behind by a build that was killed earlier.
    leftover = models_dir / f".{EMBEDDER_NAME}.tmp-killed"
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half a model")

    def exporter_dies_half_way(src, out_dir, log):
        (Path(out_dir) / "model.onnx").write_bytes(b"partial")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(export_embedder, "_export_onnx", exporter_dies_half_way)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        build_models(models_dir, force=True, log=lambda line: None)

    assert sha256_file(model_copy / "model.onnx") == sha_before
    assert check_up_to_date(model_copy)[0]
    hidden = sorted(p.name for p in models_dir.iterdir() if p.name.startswith(".") and p.is_dir())
    assert hidden == [], hidden


def test_interrupted_swap_restores_the_complete_previous_model(model_copy: Path, tmp_path: Path):
    # Killed between "rename old model away" and "rename new model in".
    os.rename(model_copy, tmp_path / f".{EMBEDDER_NAME}.old-123-456")
    lines: list[str] = []

    (manifest,) = build_models(tmp_path, names=[EMBEDDER_NAME], log=lines.append)

    assert check_up_to_date(model_copy)[0]
    assert manifest == read_manifest(model_copy)
    assert any("restored" in line for line in lines), lines


def test_manifest_errors_are_clear(tmp_path: Path, model_copy: Path):
    empty = tmp_path / "not-built"
    empty.mkdir()
    with pytest.raises(ManifestError, match="not been built"):
        read_manifest(empty)

    (model_copy / "manifest.json").write_text("{ this is not json")
    with pytest.raises(ManifestError, match="corrupt"):
        read_manifest(model_copy)


def test_list_manifests_lists_built_models_only(models_dir: Path, built_manifests, tmp_path: Path):
    assert [m.name for m in list_manifests(models_dir)] == sorted([EMBEDDER_NAME, GENERATOR_NAME])
    (tmp_path / "stray-folder").mkdir()
    assert list_manifests(tmp_path) == []
    assert list_manifests(tmp_path / "does-not-exist") == []
