"""Retrieval quality: dense, lexical (BM25) and hybrid (reciprocal rank fusion) side by side.

    python benchmarks/retrieval.py [--distractors N] [--top-k 50]

The Python FAQ (Debian python3.11-doc, installed by `make sample-data`) is a real
retrieval set: each question heading was written by the documentation's authors and
the answer under it is the relevant passage. Every answer is indexed as a document of
its own, without its question; the rest of the Python 3.11 documentation (every page
outside faq/, except the generated indexes) is indexed beside them as distractors.
Each question is asked through Strata's own `search` in each mode (hybrid with several BM25 weights); passages are
collapsed to their documents and the answer's rank gives recall@10, MRR and nDCG@10.

Runs in a scratch data directory with its own SQLite database and Chroma server,
and the ONNX embedder from STRATA_MODELS_DIR (default .cache/models). Prints
numbers, asserts nothing.
"""

import argparse
import hashlib
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
SKIPPED_PAGES = ("genindex", "py-modindex", "search", "contents")
# (label, search mode, BM25 weight in the fusion); the hybrid weights are compared on
# half of the questions and the best is reported on the other half.
RUNS = (
    ("dense", "dense", None),
    ("BM25", "lexical", None),
    ("hybrid 1.0", "hybrid", 1.0),
    ("hybrid 0.5", "hybrid", 0.5),
    ("hybrid 0.25", "hybrid", 0.25),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_chroma(path: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "chroma"),
            "run",
            "--path",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            url.rsplit(":", 1)[1],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat").status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.terminate()
    raise SystemExit("the Chroma server did not start")


def faq_pairs() -> list[tuple[str, str, str]]:
    """(page, question, answer) from the FAQ pages: sections whose heading is a question."""
    from app.core.settings import get_settings
    from app.knowledge.parsing import ParseLimits, parse_document

    limits = ParseLimits.of(get_settings())
    pairs = []
    for page in sorted((PYTHON_DOCS / "faq").glob("*.html")):
        for section in parse_document(page.read_bytes(), page.name, limits).sections:
            if section.heading and section.heading.endswith("?") and len(section.text.split()) >= 5:
                pairs.append((page.stem, section.heading, section.text))
    return pairs


def distractor_pages(limit: int | None) -> list[Path]:
    pages = [
        page
        for page in sorted(PYTHON_DOCS.rglob("*.html"))
        if page.relative_to(PYTHON_DOCS).parts[0] != "faq" and not page.stem.startswith(SKIPPED_PAGES)
    ]
    return pages[:limit] if limit else pages


def add(db_session_factory, settings, user, knowledge_base_id: int, name: str, data: bytes) -> int | None:
    """A document through the service, as an upload would make it; None for repeated content."""
    from app.core.errors import Conflict
    from app.core.uploads import StagedFile
    from app.knowledge import service

    staging = settings.resolved_data_dir / "knowledge" / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / hashlib.sha256(name.encode()).hexdigest()
    path.write_bytes(data)
    staged = StagedFile(name, path, len(data), hashlib.sha256(data).hexdigest())
    try:
        with db_session_factory() as db_session:
            return service.add_document(
                db_session=db_session, settings=settings, actor=user, knowledge_base_id=knowledge_base_id, staged=staged
            ).id
    except Conflict:
        staged.discard()
        return None


def rank_of(relevant: int, document_ids: list[int]) -> int | None:
    unique = list(dict.fromkeys(document_ids))
    return unique.index(relevant) + 1 if relevant in unique else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distractors", type=int, default=None, help="index only the first N distractor pages")
    parser.add_argument("--top-k", type=int, default=50, help="passages fetched per query (collapsed to documents)")
    args = parser.parse_args()
    if not (PYTHON_DOCS / "faq").is_dir():
        raise SystemExit(f"{PYTHON_DOCS}/faq is missing: run `make sample-data` (installs Debian python3.11-doc)")

    with scratch_knowledge_base("Python docs") as (settings, user, knowledge_base):
        run(args, settings, user, knowledge_base)


@contextmanager
def scratch_knowledge_base(name: str, **env: str):
    """An empty knowledge base, and its admin, in a scratch data directory with its own
    SQLite database and Chroma server, all removed afterwards. Yields (settings, user, knowledge base)."""
    scratch = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    chroma, chroma_url = start_chroma(scratch / "chroma")
    os.environ.update(
        STRATA_DATA_DIR=str(scratch / "data"),
        STRATA_CHROMA_URL=chroma_url,
        STRATA_MODELS_DIR=os.environ.get("STRATA_MODELS_DIR", str(REPO / ".cache" / "models")),
        STRATA_LOG_LEVEL="WARNING",
        **env,
    )
    for variable in ("STRATA_DATABASE_URL", "STRATA_LLM_BASE_URL"):
        os.environ.pop(variable, None)
    try:
        from app.auth import service as auth_service
        from app.core import migrations
        from app.core.db import session_scope
        from app.core.logging import configure_logging
        from app.core.settings import get_settings
        from app.knowledge import service

        settings = get_settings()
        configure_logging("WARNING")
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        migrations.upgrade(settings.effective_database_url)
        with session_scope() as db_session:
            user = auth_service.create_user(
                db_session=db_session,
                actor=auth_service.SYSTEM,
                email="bench@strata.local",
                name="",
                role="admin",
                password="benchmark-password",
            )
            knowledge_base = service.create_knowledge_base(db_session=db_session, actor=user, name=name)
        yield settings, user, knowledge_base
    finally:
        chroma.terminate()
        chroma.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def run(args, settings, user, knowledge_base) -> None:
    from app.core.db import session_scope
    from app.knowledge import service

    pairs = faq_pairs()
    pages = distractor_pages(args.distractors)
    started = time.perf_counter()
    answers = {}
    for number, (page, question, answer) in enumerate(pairs):
        answers[question] = add(
            session_scope, settings, user, knowledge_base.id, f"faq-{page}-{number}.txt", answer.encode()
        )
    answers = {question: document_id for question, document_id in answers.items() if document_id is not None}
    distractors = [
        add(session_scope, settings, user, knowledge_base.id, str(page.relative_to(PYTHON_DOCS)), page.read_bytes())
        for page in pages
    ]
    document_ids = [*answers.values(), *(document_id for document_id in distractors if document_id is not None)]
    for done, document_id in enumerate(document_ids, start=1):
        try:
            service.ingest_document(document_id, on_progress=lambda *_: None)
        except Exception as exc:  # noqa: BLE001 - a page without text is skipped, as it would fail in Strata
            print(f"  skipped document {document_id}: {exc}", file=sys.stderr)
        if done % 100 == 0:
            print(
                f"  ingested {done}/{len(document_ids)} documents ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    ingest_seconds = time.perf_counter() - started
    with session_scope() as db_session:
        passages = sum(
            document.chunk_count
            for document in service.list_documents(
                db_session=db_session, actor=user, knowledge_base_id=knowledge_base.id
            )
        )

    ranks: dict[str, list[int | None]] = {label: [] for label, _, _ in RUNS}
    seconds: dict[str, float] = {label: 0.0 for label, _, _ in RUNS}
    with session_scope() as db_session:
        service.search(db_session=db_session, actor=user, knowledge_base_ids=[knowledge_base.id], query="warm up")
        for question, relevant in answers.items():
            for label, mode, weight in RUNS:
                if weight is not None:
                    settings.retrieval_lexical_weight = weight
                began = time.perf_counter()
                found = service.search(
                    db_session=db_session,
                    actor=user,
                    knowledge_base_ids=[knowledge_base.id],
                    query=question,
                    top_k=args.top_k,
                    mode=mode,
                )
                seconds[label] += time.perf_counter() - began
                ranks[label].append(rank_of(relevant, [passage.document_id for passage in found]))

    print(f"Python 3.11 FAQ retrieval (Debian python3.11-doc): {len(answers)} questions;")
    print(
        f"index: {len(answers)} answers + {len(pages)} distractor pages = {passages} passages "
        f"(chunks of {settings.chunk_tokens} word pieces, overlap {settings.chunk_overlap_tokens}), "
        f"ingested in {ingest_seconds:.0f} s"
    )
    print(f"{'all questions':<14}{'recall@10':>11}{'MRR':>8}{'nDCG@10':>10}{'ms/query':>10}")
    for label, _, _ in RUNS:
        recall, mrr, ndcg = scores(ranks[label])
        print(f"{label:<14}{recall:>11.3f}{mrr:>8.3f}{ndcg:>10.3f}{1000 * seconds[label] / len(ranks[label]):>10.1f}")
    hybrids = [label for label, mode, _ in RUNS if mode == "hybrid"]
    tuned = max(hybrids, key=lambda label: scores(ranks[label][0::2])[2])
    print(f"held out (odd questions; {tuned} chose on the even ones by nDCG@10):")
    for label in ("dense", "BM25", tuned):
        recall, mrr, ndcg = scores(ranks[label][1::2])
        print(f"{label:<14}{recall:>11.3f}{mrr:>8.3f}{ndcg:>10.3f}")
    print(f"(MRR over the top {args.top_k} passages, collapsed to documents; one relevant document per question)")


def scores(found: list[int | None]) -> tuple[float, float, float]:
    """recall@10, MRR and nDCG@10 of the relevant document's ranks (None: not found)."""
    recall = sum(1 for rank in found if rank and rank <= 10) / len(found)
    mrr = sum(1 / rank for rank in found if rank) / len(found)
    ndcg = sum(1 / math.log2(rank + 1) for rank in found if rank and rank <= 10) / len(found)
    return recall, mrr, ndcg


if __name__ == "__main__":
    main()
