import reflex as rx

from app.auth.state import AuthState
from app.system.backup_state import BackupRow, BackupState


def _backup_row(row: BackupRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(row.name, href=row.url, is_external=True)),
        rx.table.cell(row.size),
        rx.table.cell(row.written_at),
    )


def _panel() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Backups", size="4"),
                rx.button(
                    "Back up now",
                    on_click=BackupState.back_up_now,
                    loading=BackupState.running,
                    size="2",
                    id="backup-now",
                ),
                align="center",
            ),
            rx.cond(
                BackupState.job_status != "",
                rx.hstack(
                    rx.badge(BackupState.job_status, id="backup-status"),
                    rx.progress(value=BackupState.job_progress, width="12em"),
                    rx.text(BackupState.job_message, size="2", color_scheme="gray"),
                    align="center",
                ),
            ),
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell("Archive"),
                        rx.table.column_header_cell("Size"),
                        rx.table.column_header_cell("Written"),
                    )
                ),
                rx.table.body(rx.foreach(BackupState.backups, _backup_row)),
                size="1",
                width="100%",
            ),
            rx.text(
                "Restore one with `strata restore FILE` on a stopped Strata (see README, Backup and restore).",
                size="1",
                color_scheme="gray",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="backup-panel",
        on_mount=BackupState.watch,
        on_unmount=BackupState.stop_watching,
    )


def backup_panel() -> rx.Component:
    """Shown to admins only; the service refuses everyone else whatever they send."""
    return rx.cond(AuthState.is_admin, _panel())
