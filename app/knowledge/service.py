"""Knowledge bases and their documents: the domain's public entry, shared by the Knowledge
page, the API, the ingestion job, the Ask domain and the retrieval benchmark. Other
domains import from here only; the work is split by job into sibling modules:
access (who may read), uploads (files in), ingestion (parse, chunk, embed), retrieval
(dense and lexical search, fused) and vectors (the Chroma collections)."""

import uuid
from collections.abc import Sequence
from pathlib import Path

import structlog
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from app.audit.service import record
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.roles import Actor, Role, require_role
from app.core.settings import Settings
from app.core.storage import StorageKeyMissing, get_storage
from app.knowledge import vectors
from app.knowledge.access import (
    READER_ROLE_CHOICES,
    get_knowledge_base,
    get_managed_knowledge_base,
    may_read,
    readable_knowledge_bases,
)
from app.knowledge.ingestion import INGEST_DOCUMENT, DocumentGone, fail_ingestion, ingest_document, start_ingestion
from app.knowledge.retrieval import LEXICAL_INDEXES, RetrievalMode, search, search_for_caller
from app.knowledge.tables import Chunk, Document, DocumentStatus, KnowledgeBase
from app.knowledge.uploads import add_document, knowledge_base_prefix, upload_documents
from jobs.tables import Job, JobStatus

__all__ = [
    "INGEST_DOCUMENT",
    "READER_ROLE_CHOICES",
    "DocumentGone",
    "RetrievalMode",
    "add_document",
    "create_knowledge_base",
    "delete_document",
    "delete_knowledge_base",
    "document_file",
    "documents_with_progress",
    "fail_ingestion",
    "get_document",
    "get_knowledge_base",
    "ingest_document",
    "list_documents",
    "may_read",
    "readable_knowledge_bases",
    "search",
    "search_for_caller",
    "start_ingestion",
    "unready_documents",
    "update_knowledge_base",
    "upload_documents",
]

log = structlog.get_logger("strata.knowledge")


# ------------------------------------------------------------ knowledge bases


def _reader_roles(roles: Sequence[str], actor: Actor) -> list[str]:
    unknown = set(roles) - set(READER_ROLE_CHOICES)
    if unknown:
        raise InvalidInput(f"Reader roles must be among {', '.join(READER_ROLE_CHOICES)} (admins always read).")
    chosen = set(roles)
    # Whoever manages it must keep reading it; a staff member never locks themselves out.
    if actor.role == Role.staff.value:
        chosen.add(Role.staff.value)
    return [role for role in READER_ROLE_CHOICES if role in chosen]


def _clean_name(name: str, db_session: Session, exclude_id: int | None = None) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("A knowledge base needs a name.")
    if len(name) > 200:
        raise InvalidInput("The name is too long (200 characters at most).")
    # Lowered by the database on both sides: SQLite's lower() leaves non-ASCII letters alone,
    # so a name lowered in Python would miss an identical one (and the unique index would answer).
    taken = db_session.exec(select(KnowledgeBase).where(func.lower(KnowledgeBase.name) == func.lower(name))).first()
    if taken is not None and taken.id != exclude_id:
        # Names are unique, so this tells that the name is in use, but not how it is spelt nor what it holds.
        raise Conflict("A knowledge base with this name already exists; choose another name.")
    return name


def create_knowledge_base(
    *, db_session: Session, actor: Actor, name: str, description: str = "", reader_roles: Sequence[str] = ()
) -> KnowledgeBase:
    require_role(actor, Role.staff)
    knowledge_base = KnowledgeBase(
        name=_clean_name(name, db_session),
        description=description.strip()[:2000],
        reader_roles=_reader_roles(reader_roles, actor),
        collection=f"strata-kb-{uuid.uuid4().hex}",
        created_by=actor.id,
    )
    vectors.collection(knowledge_base)  # created now, so a Chroma outage shows here rather than at the first upload
    db_session.add(knowledge_base)
    db_session.flush()
    log.info("knowledge_base.created", knowledge_base_id=knowledge_base.id, name=knowledge_base.name)
    record(
        db_session=db_session,
        actor=actor,
        action="knowledge_base.created",
        target=knowledge_base.name,
        target_id=knowledge_base.id,
        new={"name": knowledge_base.name, "reader_roles": knowledge_base.reader_roles},
    )
    return knowledge_base


def update_knowledge_base(
    *,
    db_session: Session,
    actor: Actor,
    knowledge_base_id: int,
    name: str | None = None,
    description: str | None = None,
    reader_roles: Sequence[str] | None = None,
) -> KnowledgeBase:
    knowledge_base = get_managed_knowledge_base(db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id)
    before = {"name": knowledge_base.name, "description": knowledge_base.description}
    old_readers = list(knowledge_base.reader_roles)
    if name is not None:
        knowledge_base.name = _clean_name(name, db_session, exclude_id=knowledge_base.id)
    if description is not None:
        knowledge_base.description = description.strip()[:2000]
    if reader_roles is not None:
        knowledge_base.reader_roles = _reader_roles(reader_roles, actor)
    db_session.add(knowledge_base)
    after = {"name": knowledge_base.name, "description": knowledge_base.description}
    changed = [field for field in before if before[field] != after[field]]
    if changed:
        record(
            db_session=db_session,
            actor=actor,
            action="knowledge_base.updated",
            target=knowledge_base.name,
            target_id=knowledge_base.id,
            old={field: before[field] for field in changed},
            new={field: after[field] for field in changed},
        )
    if sorted(old_readers) != sorted(knowledge_base.reader_roles):
        # Who may read it: a grant or a revocation of access.
        record(
            db_session=db_session,
            actor=actor,
            action="knowledge_base.access_set",
            target=knowledge_base.name,
            target_id=knowledge_base.id,
            old={"reader_roles": old_readers},
            new={"reader_roles": list(knowledge_base.reader_roles)},
        )
    return knowledge_base


