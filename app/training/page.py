import reflex as rx

from app.auth.state import AuthState
from app.training.state import (
    CandidateRow,
    DifferenceRow,
    ExperimentsState,
    MatrixCell,
    MatrixRow,
    Option,
    RunRow,
)
from app.ui.layout import shell

STATUS_COLORS = {"queued": "gray", "running": "blue", "succeeded": "green", "failed": "red", "cancelled": "orange"}


def _status_badge(status: rx.Var[str], **props) -> rx.Component:
    return rx.badge(status, color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"), **props)


def _labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="1", color_scheme="gray"), control, spacing="1")


def _option_select(options: rx.Var[list[Option]], value: rx.Var[str], on_change, element_id: str) -> rx.Component:
    return rx.select.root(
        rx.select.trigger(min_width="140px", id=element_id),
        rx.select.content(rx.foreach(options, lambda option: rx.select.item(option.label, value=option.value))),
        value=value,
        on_change=on_change,
    )


# ---------------------------------------------------------------------- new run


def _new_run_form() -> rx.Component:
    state = ExperimentsState
    return rx.card(
        rx.vstack(
            rx.heading("New run", size="3"),
            rx.hstack(
                _labelled(
                    "Dataset",
                    rx.select(
                        state.form_datasets,
                        value=state.form_dataset,
                        on_change=state.pick_dataset,
                        id="new-run-dataset",
                    ),
                ),
                _labelled(
                    "Version",
                    rx.select(
                        state.form_versions,
                        value=state.form_version,
                        on_change=state.pick_version,
                        id="new-run-version",
                    ),
                ),
                _labelled(
                    "Text column",
                    rx.select(
                        state.form_text_columns,
                        value=state.form_text_column,
                        on_change=state.pick_text_column,
                        id="new-run-text-column",
                    ),
                ),
                _labelled(
                    "Label column",
                    rx.select(
                        state.form_label_columns,
                        value=state.form_label_column,
                        on_change=state.pick_label_column,
                        id="new-run-label-column",
                    ),
                ),
                wrap="wrap",
                spacing="3",
            ),
            rx.hstack(
                _labelled(
                    "Model name (a new staging version of it)",
                    rx.input(
                        value=state.form_model_name,
                        on_change=state.name_model,
                        placeholder="e.g. ticket-topics",
                        id="new-run-model-name",
                    ),
                ),
                _labelled(
                    "Holdout fraction (0.05-0.5)",
                    rx.input(
                        value=state.form_holdout, on_change=state.choose_holdout, width="120px", id="new-run-holdout"
                    ),
                ),
                _labelled(
                    "Seed",
                    rx.input(value=state.form_seed, on_change=state.choose_seed, width="100px", id="new-run-seed"),
                ),
                rx.button("Start training", on_click=state.start_run, id="new-run-start"),
                align="end",
                wrap="wrap",
                spacing="3",
            ),
            spacing="3",
        ),
        width="100%",
        id="new-run-form",
    )


# ------------------------------------------------------------------------- list


def _filters() -> rx.Component:
    state = ExperimentsState
    return rx.hstack(
        _labelled(
            "Dataset",
            rx.select(
                state.dataset_options,
                value=state.filter_dataset,
                on_change=lambda value: state.filter_runs("dataset", value),
                id="experiments-filter-dataset",
            ),
        ),
        _labelled(
            "Model",
            rx.select(
                state.model_options,
                value=state.filter_model,
                on_change=lambda value: state.filter_runs("model", value),
                id="experiments-filter-model",
            ),
        ),
        _labelled(
            "Status",
            rx.select(
                state.status_options,
                value=state.filter_status,
                on_change=lambda value: state.filter_runs("status", value),
                id="experiments-filter-status",
            ),
        ),
        _labelled(
            "Chosen",
            rx.select(
                state.chosen_options,
                value=state.filter_chosen,
                on_change=lambda value: state.filter_runs("chosen", value),
                id="experiments-filter-chosen",
            ),
        ),
        _labelled(
            "Started by",
            _option_select(
                state.starter_options,
                state.filter_started_by,
                lambda value: state.filter_runs("started_by", value),
                "experiments-filter-started-by",
            ),
        ),
        _labelled(
            "Sort by",
            rx.hstack(
                _option_select(state.sort_options, state.sort, state.sort_runs, "experiments-sort"),
                rx.button(
                    rx.cond(state.descending, "Highest / newest first", "Lowest / oldest first"),
                    variant="soft",
                    on_click=state.flip_order,
                    id="experiments-sort-order",
                ),
            ),
        ),
        wrap="wrap",
        spacing="3",
        align="end",
    )


