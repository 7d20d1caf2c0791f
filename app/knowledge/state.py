from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.auth.tables import User
from app.core.db import run_in_session
from app.core.errors import StrataError
from app.core.roles import Role
from app.core.settings import get_settings
from app.knowledge import service
from app.knowledge.tables import Document, DocumentStatus, KnowledgeBase
from app.ui.live import refresh_while_open

REFRESH_SECONDS = 1.0
UPLOAD_ID = "knowledge-upload"


@dataclass
class KnowledgeBaseRow:
    id: int
    name: str
    description: str
    readers: str


@dataclass
class DocumentRow:
    id: int
    filename: str
    status: str
    percent: int
    message: str
    error: str
    pages: str
    passages: int
    size: str
    added: str
    file_url: str


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1024 / 1024:.1f} MB" if size_bytes >= 1024 * 1024 else f"{max(1, size_bytes // 1024)} KB"


def _knowledge_base_row(knowledge_base: KnowledgeBase) -> KnowledgeBaseRow:
    return KnowledgeBaseRow(
        id=knowledge_base.id,
        name=knowledge_base.name,
        description=knowledge_base.description,
        readers=", ".join(["admin", *knowledge_base.reader_roles]),
    )


def _document_row(document: Document, progress: float, message: str) -> DocumentRow:
    ready = document.status == DocumentStatus.ready
    return DocumentRow(
        id=document.id,
        filename=document.filename,
        status=document.status,
        percent=100 if ready else round(progress * 100),
        message="" if ready or document.status == DocumentStatus.failed else message,
        error=document.error or "",
        pages=str(document.page_count) if document.page_count else "—",
        passages=document.chunk_count,
        size=_size(document.size_bytes),
        added=f"{document.created_at:%Y-%m-%d %H:%M}",
        file_url=f"/api/v1/knowledge/documents/{document.id}/file",
    )


def _document_rows(*, db_session, actor: User, knowledge_base_id: int) -> list[DocumentRow]:
    return [
        _document_row(document, progress, message)
        for document, progress, message in service.documents_with_progress(
            db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id
        )
    ]


def _knowledge_base_rows(*, db_session, actor: User) -> list[KnowledgeBaseRow]:
    return [_knowledge_base_row(kb) for kb in service.readable_knowledge_bases(db_session=db_session, actor=actor)]


class KnowledgeState(AuthState):
    knowledge_bases: list[KnowledgeBaseRow] = []
    selected_id: int = 0
    documents: list[DocumentRow] = []
    upload_limit_mb: float = get_settings().upload_max_mb
    upload_limit_bytes: int = int(get_settings().upload_max_mb * 1024 * 1024)
    watching: bool = False

    def _selected(self) -> KnowledgeBaseRow | None:
        return next((kb for kb in self.knowledge_bases if kb.id == self.selected_id), None)

    @rx.var
    def selected_name(self) -> str:
        return selected.name if (selected := self._selected()) else ""

    @rx.var
    def selected_readers(self) -> str:
        return selected.readers if (selected := self._selected()) else ""

    @rx.var
    def selected_description(self) -> str:
        return selected.description if (selected := self._selected()) else ""

    async def _reload(self, user: User) -> None:
        self.knowledge_bases = await run_in_session(_knowledge_base_rows, actor=user)
        if self.knowledge_bases and self.selected_id not in {kb.id for kb in self.knowledge_bases}:
            self.selected_id = self.knowledge_bases[0].id
        if not self.knowledge_bases:
            self.selected_id = 0
        self.documents = (
            await run_in_session(_document_rows, actor=user, knowledge_base_id=self.selected_id)
            if self.selected_id
            else []
        )

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        await self._reload(acting_user())

    @rx.event
    @guarded(Role.viewer)
    async def select(self, knowledge_base_id: int):
        self.selected_id = knowledge_base_id
        await self._reload(acting_user())

    @rx.event
    @guarded(Role.staff)
    async def create(self, form: dict):
        roles = [role for role in service.READER_ROLE_CHOICES if form.get(f"reader_{role}")]
        knowledge_base = await run_in_session(
            service.create_knowledge_base,
            actor=acting_user(),
            name=str(form.get("name", "")),
            description=str(form.get("description", "")),
            reader_roles=roles,
        )
        self.selected_id = knowledge_base.id
        await self._reload(acting_user())
        return rx.toast.success(f"Created {knowledge_base.name}.")

    @rx.event
    @guarded(Role.staff)
    async def rename(self, form: dict):
        await run_in_session(
            service.update_knowledge_base,
            actor=acting_user(),
            knowledge_base_id=self.selected_id,
            name=str(form.get("name", "")),
        )
        await self._reload(acting_user())

    @rx.event
    @guarded(Role.staff)
    async def delete_knowledge_base(self):
        name = self.selected_name
        await run_in_session(
            service.delete_knowledge_base,
            settings=get_settings(),
            actor=acting_user(),
            knowledge_base_id=self.selected_id,
        )
        self.selected_id = 0
        await self._reload(acting_user())
        return rx.toast.info(f"Deleted {name}.")

    @rx.event
    @guarded(Role.staff)
    async def delete_document(self, document_id: int):
        await run_in_session(
            service.delete_document, settings=get_settings(), actor=acting_user(), document_id=document_id
        )
        await self._reload(acting_user())

    @rx.event
    @guarded(Role.staff)
    async def upload(self, files: list[rx.UploadFile]):
        """Each file on its own: one refused (too large, a duplicate) does not stop the others."""
        user, settings = acting_user(), get_settings()
        problems = []
        for file in files:
            try:
                await service.upload_documents(
                    actor=user, settings=settings, knowledge_base_id=self.selected_id, uploads=[file]
                )
            except StrataError as exc:
                problems.append(exc.message)
        await self._reload(user)
        return [rx.toast.error(problem) for problem in problems]

    @rx.event(background=True)
    async def watch(self):
        await refresh_while_open(self, Role.viewer, self._refresh, REFRESH_SECONDS)

    async def _refresh(self) -> None:
        async with self:
            selected_id = self.selected_id
            # The rows are those this user may read; refresh_while_open has just checked the session.
            user = await self._require(Role.viewer) if selected_id else None
        if user is None:
            return
        try:
            rows = await run_in_session(_document_rows, actor=user, knowledge_base_id=selected_id)
        except StrataError:
            rows = []  # deleted or no longer readable
        async with self:
            if self.selected_id == selected_id:
                self.documents = rows

    @rx.event
    def stop_watching(self):
        self.watching = False
