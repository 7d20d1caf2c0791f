import reflex as rx

from app.auth.state import AuthState
from app.predict.state import EventRow, ModelOption, ModelsState, PredictState, ResultRow, VersionRow
from app.ui.layout import shell

STAGE_COLORS = {"production": "green", "staging": "amber", "archived": "gray"}


def _model_select(options: rx.Var[list[ModelOption]], value: rx.Var[str], on_change, element_id: str) -> rx.Component:
    return rx.select.root(
        rx.select.trigger(placeholder="Choose a model", min_width="260px", id=element_id),
        rx.select.content(
            rx.foreach(options, lambda model: rx.select.item(model.name + " (" + model.kind + ")", value=model.name))
        ),
        value=value,
        on_change=on_change,
    )


def _error_callout(message: rx.Var[str], element_id: str) -> rx.Component:
    return rx.cond(
        message,
        rx.callout(message, title="Could not predict", icon="triangle-alert", color_scheme="red", id=element_id),
    )


def _score_chart(row: ResultRow) -> rx.Component:
    return rx.recharts.bar_chart(
        rx.recharts.bar(
            data_key="percent",
            fill="var(--iris-9)",
            is_animation_active=False,
            unit="%",
            label={"position": "right", "fontSize": 11},
        ),
        rx.recharts.x_axis(type_="number", domain=[0, 100], hide=True),
        rx.recharts.y_axis(data_key="label", type_="category", width=130),
        rx.recharts.graphing_tooltip(),
        data=row.scores,
        layout="vertical",
        width=360,
        height=row.chart_height,
        margin={"top": 0, "right": 40, "bottom": 0, "left": 0},
    )


def _feedback_form(row: ResultRow) -> rx.Component:
    """The correct label of this prediction: ground truth for the Monitoring page's accuracy."""
    return rx.form(
        rx.hstack(
            rx.input(type="hidden", name="prediction_id", value=row.prediction_id),
            rx.select(
                row.label_choices,
                name="label",
                placeholder="Correct label",
                size="1",
                id="predict-feedback-label-" + row.index.to_string(),
            ),
            rx.button(
                "Submit", type="submit", size="1", variant="soft", id="predict-feedback-submit-" + row.index.to_string()
            ),
            align="center",
            spacing="1",
        ),
        rx.cond(
            row.feedback,
            rx.text(row.feedback, size="1", color_scheme="green", id="predict-feedback-saved-" + row.index.to_string()),
        ),
        on_submit=PredictState.give_feedback,
        reset_on_submit=False,
    )


def _result_row(row: ResultRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.text, size="2"), max_width="320px"),
        rx.table.cell(
            rx.cond(
                row.embedding,
                rx.code(row.embedding, size="1", class_name="result-embedding"),
                rx.vstack(
                    rx.badge(row.label, size="2", class_name="result-label"),
                    rx.text(row.confidence, size="1", color_scheme="gray", class_name="result-confidence"),
                    rx.cond(row.prediction_id & row.label_choices, _feedback_form(row)),
                    spacing="1",
                ),
            )
        ),
        rx.table.cell(rx.cond(row.scores, _score_chart(row))),
        id="predict-result-" + row.index.to_string(),
        class_name="predict-result",
    )


def predict_page() -> rx.Component:
    return shell(
        "Predict",
        rx.hstack(
            _model_select(PredictState.models, PredictState.model_name, PredictState.choose_model, "predict-model"),
            rx.text(PredictState.model_description, size="2", color_scheme="gray"),
            align="center",
        ),
        rx.form(
            rx.vstack(
                rx.text_area(
                    placeholder="One text per line, e.g.\nShares rallied after the central bank held rates.",
                    name="inputs",
                    rows="6",
                    width="100%",
                    id="predict-input",
                ),
                rx.button("Predict", type="submit", id="predict-submit"),
                spacing="3",
                width="100%",
            ),
            on_submit=PredictState.predict,
            reset_on_submit=False,
            width="100%",
        ),
        _error_callout(PredictState.error, "predict-error"),
        rx.cond(
            PredictState.results,
            rx.vstack(
                rx.hstack(
                    rx.badge("version ", PredictState.version, color_scheme="iris", id="predict-version"),
                    rx.text(PredictState.latency, size="2", id="predict-latency"),
                    rx.text(PredictState.cached, " from cache", size="2", color_scheme="gray", id="predict-cached"),
                    align="center",
                ),
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Text"),
                            rx.table.column_header_cell(rx.cond(PredictState.is_embedder, "Embedding", "Label")),
                            rx.table.column_header_cell(rx.cond(PredictState.is_embedder, "", "Confidence per label")),
                        )
                    ),
                    rx.table.body(rx.foreach(PredictState.results, _result_row)),
                    width="100%",
                ),
                width="100%",
            ),
        ),
    )


def _stage_badge(stage: rx.Var[str]) -> rx.Component:
    return rx.badge(stage, color_scheme=rx.match(stage, *STAGE_COLORS.items(), "gray"), class_name="version-stage")


