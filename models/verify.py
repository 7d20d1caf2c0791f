"""Verify built models without torch: integrity, parity, speed.

``verify_model`` re-hashes the ONNX file against the manifest, loads it with the
runtime ``Embedder``, re-embeds the recorded parity sentences and compares them
with the PyTorch outputs saved at build time, then measures latency (batch 1)
and throughput (batch 32) on a small, time-bounded workload made of the
sentence-sized reference texts (up to 64 word pieces).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.embedder import Embedder
from models.generator import DecodeOptions, Generator
from models.manifest import ModelManifest, model_dirs, read_manifest, row_cosines, sha256_file

__all__ = ["verify_all", "verify_model"]

Progress = Callable[[float, str], None]

# Bounded workload: the whole verify stays well under 15 s on 2 cores.
LATENCY_RUNS = 40
LATENCY_MIN_RUNS = 10
LATENCY_BUDGET_S = 1.5
THROUGHPUT_SENTENCES = 128
THROUGHPUT_BUDGET_S = 2.0
THROUGHPUT_BATCH = 32
SPEED_MAX_TOKENS = 64
THROUGHPUT_CALL = 64  # texts per embed() call: sorting by length works across 2 batches
DECODE_TOKENS = 48  # generated for the chat model's speed figures


def verify_model(model_dir: Path | str, *, on_progress: Progress | None = None) -> dict:
    """Check one built model; returns a JSON-serialisable report (``passed`` says it all).

    Raises models.manifest.ManifestError if the folder has no readable manifest.
    Other failures (a file that will not load, a missing reference) are reported
    in ``error`` with ``passed`` False.
    """
    model_dir = Path(model_dir)
    progress = on_progress or (lambda fraction, message: None)
    manifest = read_manifest(model_dir)
    if manifest.task == "generation":
        return _verify_generator(model_dir, manifest, progress)
    report: dict = {
        "name": manifest.name,
        "file": manifest.file,
        "sha256_expected": manifest.sha256,
        "sha256_actual": None,
        "sha256_ok": False,
        "parity_min_cosine": None,
        "parity_mean_cosine": None,
        "parity_threshold": manifest.parity.threshold,
        "parity_ok": False,
        "load_seconds": None,
        "latency_ms_p50": None,
        "latency_ms_p95": None,
        "throughput_per_s": None,
        "passed": False,
        "error": None,
    }

    progress(0.0, f"{manifest.name}: checking sha256 of {manifest.file}")
    model_path = model_dir / manifest.file
    try:
        actual = sha256_file(model_path)
    except OSError as exc:
        report["error"] = f"cannot read {model_path}: {exc}"
        progress(1.0, f"{manifest.name}: failed ({report['error']})")
        return report
    report["sha256_actual"] = actual
    report["sha256_ok"] = actual == manifest.sha256

    progress(0.15, f"{manifest.name}: loading model")
    try:
        embedder = Embedder.load(model_dir)
    except Exception as exc:  # a tampered file may not even parse
        report["error"] = f"cannot load model: {type(exc).__name__}: {exc}"
        progress(1.0, f"{manifest.name}: failed ({report['error']})")
        return report
    report["load_seconds"] = round(embedder.load_seconds, 4)

    progress(0.3, f"{manifest.name}: comparing with PyTorch reference outputs")
    try:
        with np.load(model_dir / manifest.reference_file, allow_pickle=False) as ref:
            sentences = [str(s) for s in ref["sentences"]]
            expected = np.asarray(ref["embeddings"], dtype=np.float32)
        actual_emb = embedder.embed(sentences, batch_size=8)  # long texts batch together
        cos = row_cosines(actual_emb, expected)
    except Exception as exc:
        report["error"] = f"parity check failed to run: {type(exc).__name__}: {exc}"
        progress(1.0, f"{manifest.name}: failed ({report['error']})")
        return report
    report["parity_min_cosine"] = float(cos.min())
    report["parity_mean_cosine"] = float(cos.mean())
    report["parity_ok"] = bool(cos.min() >= manifest.parity.threshold)

    if not report["sha256_ok"]:
        # Not the artifact that was built and checked: no point timing it.
        report["error"] = "model file does not match the manifest's sha256 (modified or corrupted)"
        progress(1.0, f"{manifest.name}: FAILED ({report['error']})")
        return report

    # Speed is measured on the sentence-sized reference texts (the long
    # paragraphs exist to test truncation and would dominate the timing).
    counts = embedder.token_counts(sentences)
    timed = [s for s, n in zip(sentences, counts, strict=True) if n <= SPEED_MAX_TOKENS] or sentences
    progress(0.5, f"{manifest.name}: measuring latency (batch 1)")
    embedder.embed(timed[:2], batch_size=1)  # warm-up
    latencies = []
    deadline = time.perf_counter() + LATENCY_BUDGET_S
    for i in range(LATENCY_RUNS):
        text = timed[i % len(timed)]
        t0 = time.perf_counter()
        embedder.embed([text], batch_size=1)
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000.0)
        if len(latencies) >= LATENCY_MIN_RUNS and t1 + (t1 - t0) > deadline:
            break
    report["latency_ms_p50"] = round(float(np.percentile(latencies, 50)), 3)
    report["latency_ms_p95"] = round(float(np.percentile(latencies, 95)), 3)

    progress(0.75, f"{manifest.name}: measuring throughput (batch {THROUGHPUT_BATCH})")
    workload = [timed[i % len(timed)] for i in range(THROUGHPUT_SENTENCES)]
    done = 0
    deadline = time.perf_counter() + THROUGHPUT_BUDGET_S
    t0 = time.perf_counter()
    for start in range(0, len(workload), THROUGHPUT_CALL):
        chunk = workload[start : start + THROUGHPUT_CALL]
        b0 = time.perf_counter()
        embedder.embed(chunk, batch_size=THROUGHPUT_BATCH)
        b1 = time.perf_counter()
        done += len(chunk)
        if b1 + (b1 - b0) > deadline:  # the next batch would overrun the budget
            break
    report["throughput_per_s"] = round(done / (time.perf_counter() - t0), 2)

    report["passed"] = bool(report["sha256_ok"] and report["parity_ok"])
    verdict = "passed" if report["passed"] else "FAILED"
    progress(1.0, f"{manifest.name}: {verdict}")
    return report


def verify_all(models_dir: Path | str, on_progress: Progress | None = None) -> list[dict]:
    """Verify every built model under ``models_dir``; progress is spread across models."""
    dirs = model_dirs(models_dir)
    reports = []
    n = len(dirs)
    for i, model_dir in enumerate(dirs):
        sub = None
        if on_progress is not None:

            def sub(fraction: float, message: str, _i: int = i) -> None:
                on_progress((_i + fraction) / n, message)

        reports.append(verify_model(model_dir, on_progress=sub))
    if on_progress is not None:
        on_progress(1.0, f"verified {n} model(s)" if n else f"no built models in {models_dir}")
    return reports


def _verify_generator(model_dir: Path, manifest: ModelManifest, progress: Progress) -> dict:
    """The chat model: sha256, then PyTorch's recorded greedy tokens and first logits through the
    runtime decode loop, then time to first token and decode speed."""
    report: dict = {
        "name": manifest.name,
        "file": manifest.file,
        "sha256_expected": manifest.sha256,
        "sha256_actual": None,
        "sha256_ok": False,
        "parity_min_cosine": None,
        "parity_threshold": manifest.parity.threshold,
        "greedy_agreement": None,
        "parity_ok": False,
        "load_seconds": None,
        "time_to_first_token_ms": None,
        "latency_ms_p50": None,
        "latency_ms_p95": None,
        "tokens_per_s": None,
        "passed": False,
        "error": None,
    }
    progress(0.0, f"{manifest.name}: checking sha256 of {manifest.file}")
    try:
        report["sha256_actual"] = sha256_file(model_dir / manifest.file)
    except OSError as exc:
        report["error"] = f"cannot read {model_dir / manifest.file}: {exc}"
        progress(1.0, f"{manifest.name}: failed ({report['error']})")
        return report
    report["sha256_ok"] = report["sha256_actual"] == manifest.sha256

    progress(0.15, f"{manifest.name}: loading model")
    try:
        generator = Generator.load(model_dir)
    except Exception as exc:  # a tampered file may not even parse
        report["error"] = f"cannot load model: {type(exc).__name__}: {exc}"
        progress(1.0, f"{manifest.name}: failed ({report['error']})")
        return report
    report["load_seconds"] = round(generator.load_seconds, 4)

    progress(0.3, f"{manifest.name}: comparing with PyTorch's greedy tokens")
    try:
        with np.load(model_dir / manifest.reference_file, allow_pickle=False) as ref:
            prompt_ids = np.split(ref["prompt_ids"], np.cumsum(ref["prompt_lengths"])[:-1])
            expected = np.split(ref["continuations"], np.cumsum(ref["continuation_lengths"])[:-1])
            first_logits = np.asarray(ref["first_logits"], dtype=np.float32)
        references = list(zip(prompt_ids, expected, first_logits, strict=True))
    except Exception as exc:
        report["error"] = f"parity check failed to run: {type(exc).__name__}: {exc}"
        progress(1.0, f"{manifest.name}: failed ({report['error']})")
        return report
    cosines, agreements = [], []
    for done, (ids, continuation, logits) in enumerate(references):
        # Each prompt decodes up to ~100 tokens (over a minute for them all on a slow CPU): a
        # progress call between prompts is also where a cancelled job stops.
        fraction = 0.3 + 0.3 * done / len(references)
        progress(fraction, f"{manifest.name}: comparing with PyTorch's greedy tokens ({done}/{len(references)})")
        try:
            actual = generator.teacher_forced_logits(ids.tolist(), continuation[:1].tolist())[0]
            cosines.append(float(row_cosines(actual[None], logits[None])[0]))
            agreements.append(1.0 if generator.first_departure(ids.tolist(), continuation.tolist()) is None else 0.0)
        except Exception as exc:
            report["error"] = f"parity check failed to run: {type(exc).__name__}: {exc}"
            progress(1.0, f"{manifest.name}: failed ({report['error']})")
            return report
    report["parity_min_cosine"] = min(cosines)
    report["greedy_agreement"] = min(agreements)
    report["parity_ok"] = bool(min(cosines) >= manifest.parity.threshold and min(agreements) == 1.0)
    if not report["sha256_ok"]:
        report["error"] = "model file does not match the manifest's sha256 (modified or corrupted)"
        progress(1.0, f"{manifest.name}: FAILED ({report['error']})")
        return report

    progress(0.6, f"{manifest.name}: measuring decode speed")
    ids = generator.encode_chat([("user", "Describe a typical day at a busy harbour.")])
    speed = DecodeOptions(max_new_tokens=DECODE_TOKENS, repetition_penalty=1.0, no_repeat_ngram=0)
    started = time.perf_counter()
    arrivals = [started, *(time.perf_counter() for _token in generator.token_ids(ids, speed))]
    steps_ms = np.diff(arrivals) * 1000.0
    report["time_to_first_token_ms"] = round(float(steps_ms[0]), 1)
    if len(steps_ms) > 1:
        # Per generated token after the first: the latency the reader sees between words.
        report["latency_ms_p50"] = round(float(np.percentile(steps_ms[1:], 50)), 3)
        report["latency_ms_p95"] = round(float(np.percentile(steps_ms[1:], 95)), 3)
        report["tokens_per_s"] = round((len(steps_ms) - 1) / (arrivals[-1] - arrivals[1]), 2)

    report["passed"] = bool(report["sha256_ok"] and report["parity_ok"])
    progress(1.0, f"{manifest.name}: {'passed' if report['passed'] else 'FAILED'}")
    return report
