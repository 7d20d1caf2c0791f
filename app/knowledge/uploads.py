"""Documents received: uploads staged to disk within the size limit, stored once per
content in their knowledge base (keys knowledge/<kb>/<sha256><suffix>), and queued for ingestion."""

from collections.abc import Sequence
from pathlib import Path

from sqlmodel import Session, select

from app.audit.service import record
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from app.core.roles import Actor
from app.core.settings import Settings
from app.core.storage import get_storage
from app.core.uploads import StagedFile, UploadedFile, incoming_dir, stage
from app.knowledge.access import get_managed_knowledge_base
from app.knowledge.ingestion import INGEST_DOCUMENT, fail_ingestion
from app.knowledge.tables import Document
from jobs import service as jobs_service


def knowledge_base_prefix(knowledge_base_id: int) -> str:
    return f"knowledge/{knowledge_base_id}"


async def stage_upload(upload: UploadedFile, *, settings: Settings) -> StagedFile:
    return await stage(
        upload,
        directory=incoming_dir(settings, "knowledge"),
        max_mb=settings.upload_max_mb,
        what="a file",
    )


def add_document(
    *, db_session: Session, settings: Settings, actor: Actor, knowledge_base_id: int, staged: StagedFile
) -> Document:
    """Turns a staged upload into a queued document, unless the same content is already in the knowledge base."""
    knowledge_base = get_managed_knowledge_base(db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id)
    existing = db_session.exec(
        select(Document).where(Document.knowledge_base_id == knowledge_base.id, Document.sha256 == staged.sha256)
    ).first()
    if existing is not None:
        raise Conflict(
            f"{staged.filename}: the same content is already in this knowledge base as {existing.filename!r}"
            f" ({existing.status}); it was not ingested again."
        )
    key = f"{knowledge_base_prefix(knowledge_base.id)}/{staged.sha256}{Path(staged.filename).suffix[:16]}"
    document = Document(
        knowledge_base_id=knowledge_base.id,
        filename=staged.filename,
        size_bytes=staged.size_bytes,
        sha256=staged.sha256,
        stored_path=key,
        created_by=actor.id,
    )
    db_session.add(document)
    db_session.flush()
    get_storage().save(key, staged.path)
    record(
        db_session=db_session,
        actor=actor,
        action="document.uploaded",
        target=f"{document.filename} in {knowledge_base.name}",
        target_id=document.id,
        new={"size_bytes": document.size_bytes, "sha256": document.sha256},
    )
    return document


async def upload_documents(
    *,
    actor: Actor,
    settings: Settings,
    knowledge_base_id: int,
    uploads: Sequence[UploadedFile],
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> list[Document]:
    """Receives files and queues one ingestion job each. All or nothing: a file over the
    size limit or already in the knowledge base refuses the whole upload, and nothing is stored.
    Takes a request from the rate limit of `caller` (an API key's, at `limit_per_minute`) or
    else of the user, whether the API or the Knowledge page uploads."""
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    # Checked before a byte is written: only those who may add documents here can fill the disk.
    await run_in_session(get_managed_knowledge_base, actor=actor, knowledge_base_id=knowledge_base_id)
    if not uploads:
        raise InvalidInput("Choose at least one file to upload.")
    staged: list[StagedFile] = []
    try:
        for upload in uploads:
            staged.append(await stage_upload(upload, settings=settings))
        hashes = [item.sha256 for item in staged]
        repeated = next((item for item in staged if hashes.count(item.sha256) > 1), None)
        if repeated is not None:
            raise Conflict(f"{repeated.filename}: the same content was chosen twice; it was not uploaded.")
        documents = await run_in_session(
            _add_documents, settings=settings, actor=actor, knowledge_base_id=knowledge_base_id, staged=staged
        )
    finally:
        for item in staged:
            item.discard()
    return [await _ingest_later(actor=actor, settings=settings, document=document) for document in documents]


def _add_documents(
    *, db_session: Session, settings: Settings, actor: Actor, knowledge_base_id: int, staged: list[StagedFile]
) -> list[Document]:
    added = []
    try:
        for item in staged:
            added.append(
                add_document(
                    db_session=db_session,
                    settings=settings,
                    actor=actor,
                    knowledge_base_id=knowledge_base_id,
                    staged=item,
                )
            )
    except BaseException:
        # The transaction rolls back; the files already moved in go too.
        for document in added:
            get_storage().delete(document.stored_path)
        raise
    return added


async def _ingest_later(*, actor: Actor, settings: Settings, document: Document) -> Document:
    """Queues the document's ingestion job; if the queue is down the document fails with the reason."""
    try:
        job = await jobs_service.enqueue(
            actor=actor,
            kind=INGEST_DOCUMENT,
            params={"document_id": document.id},
            max_attempts=settings.job_max_tries,
        )
    except ServiceUnavailable as exc:
        await run_in_session(fail_ingestion, document_id=document.id, message=exc.message)
        raise
    return await run_in_session(_attach_job, document_id=document.id, job_id=job.id)


def _attach_job(*, db_session: Session, document_id: int, job_id: str) -> Document:
    document = db_session.get(Document, document_id)
    if document is None:
        raise NotFound(f"Document {document_id} does not exist or you may not read it.")
    document.job_id = job_id
    db_session.add(document)
    return document
