"""Answers while a job runs: the chat model's decode speed beside a worker on the same cores.

    python benchmarks/contention.py [--rounds 3] [--seconds 6]

The web process answers with the built-in chat model while the worker embeds text for an
ingestion job (batches of 32 sentences of benchmarks/embed.py's corpus), as on one machine
running `strata run`. Three ways, alternating, in this run:

- quiet: no job;
- job at the web's priority: the worker as it ran before STRATA_WORKER_NICENESS;
- job yielding: the worker at STRATA_WORKER_NICENESS (jobs.runtime.yield_to_the_web).

For each it prints the answer's decode tokens/s (median round; ratio against quiet) and the
job's sentences/s while the answer was written (ratio against the job alone). The job is a
child process of this one, so it shares this login session, as supervisord's programs share
supervisord's: with the kernel's autogroup scheduling, niceness orders processes only within
one session. Prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from embed import load_sentences, take  # noqa: E402

from app.core.settings import Settings  # noqa: E402
from jobs.runtime import yield_to_the_web  # noqa: E402
from models.embedder import Embedder  # noqa: E402
from models.export_generator import BENCHMARK_PROMPTS  # noqa: E402
from models.generator import DecodeOptions, Generator  # noqa: E402
from models.manifest import EMBEDDER_NAME, GENERATOR_NAME  # noqa: E402
from models.runtime import default_threads  # noqa: E402

OPEN_ENDED = BENCHMARK_PROMPTS[:2]
ANSWER = DecodeOptions(max_new_tokens=96)
BATCH = 32
T = TypeVar("T")


def _ingest(models_dir: str, niceness: int, sentences, ready, stop) -> None:
    """An ingestion job's work: batches of sentences through the embedder, counted."""
    yield_to_the_web(niceness)
    embedder = Embedder.load(Path(models_dir) / EMBEDDER_NAME)
    texts, _ = load_sentences()
    batch = take(texts, BATCH)
    embedder.embed(batch)
    ready.set()
    while not stop.is_set():
        embedder.embed(batch)
        with sentences.get_lock():
            sentences.value += BATCH


class Job:
    def __init__(self, models_dir: Path, niceness: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.sentences, self.ready, self.stop = context.Value("q", 0), context.Event(), context.Event()
        self.process = context.Process(
            target=_ingest, args=(str(models_dir), niceness, self.sentences, self.ready, self.stop)
        )

    def __enter__(self) -> Job:
        self.process.start()
        if not self.ready.wait(120):
            raise SystemExit("the ingestion job did not start")
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.process.join(30)

    def rate_during(self, work: Callable[[], T]) -> tuple[T, float]:
        """What `work` returns, and the job's sentences/s while it ran."""
        start, began = self.sentences.value, time.perf_counter()
        result = work()
        return result, (self.sentences.value - start) / (time.perf_counter() - began)


def decode_rate(generator: Generator, prompts: list[list[int]]) -> float:
    """Tokens/s after the first token, over the open-ended prompts."""
    tokens, seconds = 0, 0.0
    for prompt in prompts:
        count, first = 0, None
        for _ in generator.token_ids(prompt, ANSWER):
            count += 1
            first = first or time.perf_counter()
        tokens += count - 1
        seconds += time.perf_counter() - first
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="the job alone, measured this long a round")
    parser.add_argument(
        "--models-dir", type=Path, default=Path(os.environ.get("STRATA_MODELS_DIR") or REPO / ".cache" / "models")
    )
    args = parser.parse_args()
    niceness = Settings(_env_file=None).worker_niceness
    generator = Generator.load(args.models_dir / GENERATOR_NAME)
    prompts = [generator.encode_chat(messages) for messages in OPEN_ENDED]
    decode_rate(generator, prompts)  # warm-up
    ways = {"quiet": None, "job at the web's priority": 0, f"job yielding (niceness {niceness})": niceness}
    answers: dict[str, list[float]] = {way: [] for way in ways}
    job_alone: dict[str, list[float]] = {way: [] for way in ways if ways[way] is not None}
    job_beside: dict[str, list[float]] = {way: [] for way in job_alone}
    print(f"{default_threads()} cores, {args.rounds} rounds", flush=True)
    for round_ in range(args.rounds):
        for way, job_niceness in ways.items():
            if job_niceness is None:
                answers[way].append(decode_rate(generator, prompts))
                continue
            with Job(args.models_dir, job_niceness) as job:
                job_alone[way].append(job.rate_during(lambda: time.sleep(args.seconds))[1])
                answer, beside = job.rate_during(lambda: decode_rate(generator, prompts))
                answers[way].append(answer)
                job_beside[way].append(beside)
            print(f"  round {round_ + 1}: {way}: {answers[way][-1]:.1f} tok/s", flush=True)
    quiet = statistics.median(answers["quiet"])
    print(f"\n{'':34} {'answer decode':>22} {'job while answering':>30}")
    for way in ways:
        rate = statistics.median(answers[way])
        line = f"{way:34} {rate:9.1f} tok/s (x{rate / quiet:.2f})"
        if way in job_alone:
            alone, beside = statistics.median(job_alone[way]), statistics.median(job_beside[way])
            line += f" {beside:9.1f} sentences/s (x{beside / alone:.2f} of {alone:.1f} alone)"
        print(line)


if __name__ == "__main__":
    main()
