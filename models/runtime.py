"""What the runtime models share: thread count, onnxruntime session options, opening a built folder."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import onnxruntime as ort
from tokenizers import Tokenizer

from models.manifest import ModelManifest, read_manifest

__all__ = ["default_threads", "open_model", "release_freed_memory", "session_options"]

try:
    _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _MALLOC_TRIM = None


def release_freed_memory() -> None:
    """Hand memory freed by a model back to the system.

    glibc keeps freed heap memory for reuse, so a process's RSS stays at its peak: after
    loading a model (its file's bytes, parsed and copied into the session), after a long
    prompt's pass (~30 MB the decode steps never need again), after a large embedding batch
    (~160-230 MB for 32 long texts, measured here). Costs ~0.05 ms. Elsewhere this does nothing.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def default_threads() -> int:
    """CPU cores this process may run on (respects taskset/cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int, *, arena: bool = True, spinning: bool = False) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # ORT's arena keeps the largest intermediate tensors it ever held; without it they are freed.
    opts.enable_cpu_mem_arena = arena
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    # The web, the worker and the stores share a few cores: idle ORT threads that
    # spin-wait steal them, and made batch-1 latency worse under load here. A decode
    # step (``spinning``) runs ~800 small kernels back to back: waking a sleeping thread
    # for each made 2-thread steps 30% slower (16.5 against 12.7 ms); llama.cpp spins too.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


def open_model(
    model_dir: Path, *, task: str, threads: int | None = None, arena: bool = True, spinning: bool = False
) -> tuple[ModelManifest, ort.InferenceSession, Tokenizer, int]:
    """The manifest, an onnxruntime session and the tokenizer of the ``task`` model built in ``model_dir``."""
    manifest = read_manifest(model_dir)
    if manifest.task != task:
        raise ValueError(f"{model_dir} holds a {manifest.task} model, not a {task} model")
    if threads is None:
        threads = default_threads()
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    tokenizer = Tokenizer.from_file(str(model_dir / manifest.tokenizer_file))
    session = ort.InferenceSession(
        str(model_dir / manifest.file),
        sess_options=session_options(threads, arena=arena, spinning=spinning),
        providers=["CPUExecutionProvider"],
    )
    return manifest, session, tokenizer, threads