def _run_row(row: RunRow) -> rx.Component:
    state = ExperimentsState
    return rx.table.row(
        rx.table.cell(
            rx.checkbox(
                checked=state.compare_ids.contains(row.id),
                on_change=lambda checked: state.mark_for_compare(row.id, checked),
                id="compare-" + row.id.to_string(),
                class_name="run-compare-checkbox",
            )
        ),
        rx.table.cell(
            rx.link(
                "#",
                row.id,
                on_click=state.open_run(row.id),
                cursor="pointer",
                id="run-open-" + row.id.to_string(),
                class_name="run-open",
            )
        ),
        rx.table.cell(rx.text(row.dataset, size="2"), rx.text(row.columns, size="1", color_scheme="gray")),
        rx.table.cell(rx.text(row.model_name, size="2"), rx.text(row.params, size="1", color_scheme="gray")),
        rx.table.cell(row.chosen),
        rx.table.cell(row.accuracy, class_name="run-accuracy"),
        rx.table.cell(row.macro_f1, class_name="run-macro-f1"),
        rx.table.cell(row.duration),
        rx.table.cell(rx.text(row.started_by, size="1"), rx.text(row.created, size="1", color_scheme="gray")),
        rx.table.cell(
            _status_badge(row.status),
            rx.cond(
                row.active,
                rx.hstack(
                    rx.progress(value=row.percent, max=100, width="80px"),
                    rx.text(row.percent, "%", size="1"),
                    align="center",
                ),
            ),
            class_name="run-status",
        ),
        id="run-" + row.id.to_string(),
        class_name="training-run-row",
    )


def _runs_table() -> rx.Component:
    headers = ("", "Run", "Dataset version", "Model and parameters", "Chosen", "Accuracy", "Macro-F1", "Duration")
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in (*headers, "Started by", "Status")])),
        rx.table.body(rx.foreach(ExperimentsState.runs, _run_row)),
        width="100%",
        id="experiments-runs",
    )


def _pager() -> rx.Component:
    state = ExperimentsState
    return rx.hstack(
        rx.button(
            "Previous",
            variant="soft",
            on_click=state.previous_page,
            disabled=state.page <= 1,
            id="experiments-page-prev",
        ),
        rx.text(
            "Page ",
            state.page,
            " of ",
            state.page_count,
            " · ",
            state.total,
            " runs",
            size="2",
            id="experiments-page-label",
        ),
        rx.button(
            "Next",
            variant="soft",
            on_click=state.next_page,
            disabled=state.page >= state.page_count,
            id="experiments-page-next",
        ),
        rx.spacer(),
        rx.text("Tick two runs to compare them.", size="1", color_scheme="gray"),
        rx.button(
            "Compare",
            on_click=state.compare,
            disabled=state.compare_ids.length() != 2,
            id="experiments-compare",
        ),
        width="100%",
        align="center",
    )


# ---------------------------------------------------------------------- compare


def _difference_row(item: DifferenceRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.badge(item.section, variant="soft")),
        rx.table.cell(item.field),
        rx.table.cell(item.a, class_name="comparison-a"),
        rx.table.cell(item.b, class_name="comparison-b"),
        class_name="comparison-row",
    )


def _comparison() -> rx.Component:
    state = ExperimentsState
    return rx.card(
        rx.hstack(
            rx.heading("Run ", state.compare_a, " and run ", state.compare_b, ": what differs", size="4"),
            rx.spacer(),
            rx.button("Close", variant="soft", size="1", on_click=state.close_comparison),
            width="100%",
        ),
        rx.cond(
            state.differences,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        rx.table.column_header_cell(""),
                        rx.table.column_header_cell("Field"),
                        rx.table.column_header_cell("Run ", state.compare_a),
                        rx.table.column_header_cell("Run ", state.compare_b),
                    )
                ),
                rx.table.body(rx.foreach(state.differences, _difference_row)),
                width="100%",
            ),
            rx.text("The two runs do not differ.", id="experiments-comparison-same"),
        ),
        width="100%",
        id="experiments-comparison",
    )


# ----------------------------------------------------------------------- detail


def _candidate_row(candidate: CandidateRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.hstack(rx.text(candidate.name), rx.cond(candidate.chosen, rx.badge("chosen", color_scheme="green")))
        ),
        rx.table.cell(candidate.cv_macro_f1),
        rx.table.cell(candidate.holdout_macro_f1),
        rx.table.cell(candidate.holdout_accuracy),
        rx.table.cell(rx.text(candidate.note, size="1", color_scheme="gray")),
        class_name="run-candidate",
    )


