import reflex as rx

from app.jobs_board.state import JobKindOption, JobRow, JobsState, ModelCheckRow
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


def _check(ok: rx.Var[bool], text: rx.Var[str]) -> rx.Component:
    return rx.hstack(
        rx.icon(rx.cond(ok, "circle-check", "circle-x"), color=rx.cond(ok, "green", "red"), size=16),
        rx.text(text, size="2"),
        align="center",
    )


def _model_check_row(check: ModelCheckRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(check.name, weight="bold")),
        rx.table.cell(_check(check.sha256_ok, check.sha256[:16] + "…"), class_name="check-sha256"),
        rx.table.cell(_check(check.parity_ok, check.parity), class_name="check-parity"),
        rx.table.cell(check.latency),
        rx.table.cell(check.throughput),
        rx.table.cell(
            rx.badge(rx.cond(check.passed, "passed", "failed"), color_scheme=rx.cond(check.passed, "green", "red")),
            rx.cond(check.error, rx.text(check.error, size="1", color_scheme="red")),
            class_name="check-verdict",
        ),
    )


def _result_card() -> rx.Component:
    return rx.card(
        rx.heading("Result", size="4", margin_bottom="3"),
        rx.cond(
            JobsState.selected_model_checks,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in ("Model", "sha256", "Parity (min cosine)", "Latency", "Throughput", "")
                        ]
                    )
                ),
                rx.table.body(rx.foreach(JobsState.selected_model_checks, _model_check_row)),
                width="100%",
                id="model-checks",
            ),
        ),
        rx.accordion.root(
            rx.accordion.item(
                header="Raw result",
                content=rx.code_block(JobsState.selected_result, language="json", id="job-result"),
                value="raw",
            ),
            collapsible=True,
            variant="ghost",
        ),
        width="100%",
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
                    *[
                        rx.table.column_header_cell(h)
                        for h in ("Job", "Status", "Progress", "Attempts", "Started by", "Created (UTC)", "")
                    ]
                )
            ),
            rx.table.body(rx.foreach(JobsState.jobs, _job_row)),
            width="100%",
        ),
        rx.cond(JobsState.selected_result, _result_card()),
        on_mount=JobsState.watch,
        on_unmount=JobsState.stop_watching,
    )
