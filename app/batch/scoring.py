"""Scoring a batch run's chunks in the worker: each chunk's texts (from the extracted texts
file, app/batch/files.py) through the pinned model version, written out and checkpointed
before the next one starts. Runs in a thread (jobs.blocking.run_blocking), never on the event
loop; `on_progress` is the thread's link to the job: it raises once a user cancelled."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.batch.files import read_chunk_texts, write_chunk
from app.predict.serving import LoadedVersion, VersionRef

# Rows per model call within a chunk: cancel and the rows/s cap act between two calls.
CALL_ROWS = 256

Output = tuple[str | None, float | None, str | None]  # prediction, confidence, error


class ModelUnusable(Exception):
    """The model version cannot score anything (not one row): the job fails with this."""


@dataclass
class ChunkDone:
    index: int
    rows: int
    rows_failed: int
    path: Path
    sha256: str
    rows_per_second: float


class Scorer:
    """A classifier version loaded for batch work, with its own onnxruntime threads."""

    def __init__(self, ref: VersionRef, *, threads: int) -> None:
        try:
            self._loaded = LoadedVersion(ref, threads=threads)
            self._loaded.run(["A short text to check that the model answers."])
        except Exception as exc:  # noqa: BLE001 - whatever stops the model stops the job, with its reason
            raise ModelUnusable(f"Model {ref.model_name!r} cannot score: {exc}") from exc

    def score(self, texts: list[str]) -> list[Output]:
        """One model call for the texts; should it fail, each text alone, so that one text the
        model cannot take fails only its own row."""
        try:
            return [(out["label"], out["confidence"], None) for out in self._loaded.run(texts)]
        except Exception:  # noqa: BLE001 - narrowed down row by row below
            if len(texts) == 1:
                raise
        outputs: list[Output] = []
        for text in texts:
            try:
                outputs.extend(self.score([text]))
            except Exception as exc:  # noqa: BLE001 - the row's error says what went wrong
                outputs.append((None, None, f"the model could not score this text: {str(exc)[:200]}"))
        return outputs


class RateCap:
    """At most `rows_per_second` rows a second over the attempt (0: no cap), by sleeping in
    the scoring thread between model calls."""

    def __init__(self, rows_per_second: float) -> None:
        self.rows_per_second = rows_per_second
        self.started = time.monotonic()
        self.rows = 0

    def add(self, rows: int) -> None:
        self.rows += rows
        if self.rows_per_second > 0:
            ahead = self.rows / self.rows_per_second - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0


def score_chunk(
    scorer: Scorer, texts: list[str | None], problems: list[str | None], *, cap: RateCap, on_call: Callable[[int], None]
) -> list[Output]:
    """The chunk's outputs, in row order; rows without a text get their problem as the error."""
    outputs: list[Output] = [(None, None, problem) for problem in problems]
    scorable = [i for i, text in enumerate(texts) if text is not None]
    for start in range(0, len(scorable), CALL_ROWS):
        rows = scorable[start : start + CALL_ROWS]
        for row, output in zip(rows, scorer.score([texts[i] for i in rows]), strict=True):
            outputs[row] = output
        cap.add(len(rows))
        on_call(len(rows))
    return outputs


def progress_message(done: int, total: int, rows_per_second: float) -> str:
    """ "4,200 / 10,000 rows · 1,350 rows/s · ETA 0:04"."""
    message = f"{done:,} / {total:,} rows"
    if rows_per_second > 0:
        message += f" · {rows_per_second:,.0f} rows/s · ETA {format_eta((total - done) / rows_per_second)}"
    return message


def format_eta(seconds: float) -> str:
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class ChunkPlan:
    texts_path: Path
    chunk_dir: Path
    chunk_size: int
    rows_total: int
    rows_done: int  # by earlier attempts
    pending: list[int]  # chunk indices not yet checkpointed, in order
    model_version: int


def score_chunks(
    plan: ChunkPlan,
    scorer: Scorer,
    *,
    max_rows_per_second: float,
    checkpoint: Callable[[ChunkDone], None],
    on_progress: Callable[[float, str], None],
    scoring_share: float = 1.0,
) -> float:
    """Scores the pending chunks in order; each is written out and `checkpoint`ed (its row
    committed) before the next starts. Progress runs up to `scoring_share` of the job.
    Returns the attempt's rows/s."""
    cap = RateCap(max_rows_per_second)
    done = plan.rows_done

    def report(extra: int) -> None:
        fraction = scoring_share * (done + extra) / max(1, plan.rows_total)
        on_progress(fraction, progress_message(done + extra, plan.rows_total, cap.rate))

    report(0)
    plan.chunk_dir.mkdir(parents=True, exist_ok=True)
    for index in plan.pending:
        texts, problems = read_chunk_texts(plan.texts_path, index)
        in_chunk = 0

        def on_call(rows: int) -> None:
            nonlocal in_chunk
            in_chunk += rows
            report(in_chunk)

        outputs = score_chunk(scorer, texts, problems, cap=cap, on_call=on_call)
        cap.add(len(texts) - in_chunk)  # rows without text count as done too
        path = plan.chunk_dir / f"{index:06d}.parquet"
        digest = write_chunk(
            path, first_row=index * plan.chunk_size + 1, outputs=outputs, model_version=plan.model_version
        )
        failed = sum(1 for _, _, error in outputs if error is not None)
        checkpoint(ChunkDone(index, len(outputs), failed, path, digest, cap.rate))
        done += len(outputs)
        report(0)
    return cap.rate
