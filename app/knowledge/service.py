"""Knowledge bases: who may read them, documents in (upload, ingestion), passages out
(dense, lexical and hybrid retrieval). Shared by the Knowledge page, the API, the
ingestion job, the Ask domain and the retrieval benchmark."""

import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import structlog
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.auth.tables import User
from app.core.clients import get_chroma
from app.core.db import run_in_session, session_scope
from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable, StrataError
from app.core.roles import Role, require_role
from app.core.settings import Settings, get_settings
from app.core.time import utcnow
from app.knowledge.chunking import chunk_sections
from app.knowledge.lexical import LexicalIndex
from app.knowledge.parsing import parse_document
from app.knowledge.schemas import Passage
from app.knowledge.tables import Chunk, Document, DocumentStatus, KnowledgeBase
from jobs import service as jobs_service
from jobs.tables import Job, JobStatus

log = structlog.get_logger("strata.knowledge")

INGEST_DOCUMENT = "ingest_document"
READER_ROLE_CHOICES = (Role.viewer.value, Role.staff.value)
RetrievalMode = Literal["hybrid", "dense", "lexical"]
# Reciprocal rank fusion's constant (Cormack et al. 2009): damps the weight of the very first ranks.
RRF_K = 60
# Each ranking contributes this many candidates per requested passage to the fusion.
CANDIDATES_PER_RESULT = 4
MIN_CANDIDATES = 50
UPLOAD_READ_BYTES = 1 << 20
MAX_CHUNK_TOKENS = 254  # the embedder reads 256 word pieces, [CLS] and [SEP] included


class TooLarge(StrataError):
    status_code = 413


# ---------------------------------------------------------------- permissions


def may_read(user: User, knowledge_base: KnowledgeBase) -> bool:
    return user.role == Role.admin.value or user.role in knowledge_base.reader_roles


def _require_reader(user: User, knowledge_base: KnowledgeBase) -> None:
    if not may_read(user, knowledge_base):
        raise Forbidden(f"You may not read the knowledge base {knowledge_base.name!r}.")


def _require_manager(user: User, knowledge_base: KnowledgeBase) -> None:
    require_role(user, Role.staff)
    _require_reader(user, knowledge_base)


# ------------------------------------------------------------ knowledge bases


def readable_knowledge_bases(*, db_session: Session, user: User) -> list[KnowledgeBase]:
    everything = db_session.exec(select(KnowledgeBase).order_by(KnowledgeBase.name))
    return [knowledge_base for knowledge_base in everything if may_read(user, knowledge_base)]


def get_knowledge_base(*, db_session: Session, user: User, knowledge_base_id: int) -> KnowledgeBase:
    knowledge_base = db_session.get(KnowledgeBase, knowledge_base_id)
    if knowledge_base is None:
        raise NotFound(f"No knowledge base with id {knowledge_base_id}.")
    _require_reader(user, knowledge_base)
    return knowledge_base


def _reader_roles(roles: Sequence[str], user: User) -> list[str]:
    unknown = set(roles) - set(READER_ROLE_CHOICES)
    if unknown:
        raise InvalidInput(f"Reader roles must be among {', '.join(READER_ROLE_CHOICES)} (admins always read).")
    chosen = set(roles)
    # Whoever manages it must keep reading it; a staff member never locks themselves out.
    if user.role == Role.staff.value:
        chosen.add(Role.staff.value)
    return [role for role in READER_ROLE_CHOICES if role in chosen]


def _clean_name(name: str, db_session: Session, exclude_id: int | None = None) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("A knowledge base needs a name.")
    if len(name) > 200:
        raise InvalidInput("The name is too long (200 characters at most).")
    taken = db_session.exec(select(KnowledgeBase).where(func.lower(KnowledgeBase.name) == name.lower())).first()
    if taken is not None and taken.id != exclude_id:
        raise Conflict(f"A knowledge base named {taken.name!r} already exists.")
    return name


