import reflex as rx

from app.auth.state import AuthState
from app.knowledge.state import UPLOAD_ID, DocumentRow, KnowledgeBaseRow, KnowledgeState
from app.ui.confirm import confirm_delete
from app.ui.layout import shell

STATUS_COLORS = {"queued": "gray", "ingesting": "blue", "ready": "green", "failed": "red"}
ACCEPTED = {
    "application/pdf": [".pdf"],
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": [".docx"],
    "text/html": [".html", ".htm"],
    "text/markdown": [".md", ".markdown"],
    "text/plain": [".txt"],
}


def _knowledge_base_item(knowledge_base: KnowledgeBaseRow) -> rx.Component:
    chosen = KnowledgeState.selected_id == knowledge_base.id
    return rx.button(
        rx.text(knowledge_base.name, truncate=True),
        on_click=KnowledgeState.select(knowledge_base.id),
        variant=rx.cond(chosen, "solid", "soft"),
        width="100%",
        justify="start",
        id=f"kb-{knowledge_base.id}",
        class_name="kb-item",
    )


def _create_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("New knowledge base", size="3"),
                rx.input(name="name", placeholder="Name", required=True, id="kb-new-name", width="100%"),
                rx.text_area(
                    name="description", placeholder="What is in it (optional)", id="kb-new-description", width="100%"
                ),
                rx.text("Who may read it (admins always can):", size="1", color_scheme="gray"),
                rx.hstack(
                    rx.checkbox("Viewers", name="reader_viewer", default_checked=True, id="kb-new-reader-viewer"),
                    rx.checkbox("Staff", name="reader_staff", default_checked=True, id="kb-new-reader-staff"),
                ),
                rx.button("Create", type="submit", id="kb-create"),
                align="start",
                spacing="2",
            ),
            on_submit=KnowledgeState.create,
            reset_on_submit=True,
        ),
        width="100%",
    )


def _delete_knowledge_base_button() -> rx.Component:
    return confirm_delete(
        rx.button("Delete", color_scheme="red", variant="soft", id="kb-delete"),
        ["Delete ", KnowledgeState.selected_name, "?"],
        "Its documents, their passages and files are removed for good.",
        KnowledgeState.delete_knowledge_base,
        id="kb-delete-confirm",
    )


def _management() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.form(
                rx.hstack(
                    rx.input(name="name", placeholder="New name", required=True, id="kb-rename-name"),
                    rx.button("Rename", type="submit", variant="soft", id="kb-rename"),
                ),
                on_submit=KnowledgeState.rename,
                reset_on_submit=True,
            ),
            _delete_knowledge_base_button(),
            spacing="3",
        ),
        rx.upload.root(
            rx.vstack(
                rx.icon("upload", size=24),
                rx.text("Drop PDF, DOCX, HTML, Markdown or text files here, or click to choose several."),
                rx.text("At most ", KnowledgeState.upload_limit_mb, " MB a file.", size="1", color_scheme="gray"),
                align="center",
                spacing="1",
            ),
            id=UPLOAD_ID,
            multiple=True,
            accept=ACCEPTED,
            # The browser refuses larger files at once; the server checks again while it receives them.
            max_size=KnowledgeState.upload_limit_bytes,
            on_drop=KnowledgeState.upload(rx.upload_files(upload_id=UPLOAD_ID)),
            border="2px dashed var(--gray-7)",
            border_radius="8px",
            padding="24px",
            width="100%",
            cursor="pointer",
        ),
        width="100%",
        spacing="3",
    )


def _status_badge(status: rx.Var[str]) -> rx.Component:
    return rx.badge(status, color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"))


def _document_row(document: DocumentRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(document.filename, href=document.file_url, is_external=True)),
        rx.table.cell(_status_badge(document.status), class_name="doc-status"),
        rx.table.cell(
            rx.vstack(
                rx.cond(
                    (document.status == "queued") | (document.status == "ingesting"),
                    rx.hstack(
                        rx.progress(value=document.percent, max=100, width="140px"),
                        rx.text(document.percent, "%", size="1"),
                        align="center",
                        class_name="doc-progress",
                    ),
                ),
                rx.cond(document.message, rx.text(document.message, size="1", color_scheme="gray")),
                rx.cond(document.error, rx.text(document.error, size="1", color_scheme="red", class_name="doc-error")),
                spacing="1",
            )
        ),
        rx.table.cell(document.pages),
        rx.table.cell(document.passages),
        rx.table.cell(document.size),
        rx.table.cell(document.added),
        rx.table.cell(
            rx.cond(
                AuthState.is_staff,
                rx.button(
                    "Delete",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=KnowledgeState.delete_document(document.id),
                    class_name="doc-delete",
                ),
            )
        ),
        id=f"doc-{document.id}",
        class_name="doc-row",
        data_filename=document.filename,
    )


def _documents() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                *[
                    rx.table.column_header_cell(h)
                    for h in ("Document", "Status", "Progress", "Pages", "Passages", "Size", "Added (UTC)", "")
                ]
            )
        ),
        rx.table.body(rx.foreach(KnowledgeState.documents, _document_row)),
        width="100%",
        id="documents",
    )


def _selected_knowledge_base() -> rx.Component:
    return rx.vstack(
        rx.heading(KnowledgeState.selected_name, size="5", id="kb-title"),
        rx.cond(KnowledgeState.selected_description, rx.text(KnowledgeState.selected_description)),
        rx.text("Readers: ", KnowledgeState.selected_readers, size="1", color_scheme="gray", id="kb-readers"),
        rx.cond(AuthState.is_staff, _management()),
        _documents(),
        width="100%",
        spacing="3",
    )


def knowledge_page() -> rx.Component:
    return shell(
        "Knowledge",
        rx.hstack(
            rx.vstack(
                rx.foreach(KnowledgeState.knowledge_bases, _knowledge_base_item),
                rx.cond(AuthState.is_staff, _create_form()),
                width="260px",
                spacing="2",
                id="kb-list",
            ),
            rx.cond(
                KnowledgeState.selected_id,
                _selected_knowledge_base(),
                rx.text("No knowledge base you may read yet.", color_scheme="gray", id="kb-none"),
            ),
            align="start",
            spacing="6",
            width="100%",
        ),
        on_mount=KnowledgeState.watch,
        on_unmount=KnowledgeState.stop_watching,
    )
