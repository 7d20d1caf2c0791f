"""Scale-out: predictions through the proxy with one web process and with two, ingestion with
one worker and with two, in the same run, on the topology of tests/deploy/test_scale_out.py
(HAProxy, web processes, `strata worker`s, PostgreSQL, Redis, Chroma).

    STRATA_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        python benchmarks/scale.py [--seconds 10] [--rounds 2] [--concurrency 16] [--documents 24]

Predictions: each round sends --concurrency clients' requests (one new text each, so the
cache never answers) through the proxy for --seconds with one web (the other set to
maintenance on the proxy's runtime API) and then with two, alternating; requests/s and
p50/p99 over the pooled rounds. Ingestion: --documents text files uploaded at once, timed
until every one is ready (documents/s and chunks/s), with one worker (the other stopped)
and then with two. Prints numbers and the two/one ratios, asserts nothing. Needs the test
models (`make test-models`), haproxy, PostgreSQL and the machine's Redis (database 6,
flushed: STRATA_BENCH_REDIS_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from benchmarks.serve import load, percentile, sentences  # noqa: E402
from tests.conftest import database_beside  # noqa: E402
from tests.deploy.scale_topology import ScaleOut  # noqa: E402

PREDICT = "/api/v1/models/zero-shot-classifier/predict"


def predictions(topology: ScaleOut, headers: dict, args, texts) -> dict[str, tuple[float, float, float, int]]:
    """web count -> (requests/s, p50 ms, p99 ms, errors) over the pooled rounds."""
    other = topology.webs[1].name
    pooled = {"one web": ([], 0.0, 0), "two webs": ([], 0.0, 0)}
    for _ in range(args.rounds):
        for label, command in (("one web", "disable"), ("two webs", "enable")):
            topology.proxy_command(f"{command} server webs/{other}")
            latencies, elapsed, errors = asyncio.run(
                load(f"{topology.url}{PREDICT}", headers, args.concurrency, args.seconds, texts)
            )
            kept, total, failed = pooled[label]
            pooled[label] = (kept + latencies, total + elapsed, failed + errors)
    return {
        label: (len(latencies) / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99), errors)
        for label, (latencies, elapsed, errors) in pooled.items()
    }


def ingestion(topology: ScaleOut, headers: dict, name: str, documents: int, corpus: list[str]) -> tuple[float, float]:
    """(documents/s, chunks/s) of `documents` files of ~40 sentences each, from upload to all ready."""
    kb = httpx.post(f"{topology.url}/api/v1/knowledge", headers=headers, json={"name": name}, timeout=30).json()["id"]
    files = [
        (
            "files",
            (f"{name}-{i}.txt", " ".join(f"{corpus[(i * 40 + j) % len(corpus)]} ({name} {i})" for j in range(40))),
        )
        for i in range(documents)
    ]
    started = time.perf_counter()
    uploaded = httpx.post(f"{topology.url}/api/v1/knowledge/{kb}/documents", headers=headers, files=files, timeout=120)
    uploaded.raise_for_status()

    def ready():
        listed = httpx.get(f"{topology.url}/api/v1/knowledge/{kb}/documents", headers=headers, timeout=30).json()
        failed = [d["error"] for d in listed if d["status"] == "failed"]
        if failed:
            raise RuntimeError(f"ingestion failed: {failed[:3]}")
        return all(d["status"] == "ready" for d in listed) and listed

    listed = topology.wait(ready, 1800, f"{documents} documents ingested", interval=0.2)
    elapsed = time.perf_counter() - started
    return documents / elapsed, sum(d["chunk_count"] for d in listed) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--documents", type=int, default=24)
    args = parser.parse_args()
    if not os.environ.get("STRATA_TEST_DATABASE_URL"):
        parser.error("set STRATA_TEST_DATABASE_URL to a PostgreSQL server (its <database>_scale_bench is used)")

    root = Path(tempfile.mkdtemp(prefix="strata-bench-scale-"))
    redis_url = os.environ.get("STRATA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
    corpus = sentences()
    texts = (f"{corpus[i % len(corpus)]} [{i}]" for i in itertools.count())
    try:
        with ScaleOut(
            root,
            database_url=database_beside(os.environ["STRATA_TEST_DATABASE_URL"], "scale_bench"),
            redis_url=redis_url,
            STRATA_RATE_LIMIT_PER_MINUTE="100000000",
        ) as topology:
            headers = {"Authorization": f"Bearer {topology.admin_token()}"}
            asyncio.run(load(f"{topology.url}{PREDICT}", headers, 4, 3, texts))  # both webs load the model
            asyncio.run(load(f"{topology.url}{PREDICT}", headers, 4, 3, texts))
            print(
                f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; predictions: "
                f"{args.rounds} alternating rounds of {args.seconds:.0f} s, {args.concurrency} clients"
            )
            served = predictions(topology, headers, args, texts)
            print(f"{'predictions':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
            for label, (rate, p50, p99, errors) in served.items():
                print(f"{label:<14}{rate:>9.1f}{p50:>9.1f}{p99:>9.1f}{errors:>8}")

            ingest_with_one_worker = topology.workers[1]
            ingest_with_one_worker.stop()
            one = ingestion(topology, headers, "one-worker", args.documents, corpus)
            ingest_with_one_worker.start()
            topology.wait(
                lambda: topology.health()["components"]["workers"]["ok"], 120, "the second worker's heartbeat"
            )
            two = ingestion(topology, headers, "two-workers", args.documents, corpus)
            print(f"\n{'ingestion':<14}{'docs/s':>9}{'chunks/s':>10}")
            for label, (documents_per_s, chunks_per_s) in (("one worker", one), ("two workers", two)):
                print(f"{label:<14}{documents_per_s:>9.2f}{chunks_per_s:>10.1f}")

            (one_rate, _, one_p99, _), (two_rate, _, two_p99, _) = served["one web"], served["two webs"]
            print(
                f"\ntwo / one: predictions x{two_rate / one_rate:.2f} throughput, p99 x{two_p99 / one_p99:.2f}; "
                f"ingestion x{two[0] / one[0]:.2f} documents/s"
            )
            print(
                f"On {os.cpu_count()} cores a second web adds no CPU: one web's model threads (onnxruntime uses "
                "every core) already keep the cores busy, next to the load generator, the proxy, PostgreSQL, Redis "
                "and Chroma, so predictions stay near x1. Ingestion can gain more: part of a document's time is "
                "waiting (the parser's child process, Chroma and database round trips), which a second worker "
                "overlaps. Beyond that, more throughput needs more machines."
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