def create_knowledge_base(
    *, db_session: Session, user: User, name: str, description: str = "", reader_roles: Sequence[str] = ()
) -> KnowledgeBase:
    require_role(user, Role.staff)
    knowledge_base = KnowledgeBase(
        name=_clean_name(name, db_session),
        description=description.strip()[:2000],
        reader_roles=_reader_roles(reader_roles, user),
        collection=f"strata-kb-{uuid.uuid4().hex}",
        created_by=user.id,
    )
    _collection(knowledge_base)  # created now, so a Chroma outage shows here rather than at the first upload
    db_session.add(knowledge_base)
    db_session.flush()
    log.info("knowledge_base.created", knowledge_base_id=knowledge_base.id, name=knowledge_base.name)
    return knowledge_base


def update_knowledge_base(
    *,
    db_session: Session,
    user: User,
    knowledge_base_id: int,
    name: str | None = None,
    description: str | None = None,
    reader_roles: Sequence[str] | None = None,
) -> KnowledgeBase:
    knowledge_base = get_knowledge_base(db_session=db_session, user=user, knowledge_base_id=knowledge_base_id)
    _require_manager(user, knowledge_base)
    if name is not None:
        knowledge_base.name = _clean_name(name, db_session, exclude_id=knowledge_base.id)
    if description is not None:
        knowledge_base.description = description.strip()[:2000]
    if reader_roles is not None:
        knowledge_base.reader_roles = _reader_roles(reader_roles, user)
    db_session.add(knowledge_base)
    return knowledge_base


def delete_knowledge_base(*, db_session: Session, settings: Settings, user: User, knowledge_base_id: int) -> None:
    """Removes its documents, chunks, files and Chroma collection; ingestions still running stop."""
    knowledge_base = get_knowledge_base(db_session=db_session, user=user, knowledge_base_id=knowledge_base_id)
    _require_manager(user, knowledge_base)
    documents = list(db_session.exec(select(Document).where(Document.knowledge_base_id == knowledge_base.id)))
    _cancel_ingestions(db_session, documents)
    db_session.exec(delete(Chunk).where(col(Chunk.knowledge_base_id) == knowledge_base.id))
    db_session.exec(delete(Document).where(col(Document.knowledge_base_id) == knowledge_base.id))
    db_session.delete(knowledge_base)
    db_session.flush()
    try:
        get_chroma().delete_collection(knowledge_base.collection)
    except Exception as exc:
        if "does not exist" not in str(exc):
            raise ServiceUnavailable(f"Could not delete the vectors in Chroma ({exc}); try again.") from exc
    shutil.rmtree(_knowledge_base_dir(settings, knowledge_base.id), ignore_errors=True)
    LEXICAL_INDEXES.forget(knowledge_base.id)
    log.info("knowledge_base.deleted", knowledge_base_id=knowledge_base.id, name=knowledge_base.name)


