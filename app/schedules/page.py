import reflex as rx

from app.schedules.state import ACTIONS, ScheduleRow, SchedulesState
from app.ui.confirm import confirm_delete
from app.ui.layout import shell

STATUS_COLORS = {"queued": "gray", "running": "blue", "succeeded": "green", "failed": "red", "cancelled": "orange"}


def _last_result(row: ScheduleRow) -> rx.Component:
    return rx.vstack(
        rx.text(row.last_outcome, size="2", class_name="schedule-outcome"),
        rx.cond(
            row.last_job_id,
            rx.hstack(
                rx.link("Job ", row.last_job_id[:8], href=row.jobs_link, size="1", class_name="schedule-job-link"),
                rx.badge(
                    row.last_job_status,
                    color_scheme=rx.match(row.last_job_status, *STATUS_COLORS.items(), "gray"),
                    class_name="schedule-job-status",
                ),
                align="center",
            ),
        ),
        rx.text("Last fired ", row.last_fired, size="1", color_scheme="gray"),
        spacing="1",
    )


def _buttons(row: ScheduleRow) -> rx.Component:
    return rx.hstack(
        rx.cond(
            row.paused,
            rx.button(
                "Resume", size="1", variant="soft", on_click=SchedulesState.resume(row.id), class_name="schedule-resume"
            ),
            rx.button(
                "Pause", size="1", variant="soft", on_click=SchedulesState.pause(row.id), class_name="schedule-pause"
            ),
        ),
        confirm_delete(
            rx.button("Delete", size="1", variant="soft", color_scheme="red", class_name="schedule-delete"),
            ["Delete the schedule ", row.name, "?"],
            "A run it already started goes on.",
            SchedulesState.delete(row.id),
            class_name="schedule-delete-confirm",
        ),
    )


def _schedule_row(row: ScheduleRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(row.name, weight="bold", class_name="schedule-name"),
                rx.text(row.what, size="1", color_scheme="gray"),
                rx.text("by ", row.created_by, size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        rx.table.cell(rx.badge(row.action)),
        rx.table.cell(rx.code(row.cron, class_name="schedule-cron")),
        rx.table.cell(rx.text(row.next_run, class_name="schedule-next-run")),
        rx.table.cell(_last_result(row)),
        rx.table.cell(_buttons(row)),
        id=f"schedule-{row.id}",
        class_name="schedule-row",
        data_name=row.name,
    )


def _schedules() -> rx.Component:
    return rx.cond(
        SchedulesState.schedules,
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[
                        rx.table.column_header_cell(h)
                        for h in ("Schedule", "Action", "Cron (UTC)", "Next run (UTC)", "Last result", "")
                    ]
                )
            ),
            rx.table.body(rx.foreach(SchedulesState.schedules, _schedule_row)),
            width="100%",
            id="schedule-list",
        ),
        rx.text("No schedule yet.", color_scheme="gray", id="schedule-none"),
    )


def _text_field(label: str, field: str, value: rx.Var[str], element_id: str, placeholder: str = "") -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="bold"),
        rx.input(
            value=value,
            placeholder=placeholder,
            on_change=lambda text: SchedulesState.edit(field, text),
            id=element_id,
            width="100%",
        ),
        spacing="1",
        width="100%",
    )


def _choice(label: str, field: str, options, value: rx.Var[str], element_id: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="bold"),
        rx.select(
            options,
            value=value,
            on_change=lambda chosen: SchedulesState.edit(field, chosen),
            id=element_id,
            width="100%",
        ),
        spacing="1",
        width="100%",
    )


def _create_form() -> rx.Component:
    training = SchedulesState.form_action == "training"
    return rx.card(
        rx.vstack(
            rx.heading("New schedule", size="3"),
            rx.hstack(
                _text_field("Name", "form_name", SchedulesState.form_name, "schedule-form-name", "Nightly rescoring"),
                rx.vstack(
                    rx.text("Action", size="2", weight="bold"),
                    rx.select(
                        ACTIONS,
                        value=SchedulesState.form_action,
                        on_change=SchedulesState.choose_action,
                        id="schedule-form-action",
                        width="100%",
                    ),
                    spacing="1",
                    width="100%",
                ),
                _text_field("Cron (UTC)", "form_cron", SchedulesState.form_cron, "schedule-form-cron", "0 3 * * *"),
                width="100%",
                spacing="3",
            ),
            rx.text(SchedulesState.cron_preview, size="1", color_scheme="gray", id="schedule-cron-preview"),
            rx.hstack(
                _choice(
                    "Dataset (its newest version at each run)",
                    "form_dataset",
                    SchedulesState.dataset_names,
                    SchedulesState.form_dataset,
                    "schedule-form-dataset",
                ),
                _choice(
                    "Text column",
                    "form_text_column",
                    SchedulesState.columns,
                    SchedulesState.form_text_column,
                    "schedule-form-text-column",
                ),
                rx.cond(
                    training,
                    _choice(
                        "Label column",
                        "form_label_column",
                        SchedulesState.columns,
                        SchedulesState.form_label_column,
                        "schedule-form-label-column",
                    ),
                ),
                width="100%",
                spacing="3",
            ),
            rx.cond(
                training,
                _text_field(
                    "Model name (the new version is registered under it)",
                    "form_model_name",
                    SchedulesState.form_model_name,
                    "schedule-form-model-name",
                    "spam-filter",
                ),
                rx.hstack(
                    _choice(
                        "Model",
                        "form_model",
                        SchedulesState.model_names,
                        SchedulesState.form_model,
                        "schedule-form-model",
                    ),
                    _text_field(
                        "Model version (empty: production)",
                        "form_model_version",
                        SchedulesState.form_model_version,
                        "schedule-form-model-version",
                    ),
                    width="100%",
                    spacing="3",
                ),
            ),
            rx.button("Create schedule", on_click=SchedulesState.create, id="schedule-create"),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def schedules_page() -> rx.Component:
    return shell(
        "Schedules",
        rx.text(
            "Schedules rescore or retrain on the newest version of a dataset. Times are UTC. A schedule whose"
            " previous run is still going skips its turn; one missed while no worker ran fires once when a"
            " worker is back.",
            size="2",
            color_scheme="gray",
        ),
        rx.hstack(
            rx.spacer(),
            rx.button("Refresh", variant="soft", on_click=SchedulesState.load, id="schedule-refresh"),
            width="100%",
        ),
        _schedules(),
        _create_form(),
    )
