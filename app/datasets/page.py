import reflex as rx

from app.auth.state import AuthState
from app.datasets.state import UPLOAD_ID, ColumnRow, DatasetsState, LabelRow, LineageRow, VersionRow
from app.ui.confirm import confirm_delete
from app.ui.layout import shell

ACCEPTED = {
    "text/csv": [".csv"],
    "application/x-ndjson": [".jsonl", ".ndjson"],
    "application/vnd.apache.parquet": [".parquet"],
}


def _version_item(row: VersionRow) -> rx.Component:
    chosen = DatasetsState.selected_key == row.key
    return rx.button(
        rx.hstack(
            rx.text(row.dataset, truncate=True, weight="bold"),
            rx.badge("v", row.number),
            rx.spacer(),
            rx.text(row.rows, " rows", size="1"),
            width="100%",
            align="center",
        ),
        on_click=DatasetsState.select_version(row.dataset, row.number),
        variant=rx.cond(chosen, "solid", "soft"),
        width="100%",
        class_name="dataset-version-item",
        data_key=row.key,
    )


def _upload_form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Upload a dataset", size="3"),
            rx.input(
                placeholder="Dataset name (a new version if it exists)",
                value=DatasetsState.upload_name,
                on_change=DatasetsState.name_upload,
                # Sent at each key, not after a pause: a file dropped right after typing must
                # find the name already on the server.
                debounce_timeout=0,
                id="dataset-upload-name",
                width="100%",
            ),
            rx.upload.root(
                rx.vstack(
                    rx.icon("upload", size=20),
                    rx.text("Drop a CSV, JSONL or Parquet file, or click to choose one.", size="2"),
                    rx.text("At most ", DatasetsState.upload_limit_mb, " MB.", size="1", color_scheme="gray"),
                    align="center",
                    spacing="1",
                ),
                id=UPLOAD_ID,
                multiple=False,
                accept=ACCEPTED,
                # The browser refuses larger files at once; the server checks again while it receives them.
                max_size=DatasetsState.upload_limit_bytes,
                on_drop=DatasetsState.upload(rx.upload_files(upload_id=UPLOAD_ID)),
                border="2px dashed var(--gray-7)",
                border_radius="8px",
                padding="16px",
                width="100%",
                cursor="pointer",
            ),
            spacing="2",
            width="100%",
        ),
        width="100%",
    )


def _column_row(column: ColumnRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(column.name, weight="bold")),
        rx.table.cell(rx.badge(column.type)),
        rx.table.cell(column.missing),
        rx.table.cell(column.distinct),
        rx.table.cell(column.lengths),
        rx.table.cell(column.over_limit),
        class_name="dataset-column",
    )


def _schema_and_quality() -> rx.Component:
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                *[
                    rx.table.column_header_cell(h)
                    for h in (
                        "Column",
                        "Type",
                        "Empty or missing",
                        "Distinct",
                        "Length min / median / max",
                        "Over limit",
                    )
                ]
            )
        ),
        rx.table.body(rx.foreach(DatasetsState.columns, _column_row)),
        width="100%",
        id="dataset-columns",
    )


def _preview() -> rx.Component:
    return rx.scroll_area(
        rx.table.root(
            rx.table.header(
                rx.table.row(rx.foreach(DatasetsState.preview_header, lambda name: rx.table.column_header_cell(name)))
            ),
            rx.table.body(
                rx.foreach(
                    DatasetsState.preview_rows,
                    lambda row: rx.table.row(
                        rx.foreach(row, lambda value: rx.table.cell(rx.text(value, size="1"), max_width="360px"))
                    ),
                )
            ),
            size="1",
            id="dataset-preview",
        ),
        max_height="420px",
        type="auto",
    )


def _label_row(row: LabelRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.label),
        rx.table.cell(row.rows),
        rx.table.cell(
            rx.hstack(rx.progress(value=row.percent.to(int), max=100, width="160px"), rx.text(row.percent, "%"))
        ),
        class_name="dataset-label",
    )


def _labels() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.text("Label column:"),
            rx.select(
                DatasetsState.label_choices,
                value=DatasetsState.label_column,
                on_change=DatasetsState.choose_label,
                id="dataset-label-column",
            ),
            align="center",
        ),
        rx.cond(
            DatasetsState.distribution,
            rx.table.root(
                rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in ("Label", "Rows", "Share")])),
                rx.table.body(rx.foreach(DatasetsState.distribution, _label_row)),
                id="dataset-label-distribution",
            ),
        ),
        spacing="2",
        width="100%",
    )


def _warnings() -> rx.Component:
    return rx.cond(
        DatasetsState.warnings,
        rx.callout(
            rx.vstack(rx.foreach(DatasetsState.warnings, lambda w: rx.text(w, size="2")), spacing="1"),
            title="Before you train",
            icon="triangle-alert",
            color_scheme="amber",
            id="dataset-warnings",
        ),
    )


def _lineage_row(link: LineageRow) -> rx.Component:
    return rx.hstack(rx.badge(link.kind), rx.text(link.label, size="2"), class_name="dataset-lineage")


def _delete_button() -> rx.Component:
    return confirm_delete(
        rx.button("Delete version", color_scheme="red", variant="soft", id="dataset-delete"),
        ["Delete version ", DatasetsState.selected_number, " of ", DatasetsState.selected_dataset, "?"],
        "Its file is removed unless another version holds the same bytes.",
        DatasetsState.delete_version,
        id="dataset-delete-confirm",
    )


def _selected_version() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading(
                DatasetsState.selected_dataset,
                " · version ",
                DatasetsState.selected_number,
                size="5",
                id="dataset-title",
            ),
            rx.spacer(),
            rx.link(
                rx.button("Download", variant="soft", id="dataset-download"),
                href=DatasetsState.download_url,
                # A file from the API, not a page: React Router would otherwise route it in the app (a 404 page).
                reload_document=True,
            ),
            rx.cond(AuthState.is_staff, _delete_button()),
            width="100%",
            align="center",
        ),
        rx.text(
            DatasetsState.format,
            " · ",
            DatasetsState.row_count,
            " rows · ",
            DatasetsState.duplicate_rows,
            " duplicate rows · sha256 ",
            DatasetsState.sha256,
            size="1",
            color_scheme="gray",
            id="dataset-summary",
        ),
        _warnings(),
        rx.heading("Schema and quality", size="3"),
        _schema_and_quality(),
        rx.text(
            "Text lengths in characters; 'over limit' counts ",
            DatasetsState.length_unit,
            ".",
            size="1",
            color_scheme="gray",
        ),
        rx.heading("Labels", size="3"),
        _labels(),
        rx.heading("First rows", size="3"),
        _preview(),
        rx.cond(
            DatasetsState.lineage,
            rx.vstack(rx.heading("Made from this version", size="3"), rx.foreach(DatasetsState.lineage, _lineage_row)),
        ),
        width="100%",
        spacing="3",
    )


def datasets_page() -> rx.Component:
    return shell(
        "Datasets",
        rx.hstack(
            rx.vstack(
                rx.foreach(DatasetsState.versions, _version_item),
                rx.cond(AuthState.is_staff, _upload_form()),
                width="300px",
                spacing="2",
                id="dataset-list",
            ),
            rx.cond(
                DatasetsState.selected_key,
                _selected_version(),
                rx.text("No dataset yet.", color_scheme="gray", id="dataset-none"),
            ),
            align="start",
            spacing="6",
            width="100%",
        ),
    )
