from sqlmodel import Session, col, select

from app.core.db import run_in_session
from app.core.roles import Role
from app.knowledge import service
from app.knowledge.parsing import UnreadableDocument
from app.knowledge.tables import Document, KnowledgeBase
from jobs.blocking import run_blocking
from jobs.registry import JobContext, JobFailure, job_kind


def _document_id(params: dict) -> int | None:
    value = params.get("document_id")
    return int(value) if isinstance(value, int) or (isinstance(value, str) and value.isdigit()) else None


def _may_access(db_session: Session, actor, params_list: list[dict]) -> list[bool]:
    """An ingestion job is for those who may read its document's knowledge base."""
    wanted = [_document_id(params) for params in params_list]
    ids = [document_id for document_id in wanted if document_id is not None]
    readable = {
        document_id
        for document_id, knowledge_base in db_session.exec(
            select(Document.id, KnowledgeBase)
            .join(KnowledgeBase, KnowledgeBase.id == Document.knowledge_base_id)
            .where(col(Document.id).in_(ids))
        )
        if service.may_read(actor, knowledge_base)
    }
    return [document_id in readable for document_id in wanted]


@job_kind(
    service.INGEST_DOCUMENT,
    title="Ingest a document",
    minimum_role=Role.staff,
    manual=False,
    may_access=_may_access,
)
async def ingest_document(context: JobContext) -> dict:
    """One uploaded document into its knowledge base: parse, chunk, embed, index, mark ready."""
    if "document_id" not in context.params:
        raise JobFailure("Ingestion starts by uploading a document on the Knowledge page.")
    document_id = int(context.params["document_id"])
    try:
        await run_in_session(service.start_ingestion, document_id=document_id, job_id=context.job_id)
        document = await run_blocking(context, service.ingest_document, document_id)
    except service.DocumentGone:
        raise JobFailure("The document was deleted before its ingestion finished.") from None
    except UnreadableDocument as exc:
        await run_in_session(service.fail_ingestion, document_id=document_id, message=exc.message)
        raise JobFailure(exc.message) from None
    return {
        "document_id": document.id,
        "filename": document.filename,
        "pages": document.page_count,
        "chunks": document.chunk_count,
    }