def _per_class_chart() -> rx.Component:
    return rx.box(
        rx.recharts.bar_chart(
            rx.recharts.bar(data_key="precision", fill="var(--iris-9)", is_animation_active=False, unit="%"),
            rx.recharts.bar(data_key="recall", fill="var(--teal-9)", is_animation_active=False, unit="%"),
            rx.recharts.x_axis(data_key="label"),
            rx.recharts.y_axis(domain=[0, 100], unit="%"),
            rx.recharts.graphing_tooltip(),
            rx.recharts.legend(),
            data=ExperimentsState.class_scores,
            width="100%",
            height=260,
        ),
        width="100%",
        id="run-per-class-chart",
    )


def _matrix_cell(cell: MatrixCell) -> rx.Component:
    return rx.table.cell(
        cell.count,
        background=cell.background,
        color=cell.color,
        text_align="center",
        min_width="48px",
        class_name="confusion-cell",
    )


def _matrix_row(row: MatrixRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(row.label),
        rx.foreach(row.cells, _matrix_cell),
        class_name="confusion-row",
    )


def _confusion_matrix() -> rx.Component:
    return rx.scroll_area(
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("true ↓ / predicted →"),
                    rx.foreach(ExperimentsState.matrix_labels, lambda label: rx.table.column_header_cell(label)),
                )
            ),
            rx.table.body(rx.foreach(ExperimentsState.matrix_rows, _matrix_row)),
            size="1",
            variant="surface",
        ),
        type="auto",
        max_height="480px",
        id="run-confusion-matrix",
    )


def _metric(label: str, value: rx.Var[str]) -> rx.Component:
    return rx.vstack(rx.text(label, size="1", color_scheme="gray"), rx.text(value, weight="bold"), spacing="0")


def _detail() -> rx.Component:
    state = ExperimentsState
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(state.detail_title, size="4"),
                _status_badge(state.detail_status, id="run-status"),
                rx.spacer(),
                rx.cond(
                    AuthState.is_staff & state.detail_active,
                    rx.button(
                        "Cancel run", color_scheme="red", variant="soft", on_click=state.cancel_run, id="run-cancel"
                    ),
                ),
                rx.button("Close", variant="soft", on_click=state.close_run),
                width="100%",
                align="center",
            ),
            rx.text(state.detail_params, size="2", color_scheme="gray"),
            rx.cond(
                state.detail_active,
                rx.hstack(
                    rx.progress(value=state.detail_percent, max=100, width="240px"),
                    rx.text(state.detail_percent, "% · ", state.detail_message, size="2"),
                    align="center",
                    id="run-progress",
                ),
            ),
            rx.cond(
                state.detail_error,
                rx.callout(
                    state.detail_error,
                    title="The run failed",
                    icon="triangle-alert",
                    color_scheme="red",
                    id="run-error",
                ),
            ),
            rx.hstack(
                _metric("Chosen", state.detail_chosen),
                _metric("Accuracy", state.detail_accuracy),
                _metric("Macro-F1", state.detail_macro_f1),
                _metric("Baseline macro-F1", state.detail_baseline),
                _metric("Duration", state.detail_duration),
                spacing="6",
                id="run-metrics",
            ),
            rx.cond(
                state.detail_model_version,
                rx.text(
                    "Registered as ",
                    rx.link(state.detail_model_version, href="/models"),
                    size="2",
                    id="run-model-version",
                ),
            ),
            rx.cond(state.detail_rows, rx.text(state.detail_rows, size="1", color_scheme="gray", id="run-rows")),
            rx.cond(state.detail_parity, rx.text(state.detail_parity, size="1", color_scheme="gray", id="run-parity")),
            rx.cond(
                state.candidates,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[
                                rx.table.column_header_cell(h)
                                for h in (
                                    "Candidate",
                                    "Cross-validated macro-F1",
                                    "Holdout macro-F1",
                                    "Holdout accuracy",
                                    "",
                                )
                            ]
                        )
                    ),
                    rx.table.body(rx.foreach(state.candidates, _candidate_row)),
                    width="100%",
                    id="run-candidates",
                ),
            ),
            rx.cond(
                state.class_scores,
                rx.vstack(
                    rx.heading("Per-class precision and recall on the holdout", size="3"),
                    _per_class_chart(),
                    rx.heading("Confusion matrix on the holdout", size="3"),
                    _confusion_matrix(),
                    width="100%",
                ),
            ),
            spacing="3",
            width="100%",
        ),
        width="100%",
        id="run-detail",
    )


def experiments_page() -> rx.Component:
    return shell(
        "Experiments",
        rx.cond(AuthState.is_staff, _new_run_form()),
        _filters(),
        _runs_table(),
        _pager(),
        rx.cond(ExperimentsState.compare_a, _comparison()),
        rx.cond(ExperimentsState.selected_id, _detail()),
        on_mount=ExperimentsState.watch,
        on_unmount=ExperimentsState.stop_watching,
    )