def delete_knowledge_base(*, db_session: Session, settings: Settings, actor: Actor, knowledge_base_id: int) -> None:
    """Removes its documents, chunks, files and Chroma collection; ingestions still running stop."""
    knowledge_base = get_managed_knowledge_base(db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id)
    documents = list(db_session.exec(select(Document).where(Document.knowledge_base_id == knowledge_base.id)))
    _cancel_ingestions(db_session, documents)
    db_session.exec(delete(Chunk).where(col(Chunk.knowledge_base_id) == knowledge_base.id))
    db_session.exec(delete(Document).where(col(Document.knowledge_base_id) == knowledge_base.id))
    db_session.delete(knowledge_base)
    db_session.flush()
    vectors.delete_collection(knowledge_base)
    get_storage().delete_prefix(knowledge_base_prefix(knowledge_base.id))
    LEXICAL_INDEXES.forget(knowledge_base.id)
    log.info("knowledge_base.deleted", knowledge_base_id=knowledge_base.id, name=knowledge_base.name)
    record(
        db_session=db_session,
        actor=actor,
        action="knowledge_base.deleted",
        target=knowledge_base.name,
        target_id=knowledge_base.id,
        old={"name": knowledge_base.name, "reader_roles": knowledge_base.reader_roles, "documents": len(documents)},
    )


# ------------------------------------------------------------------ documents


def list_documents(*, db_session: Session, actor: Actor, knowledge_base_id: int) -> list[Document]:
    get_knowledge_base(db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id)
    documents = list(
        db_session.exec(
            select(Document)
            .where(Document.knowledge_base_id == knowledge_base_id)
            .order_by(col(Document.created_at).desc(), col(Document.id).desc())
        )
    )
    _settle_abandoned(db_session, documents)
    return documents


def documents_with_progress(
    *, db_session: Session, actor: Actor, knowledge_base_id: int
) -> list[tuple[Document, float, str]]:
    """The documents with how far their ingestion got and what it is doing."""
    documents = list_documents(db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id)
    running = [
        d.job_id for d in documents if d.job_id and d.status in (DocumentStatus.queued, DocumentStatus.ingesting)
    ]
    jobs = {job.id: job for job in db_session.exec(select(Job).where(col(Job.id).in_(running)))} if running else {}
    rows = []
    for document in documents:
        job = jobs.get(document.job_id) if document.job_id else None
        rows.append((document, job.progress, job.message) if job else (document, 0.0, "Waiting for a worker"))
    return rows


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


def get_document(*, db_session: Session, actor: Actor, document_id: int) -> Document:
    """A document in a knowledge base the actor may read; any other answers as if it did not exist."""
    document = db_session.get(Document, document_id)
    knowledge_base = db_session.get(KnowledgeBase, document.knowledge_base_id) if document else None
    if knowledge_base is None or not may_read(actor, knowledge_base):
        raise NotFound(f"Document {document_id} does not exist or you may not read it.")
    _settle_abandoned(db_session, [document])
    return document


def document_file(*, db_session: Session, settings: Settings, actor: Actor, document_id: int) -> tuple[Document, Path]:
    """The original file of a document the actor may read."""
    document = get_document(db_session=db_session, actor=actor, document_id=document_id)
    try:
        return document, get_storage().local_path(document.stored_path)
    except StorageKeyMissing:
        raise NotFound(f"The file of {document.filename!r} is missing from the file store.") from None


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


def delete_document(*, db_session: Session, settings: Settings, actor: Actor, document_id: int) -> None:
    document = get_document(db_session=db_session, actor=actor, document_id=document_id)
    knowledge_base = get_managed_knowledge_base(
        db_session=db_session, actor=actor, knowledge_base_id=document.knowledge_base_id
    )
    _cancel_ingestions(db_session, [document])
    db_session.exec(delete(Chunk).where(col(Chunk.document_id) == document.id))
    db_session.delete(document)
    db_session.flush()
    vectors.delete_document_vectors(vectors.collection(knowledge_base), document.id)
    get_storage().delete(document.stored_path)
    LEXICAL_INDEXES.forget(knowledge_base.id)
    log.info("document.deleted", document_id=document.id, knowledge_base_id=knowledge_base.id)
    record(
        db_session=db_session,
        actor=actor,
        action="document.deleted",
        target=f"{document.filename} in {knowledge_base.name}",
        target_id=document.id,
    )


def _cancel_ingestions(db_session: Session, documents: list[Document]) -> None:
    for document in documents:
        job = db_session.get(Job, document.job_id) if document.job_id else None
        if job is not None and not JobStatus(job.status).finished:
            job.cancel_requested = True
            db_session.add(job)
