import reflex as rx

from app.auth.state import AuthState
from app.batch.state import BatchState, RunRow
from app.ui.layout import shell

STATUS_COLORS = {"queued": "gray", "running": "blue", "succeeded": "green", "failed": "red", "cancelled": "orange"}


def _select(choices, value, field: str, element_id: str, placeholder: str) -> rx.Component:
    return rx.vstack(
        rx.text(placeholder, size="1", color_scheme="gray"),
        rx.select(
            choices,
            value=value,
            on_change=lambda choice: BatchState.edit(field, choice),
            placeholder=placeholder,
            id=element_id,
            custom_attrs={"data-testid": element_id},
        ),
        spacing="1",
    )


def _start_form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Score a dataset", size="3"),
            rx.hstack(
                _select(BatchState.dataset_names, BatchState.form_dataset, "form_dataset", "batch-dataset", "Dataset"),
                _select(
                    BatchState.version_choices, BatchState.form_version, "form_version", "batch-version", "Version"
                ),
                _select(
                    BatchState.column_choices,
                    BatchState.form_text_column,
                    "form_text_column",
                    "batch-text-column",
                    "Text column",
                ),
                _select(BatchState.model_names, BatchState.form_model, "form_model", "batch-model", "Model"),
                _select(
                    BatchState.model_version_choices,
                    BatchState.form_model_version,
                    "form_model_version",
                    "batch-model-version",
                    "Model version",
                ),
                rx.button(
                    "Start batch job",
                    on_click=BatchState.start,
                    disabled=~BatchState.can_start,
                    id="batch-start",
                    custom_attrs={"data-testid": "batch-start"},
                ),
                align="end",
                spacing="3",
                wrap="wrap",
            ),
            rx.text(
                "Every row gets prediction, confidence, model_version and error columns; the result is a new version"
                " of the dataset <dataset>-predictions.",
                size="1",
                color_scheme="gray",
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _download(label: str, url, file_format: str, run_id) -> rx.Component:
    return rx.el.a(
        rx.button(label, size="1", variant="soft"),
        href=url,
        download="",
        # A file from the API, not a page: React Router would otherwise route it in the app (a 404 page).
        reload_document=True,
        id=f"batch-download-{file_format}-" + run_id.to_string(),
        class_name=f"batch-download-{file_format}",
        custom_attrs={"data-testid": f"batch-download-{file_format}"},
    )


def _run_row(run: RunRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(run.id),
        rx.table.cell(rx.vstack(rx.text(run.dataset, weight="bold"), rx.text(run.text_column, size="1"), spacing="0")),
        rx.table.cell(run.model),
        rx.table.cell(
            rx.badge(run.status, color_scheme=rx.match(run.status, *STATUS_COLORS.items(), "gray")),
            class_name="batch-status",
        ),
        rx.table.cell(
            rx.vstack(
                rx.hstack(
                    rx.progress(value=run.percent, max=100, width="140px"),
                    rx.text(run.percent, "%", size="1"),
                    align="center",
                ),
                rx.text(run.rows, " rows", size="1", class_name="batch-rows"),
                rx.cond(run.rate, rx.text(run.rate, size="1", class_name="batch-rate")),
                rx.cond(run.eta, rx.text("ETA ", run.eta, size="1", class_name="batch-eta")),
                rx.cond(
                    run.failed > 0, rx.text(run.failed, " rows without a prediction", size="1", color_scheme="amber")
                ),
                rx.cond(run.error, rx.text(run.error, size="1", color_scheme="red", class_name="batch-error")),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.cond(
                run.result,
                rx.vstack(
                    rx.text(run.result, size="1", class_name="batch-result"),
                    rx.hstack(
                        _download("CSV", run.csv_url, "csv", run.id),
                        _download("Parquet", run.parquet_url, "parquet", run.id),
                    ),
                    spacing="1",
                ),
            )
        ),
        rx.table.cell(run.started_by),
        rx.table.cell(run.created),
        rx.table.cell(
            rx.cond(
                AuthState.is_staff & run.active,
                rx.button(
                    "Cancel",
                    size="1",
                    variant="soft",
                    color_scheme="red",
                    on_click=BatchState.cancel(run.id),
                    class_name="batch-cancel",
                ),
            )
        ),
        id="batch-run-" + run.id.to_string(),
        class_name="batch-run",
        custom_attrs={"data-testid": "batch-run"},
    )


def batch_page() -> rx.Component:
    return shell(
        "Batch",
        rx.cond(AuthState.is_staff, _start_form()),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in (
                            "#",
                            "Dataset",
                            "Model",
                            "Status",
                            "Progress",
                            "Result",
                            "Started by",
                            "Created (UTC)",
                            "",
                        )
                    ]
                )
            ),
            rx.table.body(rx.foreach(BatchState.runs, _run_row)),
            width="100%",
            id="batch-runs",
        ),
        on_mount=BatchState.watch,
        on_unmount=BatchState.stop_watching,
    )
