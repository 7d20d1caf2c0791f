"""The serving runtime: model versions loaded lazily into a bounded LRU, and a dynamic
batcher per version that gathers concurrent requests into one model call, run in a
worker thread so the event loop stays free."""

import asyncio
import threading
import time
from collections import OrderedDict
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core import ml
from app.core.metrics import MODEL_INFERENCE_LATENCY, SERVING_BATCH_SIZE
from app.core.settings import get_settings
from app.predict.artifacts import artifact_path
from models.classifier import ZeroShotClassifier
from models.embedder import Embedder
from models.manifest import EMBEDDER_NAME
from models.sketch import project
from models.trained import INPUT_TEXT, TrainedClassifier

# Model calls running at once (each uses all cores through onnxruntime's own threads).
INFERENCE_THREADS = 2

# One input's answer, as cached: {"label", "confidence", "scores": [[label, p], ...], "embedding",
# "projection"}. "projection" is the input's drift sketch (models.sketch) when the model computed
# an embedding anyway, so that the prediction log need not embed the input again; never returned.
Output = dict[str, Any]


@dataclass(frozen=True)
class VersionRef:
    """What the runtime needs to know about a version to load and serve it."""

    id: int
    model_name: str
    kind: str
    artifact: str


class LoadedVersion:
    def __init__(self, ref: VersionRef, *, threads: int | None = None) -> None:
        """`threads`: onnxruntime threads of a version loaded for batch work (app/batch), which
        then gets models of its own; None shares the process's embedder with all cores."""
        self.ref = ref
        # A classifier trained in Strata is an ONNX file (models.trained); a zero-shot one is JSON.
        trained = ref.kind == "classifier" and ref.artifact.endswith(".onnx")
        path = artifact_path(ref.artifact)
        self._trained = TrainedClassifier.load(path, threads=threads) if trained else None
        self._classifier = ZeroShotClassifier.load(path) if ref.kind == "classifier" and not trained else None
        # Classifiers and the built-in embedder share the process's embedder; an embedder
        # version elsewhere (another artifact) gets its own.
        default_dir = get_settings().resolved_models_dir / EMBEDDER_NAME
        is_default = ref.kind == "classifier" or path.resolve() == default_dir
        if threads is not None:
            # Loaded only if used: a trained text model runs in onnxruntime alone.
            text_model = self._trained is not None and self._trained.input_kind == INPUT_TEXT
            self._embedder = None if text_model else Embedder.load(default_dir if is_default else path, threads=threads)
        else:
            self._embedder = ml.get_embedder() if is_default else Embedder.load(path)
        self._batch_size = max(1, get_settings().serving_max_batch)

    def _embed(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = self._embedder.embed(texts, batch_size=self._batch_size)
        MODEL_INFERENCE_LATENCY.labels(self.ref.model_name).observe(time.perf_counter() - started)
        return vectors

    def _probabilities(self, texts: list[str]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
        """Label names, probabilities, and the embeddings they came from (None for a text model)."""
        if self._trained is None:
            vectors = self._embed(texts)
            return self._classifier.names, self._classifier.probabilities(vectors), vectors
        if self._trained.input_kind == INPUT_TEXT:
            started = time.perf_counter()
            probabilities = self._trained.probabilities_from_texts(texts)
            MODEL_INFERENCE_LATENCY.labels(self.ref.model_name).observe(time.perf_counter() - started)
            return self._trained.labels, probabilities, None
        vectors = self._embed(texts)
        probabilities = self._trained.probabilities_from_vectors(vectors, self._embedder.manifest.sha256)
        return self._trained.labels, probabilities, vectors

    def run(self, texts: list[str]) -> list[Output]:
        if self._classifier is None and self._trained is None:
            vectors = self._embed(texts)
            return [
                {"label": None, "confidence": None, "scores": [], "embedding": vector.tolist(), "projection": sketch}
                for vector, sketch in zip(vectors, _projections(vectors, len(texts)), strict=True)
            ]
        names, probabilities, vectors = self._probabilities(texts)
        outputs = []
        for row, sketch in zip(probabilities, _projections(vectors, len(texts)), strict=True):
            best = int(row.argmax())
            outputs.append(
                {
                    "label": names[best],
                    "confidence": float(row[best]),
                    "scores": sorted(
                        ([name, float(p)] for name, p in zip(names, row, strict=True)), key=lambda s: -s[1]
                    ),
                    "embedding": None,
                    "projection": sketch,
                }
            )
        return outputs


def _projections(vectors: np.ndarray | None, count: int) -> list[list[float] | None]:
    """Each input's drift sketch projection, when the model embedded the inputs (a few
    multiplications; the prediction log would otherwise embed sampled inputs again)."""
    if vectors is None:
        return [None] * count
    return [[round(float(value), 4) for value in row] for row in project(vectors)]


class LoadedVersions:
    """At most `capacity` loaded versions; the least recently used one is dropped first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._loaded: OrderedDict[int, LoadedVersion] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ref: VersionRef) -> LoadedVersion:
        """Called from worker threads: loading reads files and may build an ONNX session."""
        with self._lock:
            if ref.id in self._loaded:
                self._loaded.move_to_end(ref.id)
                return self._loaded[ref.id]
            loaded = LoadedVersion(ref)
            self._loaded[ref.id] = loaded
            while len(self._loaded) > self.capacity:
                self._loaded.popitem(last=False)
            return loaded

    def loaded_ids(self) -> list[int]:
        with self._lock:
            return list(self._loaded)


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future


class Batcher:
    """Gathers what arrives for one version within `wait_ms` (up to `max_batch` inputs)
    into one model call. One per version and event loop.

    The wait only happens under concurrency (the previous call served more than one
    request): a lone caller is served at once instead of paying the wait for nothing.
    What arrives while the model runs is taken as the next batch in any case."""

    def __init__(
        self, ref: VersionRef, versions: LoadedVersions, executor: Executor, max_batch: int, wait_ms: float
    ) -> None:
        self.ref = ref
        self._versions = versions
        self._executor = executor
        self._max_batch = max(1, max_batch)
        self._wait = max(0.0, wait_ms) / 1000
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._concurrent = False

    async def run(self, texts: list[str]) -> list[Output]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(texts, future))
        return await future

    async def _gather(self) -> list[_Request]:
        batch = [await self._queue.get()]
        size = len(batch[0].texts)
        deadline = asyncio.get_running_loop().time() + (self._wait if self._concurrent else 0)
        while size < self._max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                request = (
                    self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, TimeoutError):
                break
            batch.append(request)
            size += len(request.texts)
        self._concurrent = len(batch) > 1
        return batch

    async def _serve(self) -> None:
        while True:
            batch = await self._gather()
            texts = [text for request in batch for text in request.texts]
            SERVING_BATCH_SIZE.observe(len(texts))
            try:
                outputs = await asyncio.get_running_loop().run_in_executor(self._executor, self._infer, texts)
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            start = 0
            for request in batch:
                if not request.future.done():
                    request.future.set_result(outputs[start : start + len(request.texts)])
                start += len(request.texts)

    def _infer(self, texts: list[str]) -> list[Output]:
        return self._versions.get(self.ref).run(texts)


class Runtime:
    """The process's serving runtime."""

    def __init__(self) -> None:
        settings = get_settings()
        self.versions = LoadedVersions(settings.serving_max_loaded_versions)
        self._max_batch = settings.serving_max_batch
        self._wait_ms = settings.serving_batch_wait_ms
        self._batchers: dict[tuple[int, int], Batcher] = {}
        # Model calls get threads of their own: in the default executor they would queue
        # behind database calls (auth, logs) while the model sits idle.
        self._executor = ThreadPoolExecutor(max_workers=INFERENCE_THREADS, thread_name_prefix="strata-inference")

    async def run(self, ref: VersionRef, texts: list[str]) -> list[Output]:
        key = (id(asyncio.get_running_loop()), ref.id)
        batcher = self._batchers.get(key)
        if batcher is None or batcher.ref != ref:
            batcher = self._batchers[key] = Batcher(ref, self.versions, self._executor, self._max_batch, self._wait_ms)
        return await batcher.run(texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False)


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def reset_runtime() -> None:
    """Forget loaded versions and batchers (settings changed, e.g. in tests)."""
    global _runtime
    if _runtime is not None:
        _runtime.close()
    _runtime = None