def _collection(knowledge_base: KnowledgeBase):
    try:
        # Vectors come from Strata's embedder; Chroma's default embedding function would download a model.
        return get_chroma().get_or_create_collection(
            knowledge_base.collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
    except Exception as exc:
        raise ServiceUnavailable(f"The vector store (Chroma) is unreachable: {exc}") from exc


# ------------------------------------------------------------------ documents


def list_documents(*, db_session: Session, user: User, knowledge_base_id: int) -> list[Document]:
    get_knowledge_base(db_session=db_session, user=user, knowledge_base_id=knowledge_base_id)
    documents = list(
        db_session.exec(
            select(Document)
            .where(Document.knowledge_base_id == knowledge_base_id)
            .order_by(col(Document.created_at).desc(), col(Document.id).desc())
        )
    )
    _settle_abandoned(db_session, documents)
    return documents


def _settle_abandoned(db_session: Session, documents: list[Document]) -> None:
    """A document whose ingestion job ended without finishing it (its worker died on every
    attempt, someone cancelled it) is failed with the job's reason, never left 'ingesting'."""
    pending = [d for d in documents if d.status in (DocumentStatus.queued, DocumentStatus.ingesting) and d.job_id]
    if not pending:
        return
    jobs = {job.id: job for job in db_session.exec(select(Job).where(col(Job.id).in_([d.job_id for d in pending])))}
    for document in pending:
        job = jobs.get(document.job_id)
        if job is None or job.status in (JobStatus.failed.value, JobStatus.cancelled.value):
            reason = job.error if job and job.error else f"Ingestion {job.status if job else 'job vanished'}."
            document.status, document.error = DocumentStatus.failed.value, reason
            db_session.add(document)


def get_document(*, db_session: Session, user: User, document_id: int) -> Document:
    document = db_session.get(Document, document_id)
    if document is None:
        raise NotFound(f"No document with id {document_id}.")
    get_knowledge_base(db_session=db_session, user=user, knowledge_base_id=document.knowledge_base_id)
    _settle_abandoned(db_session, [document])
    return document


def document_file(*, db_session: Session, settings: Settings, user: User, document_id: int) -> tuple[Document, Path]:
    """The original file of a document the user may read."""
    document = get_document(db_session=db_session, user=user, document_id=document_id)
    path = settings.resolved_data_dir / document.stored_path
    if not path.is_file():
        raise NotFound(f"The file of {document.filename!r} is missing from the data directory.")
    return document, path


def unready_documents(*, db_session: Session, knowledge_base_ids: list[int]) -> list[Document]:
    """Documents still queued or being ingested: their passages are not searchable yet."""
    documents = list(
        db_session.exec(
            select(Document).where(
                col(Document.knowledge_base_id).in_(knowledge_base_ids),
                col(Document.status).in_([DocumentStatus.queued.value, DocumentStatus.ingesting.value]),
            )
        )
    )
    _settle_abandoned(db_session, documents)
    return [d for d in documents if d.status != DocumentStatus.failed]


def delete_document(*, db_session: Session, settings: Settings, user: User, document_id: int) -> None:
    document = get_document(db_session=db_session, user=user, document_id=document_id)
    knowledge_base = db_session.get(KnowledgeBase, document.knowledge_base_id)
    _require_manager(user, knowledge_base)
    _cancel_ingestions(db_session, [document])
    db_session.exec(delete(Chunk).where(col(Chunk.document_id) == document.id))
    db_session.delete(document)
    db_session.flush()
    _collection(knowledge_base).delete(where={"document_id": document.id})
    (settings.resolved_data_dir / document.stored_path).unlink(missing_ok=True)
    LEXICAL_INDEXES.forget(knowledge_base.id)
    log.info("document.deleted", document_id=document.id, knowledge_base_id=knowledge_base.id)


def _cancel_ingestions(db_session: Session, documents: list[Document]) -> None:
    for document in documents:
        job = db_session.get(Job, document.job_id) if document.job_id else None
        if job is not None and not JobStatus(job.status).finished:
            job.cancel_requested = True
            db_session.add(job)


# -------------------------------------------------------------------- uploads


class UploadedFile(Protocol):
    """Starlette's UploadFile (API) and Reflex's rx.UploadFile (page) both fit."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


@dataclass
class StagedUpload:
    """An upload received into a temporary file, not yet a document."""

    filename: str
    path: Path
    size_bytes: int
    sha256: str

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _knowledge_base_dir(settings: Settings, knowledge_base_id: int) -> Path:
    return settings.resolved_data_dir / "knowledge" / str(knowledge_base_id)


def _safe_filename(name: str | None) -> str:
    base = Path((name or "").replace("\\", "/")).name.strip()
    return base[:255] or "unnamed"


async def stage_upload(upload: UploadedFile, *, settings: Settings) -> StagedUpload:
    """Copies an upload to a temporary file, counting bytes and hashing as it goes, and
    stops at the size limit: an oversized file raises TooLarge and leaves nothing behind."""
    limit = int(settings.upload_max_mb * 1024 * 1024)
    staging = settings.resolved_data_dir / "knowledge" / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    filename = _safe_filename(upload.filename)
    path = staging / uuid.uuid4().hex
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            while block := await upload.read(UPLOAD_READ_BYTES):
                size += len(block)
                if size > limit:
                    raise TooLarge(
                        f"{filename} is larger than the limit of {settings.upload_max_mb:g} MB a file; nothing was stored."
                    )
                digest.update(block)
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StagedUpload(filename=filename, path=path, size_bytes=size, sha256=digest.hexdigest())


def add_document(
    *, db_session: Session, settings: Settings, user: User, knowledge_base_id: int, staged: StagedUpload
) -> Document:
    """Turns a staged upload into a queued document, unless the same content is already in the knowledge base."""
    knowledge_base = get_knowledge_base(db_session=db_session, user=user, knowledge_base_id=knowledge_base_id)
    _require_manager(user, knowledge_base)
    existing = db_session.exec(
        select(Document).where(Document.knowledge_base_id == knowledge_base.id, Document.sha256 == staged.sha256)
    ).first()
    if existing is not None:
        raise Conflict(
            f"{staged.filename}: the same content is already in this knowledge base as {existing.filename!r}"
            f" ({existing.status}); it was not ingested again."
        )
    target = _knowledge_base_dir(settings, knowledge_base.id) / f"{staged.sha256}{Path(staged.filename).suffix[:16]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    document = Document(
        knowledge_base_id=knowledge_base.id,
        filename=staged.filename,
        size_bytes=staged.size_bytes,
        sha256=staged.sha256,
        stored_path=str(target.relative_to(settings.resolved_data_dir)),
        created_by=user.id,
    )
    db_session.add(document)
    db_session.flush()
    os.replace(staged.path, target)
    return document


async def upload_documents(
    *, user: User, settings: Settings, knowledge_base_id: int, uploads: Sequence[UploadedFile]
) -> list[Document]:
    """Receives files and queues one ingestion job each. All or nothing: a file over the
    size limit or already in the knowledge base refuses the whole upload, and nothing is stored."""
    await run_in_session(get_knowledge_base, user=user, knowledge_base_id=knowledge_base_id)
    if not uploads:
        raise InvalidInput("Choose at least one file to upload.")
    staged: list[StagedUpload] = []
    try:
        for upload in uploads:
            staged.append(await stage_upload(upload, settings=settings))
        hashes = [item.sha256 for item in staged]
        repeated = next((item for item in staged if hashes.count(item.sha256) > 1), None)
        if repeated is not None:
            raise Conflict(f"{repeated.filename}: the same content was chosen twice; it was not uploaded.")
        documents = await run_in_session(
            _add_documents, settings=settings, user=user, knowledge_base_id=knowledge_base_id, staged=staged
        )
    finally:
        for item in staged:
            item.discard()
    return [await ingest_later(user=user, settings=settings, document=document) for document in documents]


def _add_documents(
    *, db_session: Session, settings: Settings, user: User, knowledge_base_id: int, staged: list[StagedUpload]
) -> list[Document]:
    added = []
    try:
        for item in staged:
            added.append(
                add_document(
                    db_session=db_session,
                    settings=settings,
                    user=user,
                    knowledge_base_id=knowledge_base_id,
                    staged=item,
                )
            )
    except BaseException:
        # The transaction rolls back; the files already moved in go too.
        for document in added:
            (settings.resolved_data_dir / document.stored_path).unlink(missing_ok=True)
        raise
    return added


async def ingest_later(*, user: User, settings: Settings, document: Document) -> Document:
    """Queues the document's ingestion job; if the queue is down the document fails with the reason."""
    try:
        job = await jobs_service.enqueue(
            actor=user,
            kind=INGEST_DOCUMENT,
            params={"document_id": document.id},
            max_attempts=settings.job_max_tries,
        )
    except ServiceUnavailable as exc:
        await run_in_session(_fail, document_id=document.id, message=exc.message)
        raise
    return await run_in_session(_attach_job, document_id=document.id, job_id=job.id)


def _attach_job(*, db_session: Session, document_id: int, job_id: str) -> Document:
    document = db_session.get(Document, document_id)
    if document is None:
        raise NotFound(f"No document with id {document_id}.")
    document.job_id = job_id
    db_session.add(document)
    return document


def _fail(*, db_session: Session, document_id: int, message: str) -> None:
    document = db_session.get(Document, document_id)
    if document is not None:
        document.status, document.error = DocumentStatus.failed.value, message
        db_session.add(document)


# ------------------------------------------------------------------ ingestion


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
    Parse problems raise UnreadableDocument with a message for the user."""
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
    collection = _collection(knowledge_base)
    collection.delete(where={"document_id": document_id})

    on_progress(0.02, "Reading the file")
    parsed = parse_document((settings.resolved_data_dir / document.stored_path).read_bytes(), document.filename)
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
        vectors = embed([_indexed_text(chunk) for chunk in part])
        collection.upsert(
            ids=[chunk.id for chunk in part],
            embeddings=vectors,
            metadatas=[_chunk_metadata(chunk) for chunk in part],
        )
    on_progress(0.97, "Marking the document ready")
    with session_scope() as db_session:
        document = db_session.get(Document, document_id)
        if document is None:
            _forget_vectors(collection, document_id)
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


def _forget_vectors(collection, document_id: int) -> None:
    """Best effort: the whole collection may have gone with its knowledge base."""
    try:
        collection.delete(where={"document_id": document_id})
    except Exception:  # noqa: BLE001 - vectors of a deleted document are never searched anyway
        log.warning("document.vectors_left", document_id=document_id)


def _indexed_text(chunk: Chunk) -> str:
    """What the rankings see: the passage under its heading, which often names its topic."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


def _chunk_metadata(chunk: Chunk) -> dict:
    metadata = {"document_id": chunk.document_id, "ordinal": chunk.ordinal}
    if chunk.page is not None:
        metadata["page"] = chunk.page
    return metadata


def fail_ingestion(*, db_session: Session, document_id: int, message: str) -> None:
    _fail(db_session=db_session, document_id=document_id, message=message)


# ------------------------------------------------------------------ retrieval


class _LexicalIndexes:
    """One BM25 index per knowledge base per process, rebuilt when its ready documents change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[int, tuple[tuple, LexicalIndex]] = {}

    def get(self, db_session: Session, knowledge_base_id: int) -> LexicalIndex:
        version = tuple(
            db_session.exec(
                select(Document.id, Document.chunk_count, Document.ready_at)
                .where(Document.knowledge_base_id == knowledge_base_id, Document.status == DocumentStatus.ready.value)
                .order_by(Document.id)
            )
        )
        with self._lock:
            cached = self._indexes.get(knowledge_base_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        rows = db_session.exec(
            select(Chunk.id, Chunk.heading, Chunk.text)
            .join(Document, col(Document.id) == col(Chunk.document_id))
            .where(Chunk.knowledge_base_id == knowledge_base_id, Document.status == DocumentStatus.ready.value)
            .order_by(Chunk.id)
        ).all()
        index = LexicalIndex([row[0] for row in rows], [f"{row[1]}\n{row[2]}" if row[1] else row[2] for row in rows])
        with self._lock:
            self._indexes[knowledge_base_id] = (version, index)
        return index

    def forget(self, knowledge_base_id: int) -> None:
        with self._lock:
            self._indexes.pop(knowledge_base_id, None)


LEXICAL_INDEXES = _LexicalIndexes()


def search(
    *,
    db_session: Session,
    user: User,
    knowledge_base_ids: list[int],
    query: str,
    top_k: int | None = None,
    mode: RetrievalMode = "hybrid",
) -> list[Passage]:
    """The passages of ready documents that best answer `query`, best first.

    hybrid fuses the dense (embedding) and lexical (BM25) rankings by reciprocal rank;
    dense and lexical return one ranking alone. Raises NotFound or Forbidden for a
    knowledge base that does not exist or that the user may not read."""
    query = " ".join(query.split())
    if not query:
        raise InvalidInput("Type a question or some words to search for.")
    top_k = top_k or get_settings().retrieval_top_k
    if top_k < 1:
        raise InvalidInput("top_k must be at least 1.")
    knowledge_bases = [
        get_knowledge_base(db_session=db_session, user=user, knowledge_base_id=knowledge_base_id)
        for knowledge_base_id in dict.fromkeys(knowledge_base_ids)
    ]
    if not knowledge_bases:
        return []
    candidates = max(MIN_CANDIDATES, top_k * CANDIDATES_PER_RESULT)
    dense = _dense_ranking(db_session, knowledge_bases, query, candidates) if mode != "lexical" else {}
    lexical = _lexical_ranking(db_session, knowledge_bases, query, candidates) if mode != "dense" else {}
    if mode == "dense":
        scores = {chunk_id: score for chunk_id, (_rank, score) in dense.items()}
    elif mode == "lexical":
        scores = {chunk_id: score for chunk_id, (_rank, score) in lexical.items()}
    else:
        weight = get_settings().retrieval_lexical_weight
        scores = {chunk_id: _fused(chunk_id, dense, lexical, weight) for chunk_id in set(dense) | set(lexical)}
    order = sorted(scores, key=lambda chunk_id: -scores[chunk_id])[:top_k]
    return _passages(db_session, knowledge_bases, order, dense, lexical, scores)


def _fused(
    chunk_id: str, dense: dict[str, tuple[int, float]], lexical: dict[str, tuple[int, float]], lexical_weight: float
) -> float:
    """Weighted reciprocal rank fusion of the two rankings."""
    score = 1.0 / (RRF_K + dense[chunk_id][0]) if chunk_id in dense else 0.0
    if chunk_id in lexical:
        score += lexical_weight / (RRF_K + lexical[chunk_id][0])
    return score


def _ready_document_ids(db_session: Session, knowledge_base_id: int) -> list[int]:
    return list(
        db_session.exec(
            select(Document.id).where(
                Document.knowledge_base_id == knowledge_base_id, Document.status == DocumentStatus.ready.value
            )
        )
    )


def _dense_ranking(
    db_session: Session, knowledge_bases: list[KnowledgeBase], query: str, candidates: int
) -> dict[str, tuple[int, float]]:
    """chunk id -> (1-based rank, cosine similarity), best first, across the knowledge bases."""
    from app.core.ml import embed

    query_vector = embed([query])
    scored: list[tuple[float, str]] = []
    for knowledge_base in knowledge_bases:
        ready = _ready_document_ids(db_session, knowledge_base.id)
        if not ready:
            continue
        collection = _collection(knowledge_base)
        try:
            result = collection.query(
                query_embeddings=query_vector,
                n_results=candidates,
                where={"document_id": {"$in": ready}},
                include=["distances"],
            )
        except Exception as exc:
            raise ServiceUnavailable(f"The vector store (Chroma) failed to search: {exc}") from exc
        scored.extend(
            (1.0 - distance, chunk_id)
            for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
        )
    scored.sort(reverse=True)
    return {chunk_id: (rank, score) for rank, (score, chunk_id) in enumerate(scored[:candidates], start=1)}


def _lexical_ranking(
    db_session: Session, knowledge_bases: list[KnowledgeBase], query: str, candidates: int
) -> dict[str, tuple[int, float]]:
    """chunk id -> (1-based rank, BM25 score), best first, across the knowledge bases."""
    scored: list[tuple[float, str]] = []
    for knowledge_base in knowledge_bases:
        scored.extend(LEXICAL_INDEXES.get(db_session, knowledge_base.id).top(query, candidates))
    scored.sort(reverse=True)
    return {chunk_id: (rank, score) for rank, (score, chunk_id) in enumerate(scored[:candidates], start=1)}


def _passages(
    db_session: Session,
    knowledge_bases: list[KnowledgeBase],
    order: list[str],
    dense: dict[str, tuple[int, float]],
    lexical: dict[str, tuple[int, float]],
    scores: dict[str, float],
) -> list[Passage]:
    if not order:
        return []
    rows = db_session.exec(
        select(Chunk, Document)
        .join(Document, col(Document.id) == col(Chunk.document_id))
        .where(col(Chunk.id).in_(order), Document.status == DocumentStatus.ready.value)
    ).all()
    found = {chunk.id: (chunk, document) for chunk, document in rows}
    names = {knowledge_base.id: knowledge_base.name for knowledge_base in knowledge_bases}
    passages = []
    for chunk_id in order:
        if chunk_id not in found:
            continue  # deleted or re-ingesting since the ranking was read
        chunk, document = found[chunk_id]
        dense_score = dense[chunk_id][1] if chunk_id in dense else None
        lexical_score = lexical[chunk_id][1] if chunk_id in lexical else None
        passages.append(
            Passage(
                chunk_id=chunk.id,
                knowledge_base_id=chunk.knowledge_base_id,
                knowledge_base_name=names[chunk.knowledge_base_id],
                document_id=document.id,
                document_name=document.filename,
                page=chunk.page,
                heading=chunk.heading,
                text=chunk.text,
                score=float(scores[chunk_id]),
                dense_score=dense_score,
                lexical_score=lexical_score,
            )
        )
    return passages
