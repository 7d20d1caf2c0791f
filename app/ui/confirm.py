"""A destructive action's confirmation: the trigger opens a dialog that says what goes, with
"Keep it" and a red "Delete"."""

import reflex as rx


def confirm_delete(
    trigger: rx.Component,
    title: list,
    consequence: str,
    on_confirm,
    **confirm_props,
) -> rx.Component:
    """`title` parts (text and vars) ask the question; `on_confirm` is the event the Delete
    button fires; `confirm_props` (an id or class_name for tests) go on that button."""
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(trigger),
        rx.alert_dialog.content(
            rx.alert_dialog.title(*title),
            rx.alert_dialog.description(consequence),
            rx.hstack(
                rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(rx.button("Delete", color_scheme="red", on_click=on_confirm, **confirm_props)),
                justify="end",
                spacing="3",
                margin_top="16px",
            ),
        ),
    )
