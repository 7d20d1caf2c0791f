from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status
from fastapi.responses import FileResponse

from app.auth.deps import CurrentUser, IdentifiedCaller, SessionDep, SettingsDep, StaffUser, role_at_least
from app.core.roles import Role
from app.knowledge import service
from app.knowledge.schemas import (
    DocumentOut,
    KnowledgeBaseIn,
    KnowledgeBaseOut,
    KnowledgeBaseUpdate,
    Passage,
    SearchIn,
)

router = APIRouter(prefix="/api/v1", tags=["knowledge"])

# Originals are served so that nothing in them runs on Strata's origin: a PDF opens in the
# browser's viewer (citations link to #page=N); HTML, Markdown and text show as plain text;
# anything else (DOCX, a file not yet or never read) downloads.
INLINE_MEDIA_TYPES = {
    "pdf": "application/pdf",
    "html": "text/plain; charset=utf-8",
    "markdown": "text/plain; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}
DOWNLOAD_MEDIA_TYPES = {"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
ORIGINAL_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # A sandboxed document has an opaque origin and runs no script, and default-src 'none'
    # lets it load nothing. Chromium's PDF viewer still renders a PDF under it, #page=N
    # included (checked with Debian's Chromium 156 through Playwright).
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@router.get("/knowledge")
def list_knowledge_bases(user: CurrentUser, db_session: SessionDep) -> list[KnowledgeBaseOut]:
    return [KnowledgeBaseOut.of(kb) for kb in service.readable_knowledge_bases(db_session=db_session, actor=user)]


@router.post("/knowledge", status_code=status.HTTP_201_CREATED)
def create_knowledge_base(body: KnowledgeBaseIn, user: StaffUser, db_session: SessionDep) -> KnowledgeBaseOut:
    return KnowledgeBaseOut.of(
        service.create_knowledge_base(
            db_session=db_session,
            actor=user,
            name=body.name,
            description=body.description,
            reader_roles=body.reader_roles,
        )
    )


@router.get("/knowledge/documents/{document_id:int}")
def get_document(document_id: int, user: CurrentUser, db_session: SessionDep) -> DocumentOut:
    return DocumentOut.of(service.get_document(db_session=db_session, actor=user, document_id=document_id))


ORIGINAL_MEDIA_TYPES = sorted(
    {media_type.split(";")[0] for media_type in (*INLINE_MEDIA_TYPES.values(), *DOWNLOAD_MEDIA_TYPES.values())}
    | {"application/octet-stream"}
)


@router.get(
    "/knowledge/documents/{document_id:int}/file",
    response_class=FileResponse,
    responses={200: {"description": "The original file", "content": {t: {} for t in ORIGINAL_MEDIA_TYPES}}},
)
def get_document_file(document_id: int, user: CurrentUser, db_session: SessionDep, settings: SettingsDep):
    """The original file: a PDF inline (a link can open it at `#page=N`), HTML, Markdown and
    text as plain text, anything else as a download; never as a page that could run."""
    document, path = service.document_file(
        db_session=db_session, settings=settings, actor=user, document_id=document_id
    )
    inline = document.content_type in INLINE_MEDIA_TYPES
    return FileResponse(
        path,
        media_type=INLINE_MEDIA_TYPES.get(document.content_type)
        or DOWNLOAD_MEDIA_TYPES.get(document.content_type, "application/octet-stream"),
        filename=document.filename,
        content_disposition_type="inline" if inline else "attachment",
        headers=ORIGINAL_HEADERS,
    )


@router.delete("/knowledge/documents/{document_id:int}", status_code=status.HTTP_204_NO_CONTENT)
def delete_document(document_id: int, user: StaffUser, db_session: SessionDep, settings: SettingsDep) -> None:
    service.delete_document(db_session=db_session, settings=settings, actor=user, document_id=document_id)


@router.get("/knowledge/{knowledge_base_id:int}")
def get_knowledge_base(knowledge_base_id: int, user: CurrentUser, db_session: SessionDep) -> KnowledgeBaseOut:
    return KnowledgeBaseOut.of(
        service.get_knowledge_base(db_session=db_session, actor=user, knowledge_base_id=knowledge_base_id)
    )


@router.patch("/knowledge/{knowledge_base_id:int}")
def update_knowledge_base(
    knowledge_base_id: int, body: KnowledgeBaseUpdate, user: StaffUser, db_session: SessionDep
) -> KnowledgeBaseOut:
    return KnowledgeBaseOut.of(
        service.update_knowledge_base(
            db_session=db_session,
            actor=user,
            knowledge_base_id=knowledge_base_id,
            name=body.name,
            description=body.description,
            reader_roles=body.reader_roles,
        )
    )


@router.delete("/knowledge/{knowledge_base_id:int}", status_code=status.HTTP_204_NO_CONTENT)
def delete_knowledge_base(
    knowledge_base_id: int, user: StaffUser, db_session: SessionDep, settings: SettingsDep
) -> None:
    service.delete_knowledge_base(
        db_session=db_session, settings=settings, actor=user, knowledge_base_id=knowledge_base_id
    )


@router.get("/knowledge/{knowledge_base_id:int}/documents")
def list_documents(knowledge_base_id: int, user: CurrentUser, db_session: SessionDep) -> list[DocumentOut]:
    documents = service.list_documents(db_session=db_session, actor=user, knowledge_base_id=knowledge_base_id)
    return [DocumentOut.of(document) for document in documents]


@router.post(
    "/knowledge/{knowledge_base_id:int}/documents",
    status_code=status.HTTP_202_ACCEPTED,
    # Published as the route's minimum role; the service checks it again, before a byte is stored.
    dependencies=[role_at_least(Role.staff)],
)
async def upload_documents(
    knowledge_base_id: int, caller: IdentifiedCaller, settings: SettingsDep, files: Annotated[list[UploadFile], File()]
) -> list[DocumentOut]:
    """Upload one or more files (multipart field `files`); each becomes a document with its ingestion job.
    A file over the size limit (413) or already in the knowledge base (409) refuses the upload; nothing is stored.
    Needs the staff role (the service checks it); counts against the caller's rate limit."""
    documents = await service.upload_documents(
        actor=caller.user,
        settings=settings,
        knowledge_base_id=knowledge_base_id,
        uploads=files,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )
    return [DocumentOut.of(document) for document in documents]


@router.post("/search")
async def search(body: SearchIn, caller: IdentifiedCaller) -> list[Passage]:
    """Ranked passages from ready documents of the given knowledge bases (default: every one you may read)."""
    return await service.search_for_caller(
        actor=caller.user,
        query=body.query,
        knowledge_base_ids=body.knowledge_base_ids,
        top_k=body.top_k,
        mode=body.mode,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )
