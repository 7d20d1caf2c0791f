import reflex as rx

from app.audit.state import AuditRow, AuditState
from app.ui.layout import shell


def _text_filter(label: str, field: str, value, element_id: str, input_type: str = "text", placeholder: str = ""):
    return rx.vstack(
        rx.text(label, size="2", weight="bold"),
        rx.input(
            value=value,
            type=input_type,
            placeholder=placeholder,
            on_change=lambda text: AuditState.edit_filter(field, text),
            id=element_id,
        ),
        spacing="1",
    )


def _filters() -> rx.Component:
    return rx.form(
        rx.hstack(
            _text_filter(
                "User", "filter_user", AuditState.filter_user, "audit-filter-user", placeholder="part of an e-mail"
            ),
            rx.vstack(
                rx.text("Action", size="2", weight="bold"),
                rx.select(
                    AuditState.action_options,
                    value=AuditState.filter_action,
                    on_change=lambda chosen: AuditState.edit_filter("filter_action", chosen),
                    id="audit-filter-action",
                ),
                spacing="1",
            ),
            _text_filter("From (UTC)", "filter_since", AuditState.filter_since, "audit-filter-since", "datetime-local"),
            _text_filter(
                "Until (UTC)", "filter_until", AuditState.filter_until, "audit-filter-until", "datetime-local"
            ),
            rx.button("Filter", type="submit", id="audit-filter-apply"),
            rx.button(
                "Clear", type="button", variant="soft", on_click=AuditState.clear_filters, id="audit-filter-clear"
            ),
            rx.el.a(
                rx.button("Export CSV", type="button", variant="outline"),
                href=AuditState.export_url,
                download="",
                # A file from the API, not a page: React Router would otherwise route it in the app.
                reload_document=True,
                id="audit-export",
            ),
            align="end",
            spacing="3",
            wrap="wrap",
        ),
        on_submit=lambda _form: AuditState.search(),
        reset_on_submit=False,
    )


def _entry_row(row: AuditRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.at, size="1", white_space="nowrap")),
        rx.table.cell(rx.vstack(rx.text(row.actor, size="2"), rx.text(row.address, size="1", color_scheme="gray"))),
        rx.table.cell(rx.code(row.action, class_name="audit-action")),
        rx.table.cell(rx.text(row.target, size="2", class_name="audit-target")),
        rx.table.cell(
            rx.vstack(
                rx.text(row.change, size="2", class_name="audit-change"),
                rx.text(row.detail, size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        class_name="audit-row",
        data_action=row.action,
    )


def _pager() -> rx.Component:
    return rx.hstack(
        rx.button(
            "Newer",
            variant="soft",
            disabled=AuditState.page <= 1,
            on_click=AuditState.go_to_page(AuditState.page - 1),
            id="audit-newer",
        ),
        rx.text(
            "Page ",
            AuditState.page,
            " of ",
            AuditState.page_count,
            " · ",
            AuditState.total,
            " entries",
            id="audit-pages",
        ),
        rx.button(
            "Older",
            variant="soft",
            disabled=AuditState.page >= AuditState.page_count,
            on_click=AuditState.go_to_page(AuditState.page + 1),
            id="audit-older",
        ),
        align="center",
        spacing="3",
    )


def audit_page() -> rx.Component:
    return shell(
        "Audit log",
        rx.vstack(
            rx.text(
                "Every change people make in Strata, and every sign-in: who, when, from which address, "
                "and the values before and after. Entries cannot be changed or deleted; they are removed "
                "only after the retention period.",
                color_scheme="gray",
            ),
            _filters(),
            rx.cond(
                AuditState.entries,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[rx.table.column_header_cell(h) for h in ("When", "Who", "Action", "What", "Change")]
                        )
                    ),
                    rx.table.body(rx.foreach(AuditState.entries, _entry_row)),
                    width="100%",
                    id="audit-entries",
                ),
                rx.text("No entry matches.", color_scheme="gray", id="audit-none"),
            ),
            _pager(),
            spacing="4",
            width="100%",
        ),
    )
