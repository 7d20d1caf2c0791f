"""Documents in: one queued document parsed (in a limited child process), cut into
passages, embedded and indexed, run by the ingest_document job."""

from collections.abc import Callable

from sqlalchemy import delete
from sqlmodel import Session, col

from app.core.db import session_scope
from app.core.errors import InvalidInput
from app.core.settings import get_settings
from app.core.storage import get_storage
from app.core.time import utcnow
from app.knowledge import vectors
from app.knowledge.chunking import chunk_sections
from app.knowledge.parse_process import parse_isolated
from app.knowledge.retrieval import LEXICAL_INDEXES
from app.knowledge.tables import Chunk, Document, DocumentStatus, KnowledgeBase

INGEST_DOCUMENT = "ingest_document"
MAX_CHUNK_TOKENS = 254  # the embedder reads 256 word pieces, [CLS] and [SEP] included


class DocumentGone(Exception):
    """The document was deleted while it was being ingested."""


def start_ingestion(*, db_session: Session, document_id: int, job_id: str | None) -> Document:
    document = db_session.get(Document, document_id)
    if document is None:
        raise DocumentGone(f"document {document_id}")
    document.status, document.error = DocumentStatus.ingesting.value, None
    document.job_id = job_id or document.job_id
    db_session.add(document)
    return document


def ingest_document(document_id: int, *, on_progress: Callable[[float, str], None]) -> Document:
    """Parse, clean, chunk, embed and index one document; ends with it ready or raising.

    Idempotent, so a retry after a killed worker is safe: it first removes whatever an
    earlier attempt left in Chroma and the database, writes all vectors, and only then,
    in one transaction, writes the chunks and marks the document ready. Search reads
    chunks from the database, so a half-indexed document is never found, nor shown ready.
    Parse problems (limits included) raise UnreadableDocument with a message for the user."""
    from app.core.ml import embed, get_embedder

    settings = get_settings()
    if not 0 < settings.chunk_tokens <= MAX_CHUNK_TOKENS:
        raise InvalidInput(f"STRATA_CHUNK_TOKENS must be between 1 and {MAX_CHUNK_TOKENS}.")
    with session_scope() as db_session:
        document = db_session.get(Document, document_id)
        if document is None:
            raise DocumentGone(f"document {document_id}")
        knowledge_base = db_session.get(KnowledgeBase, document.knowledge_base_id)
        db_session.exec(delete(Chunk).where(col(Chunk.document_id) == document_id))
    collection = vectors.collection(knowledge_base)
    vectors.delete_document_vectors(collection, document_id)

    on_progress(0.02, "Reading the file")
    parsed = parse_isolated(
        get_storage().local_path(document.stored_path), document.filename, settings=settings, on_progress=on_progress
    )
    on_progress(0.05, f"Read {len(parsed.sections)} sections; cutting passages")
    embedder = get_embedder()
    passages = chunk_sections(
        parsed.sections,
        count_tokens=lambda texts: [n - 2 for n in embedder.token_counts(texts)],
        max_tokens=settings.chunk_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
    )
    chunks = [
        Chunk(
            id=f"d{document_id}-{ordinal}",
            document_id=document_id,
            knowledge_base_id=knowledge_base.id,
            ordinal=ordinal,
            page=passage.page,
            heading=passage.heading[:500] if passage.heading else None,
            text=passage.text,
        )
        for ordinal, passage in enumerate(passages)
    ]
    batch = settings.embed_batch_size
    for start in range(0, len(chunks), batch):
        on_progress(
            0.1 + 0.85 * start / len(chunks),
            f"Embedding passages {start + 1}–{min(start + batch, len(chunks))} of {len(chunks)}",
        )
        part = chunks[start : start + batch]
        vectors.add_chunks(collection, part, embed([_indexed_text(chunk) for chunk in part]))
    on_progress(0.97, "Marking the document ready")
    with session_scope() as db_session:
        document = db_session.get(Document, document_id)
        if document is None:
            vectors.forget_document_vectors(collection, document_id)
            raise DocumentGone(f"document {document_id}")
        db_session.add_all(chunks)
        document.status = DocumentStatus.ready.value
        document.content_type = parsed.content_type
        document.page_count = parsed.page_count
        document.chunk_count = len(chunks)
        document.error = None
        document.ready_at = utcnow()
        db_session.add(document)
    LEXICAL_INDEXES.forget(knowledge_base.id)
    on_progress(1.0, f"Ready: {len(chunks)} passages")
    return document


def _indexed_text(chunk: Chunk) -> str:
    """What the dense ranking sees: the passage under its heading, which often names its topic
    (the lexical index reads the same, see retrieval._LexicalIndexes)."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


def fail_ingestion(*, db_session: Session, document_id: int, message: str) -> None:
    document = db_session.get(Document, document_id)
    if document is not None:
        document.status, document.error = DocumentStatus.failed.value, message
        db_session.add(document)