def _version_row(version: VersionRow) -> rx.Component:
    number = version.number.to_string()
    return rx.table.row(
        rx.table.cell(rx.text(version.number, weight="bold")),
        rx.table.cell(_stage_badge(version.stage)),
        rx.table.cell(version.source),
        rx.table.cell(rx.text(version.labels, size="1"), max_width="260px"),
        rx.table.cell(rx.text(version.metrics, size="1")),
        rx.table.cell(
            rx.text(version.created_by, size="1"), rx.text(version.created_at, size="1", color_scheme="gray")
        ),
        rx.table.cell(rx.text(version.traffic_percent, "%"), id="traffic-" + number, class_name="version-traffic"),
        rx.table.cell(rx.text(version.served), id="served-" + number, class_name="version-served"),
        rx.table.cell(
            rx.cond(
                version.stage != "production",
                rx.button(
                    "Promote",
                    size="1",
                    variant="soft",
                    disabled=~AuthState.is_staff,
                    on_click=ModelsState.promote(version.number),
                    id="promote-" + number,
                ),
            )
        ),
        id="version-row-" + number,
        class_name="version-row",
    )


def _canary_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Canary", size="4"),
            rx.cond(
                ModelsState.canary_target,
                rx.vstack(
                    rx.text(
                        "Share of traffic for version ",
                        rx.text.strong(ModelsState.canary_target),
                        ": ",
                        rx.text.strong(ModelsState.canary_draft, "%", id="canary-draft"),
                        size="2",
                    ),
                    rx.slider(
                        default_value=[ModelsState.canary_draft],
                        min=0,
                        max=100,
                        step=1,
                        on_value_commit=ModelsState.move_canary,
                        disabled=~AuthState.is_staff,
                        key=ModelsState.slider_key,
                        width="320px",
                        id="canary-slider",
                    ),
                    rx.button(
                        "Apply",
                        size="2",
                        disabled=~AuthState.is_staff,
                        on_click=ModelsState.apply_canary,
                        id="canary-apply",
                    ),
                    spacing="3",
                ),
                rx.text("No staging version: create one (below) to send it a share of the traffic.", size="2"),
            ),
            spacing="3",
        ),
        width="100%",
    )


def _label_editor() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading("New label set", size="4"),
                rx.text(
                    "One label a line, as `name: description`. Creates a staging version; promote it when it does well.",
                    size="2",
                    color_scheme="gray",
                ),
                rx.text_area(
                    default_value=ModelsState.labels_text,
                    name="labels",
                    rows="8",
                    width="100%",
                    disabled=~AuthState.is_staff,
                    key=ModelsState.model_name + "-" + ModelsState.production_version.to_string(),
                    id="labels-editor",
                ),
                rx.button("Create staging version", type="submit", disabled=~AuthState.is_staff, id="create-version"),
                spacing="3",
                width="100%",
            ),
            on_submit=ModelsState.create_version,
            reset_on_submit=False,
        ),
        width="100%",
    )


def _event_row(event: EventRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(event.at),
        rx.table.cell(event.user),
        rx.table.cell(rx.badge(event.action, variant="soft")),
        rx.table.cell(event.version),
        rx.table.cell(rx.text(event.detail, size="1")),
        class_name="registry-event",
    )


def _registry_view() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            _model_select(ModelsState.models, ModelsState.model_name, ModelsState.choose_model, "models-model"),
            rx.badge(
                rx.cond(
                    ModelsState.production_version,
                    "production: version " + ModelsState.production_version.to_string(),
                    "no production version",
                ),
                color_scheme="green",
                id="production-version",
            ),
            rx.button(
                "Roll back",
                color_scheme="red",
                variant="soft",
                disabled=~AuthState.is_staff,
                on_click=ModelsState.rollback,
                id="rollback",
            ),
            align="center",
        ),
        rx.cond(
            ~AuthState.is_staff,
            rx.callout(
                "You can watch the registry; changing it needs the staff role.",
                icon="eye",
                color_scheme="gray",
                id="read-only-note",
            ),
        ),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in ("Version", "Stage", "Source", "Labels", "Metrics", "Created", "Traffic", "Served", "")
                    ]
                )
            ),
            rx.table.body(rx.foreach(ModelsState.versions, _version_row)),
            width="100%",
            id="versions",
        ),
        rx.cond(
            ModelsState.model_kind == "classifier",
            rx.grid(_canary_card(), _label_editor(), columns="2", spacing="4", width="100%"),
        ),
        rx.heading("Recent registry events", size="4"),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[rx.table.column_header_cell(h) for h in ("At (UTC)", "User", "Action", "Version", "Detail")]
                )
            ),
            rx.table.body(rx.foreach(ModelsState.events, _event_row)),
            width="100%",
            id="registry-events",
        ),
        spacing="5",
        width="100%",
    )


def models_page() -> rx.Component:
    return shell(
        "Models",
        rx.cond(
            ModelsState.model_name,
            _registry_view(),
            rx.callout("No models are registered yet.", icon="info", color_scheme="gray", id="no-models"),
        ),
        on_mount=ModelsState.watch,
        on_unmount=ModelsState.stop_watching,
    )
