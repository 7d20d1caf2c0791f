import reflex as rx

from app.jobs_board.state import JobKindOption, JobRow, JobsState
from app.ui.layout import shell

STATUS_COLORS = {"queued": "gray", "running": "blue", "succeeded": "green", "failed": "red", "cancelled": "orange"}


def _status_badge(status: rx.Var[str]) -> rx.Component:
    return rx.badge(status, color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"))


def _job_row(job: JobRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(job.title, on_click=JobsState.select(job.id), cursor="pointer")),
        rx.table.cell(_status_badge(job.status), class_name="job-status"),
        rx.table.cell(
            rx.vstack(
                rx.hstack(
                    rx.progress(value=job.percent, max=100, width="160px", class_name="job-progress"),
                    rx.text(job.percent, "%", size="1", class_name="job-percent"),
                    align="center",
                ),
                rx.text(job.message, size="1", color_scheme="gray", class_name="job-message"),
                rx.cond(job.error, rx.text(job.error, size="1", color_scheme="red", class_name="job-error")),
                spacing="1",
            )
        ),
        rx.table.cell(job.attempts),
        rx.table.cell(job.started_by),
        rx.table.cell(job.created),
        rx.table.cell(
            rx.cond(
                job.active,
                rx.button("Cancel", size="1", variant="soft", color_scheme="red", on_click=JobsState.cancel(job.id)),
                rx.cond(job.retryable, rx.button("Retry", size="1", variant="soft", on_click=JobsState.retry(job.id))),
            )
        ),
        id=f"job-{job.id}",
        class_name="job-row",
    )


def _start_button(kind: JobKindOption) -> rx.Component:
    return rx.button(kind.title, on_click=JobsState.start(kind.kind), id=f"start-{kind.kind}")


def jobs_page() -> rx.Component:
    return shell(
        "Jobs",
        rx.hstack(rx.text("Start:", weight="bold"), rx.foreach(JobsState.kinds, _start_button), align="center"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[rx.table.column_header_cell(h) for h in ("Job", "Status", "Progress", "Attempts", "Started by", "Created (UTC)", "")]
                )
            ),
            rx.table.body(rx.foreach(JobsState.jobs, _job_row)),
            width="100%",
        ),
        rx.cond(
            JobsState.selected_result,
            rx.card(
                rx.heading("Result", size="4"),
                rx.code_block(JobsState.selected_result, language="json", id="job-result"),
                width="100%",
            ),
        ),
        on_mount=JobsState.watch,
        on_unmount=JobsState.stop_watching,
    )
