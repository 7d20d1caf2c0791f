from app.auth.tables import Role
from app.core.db import run_in_session
from app.knowledge import service
from app.knowledge.parsing import UnreadableDocument
from jobs.blocking import run_blocking
from jobs.registry import JobContext, JobFailure, job_kind


@job_kind(service.INGEST_DOCUMENT, title="Ingest a document", minimum_role=Role.staff)
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
