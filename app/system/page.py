import reflex as rx

from app.system.backup_page import backup_panel
from app.system.state import ComponentView, SystemState
from app.system.storage_page import storage_section
from app.ui.layout import shell


def _component_card(component: ComponentView) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.icon(rx.cond(component.ok, "circle-check", "circle-x"), color=rx.cond(component.ok, "green", "red")),
                rx.heading(component.name, size="4"),
                rx.badge(
                    rx.cond(component.ok, "up", "down"),
                    color_scheme=rx.cond(component.ok, "green", "red"),
                    id=f"status-{component.name}",
                ),
                align="center",
            ),
            rx.cond(
                component.error, rx.text(component.error, color_scheme="red", size="2", id=f"error-{component.name}")
            ),
            rx.data_list.root(
                rx.foreach(
                    component.details,
                    lambda pair: rx.data_list.item(rx.data_list.label(pair[0]), rx.data_list.value(pair[1])),
                ),
                size="1",
            ),
            spacing="2",
        ),
        width="100%",
        id=f"component-{component.name}",
    )


def system_page() -> rx.Component:
    return shell(
        "System",
        rx.hstack(
            rx.badge(
                rx.cond(SystemState.all_ok, "All components up", "Something is down"),
                color_scheme=rx.cond(SystemState.all_ok, "green", "red"),
                size="3",
                id="system-summary",
            ),
            rx.text("Checked ", SystemState.checked_at, size="1", color_scheme="gray"),
            rx.cond(
                ~SystemState.watching,
                rx.button("Resume live updates", size="1", variant="soft", on_click=SystemState.watch),
            ),
            align="center",
        ),
        rx.grid(rx.foreach(SystemState.components, _component_card), columns="2", spacing="4", width="100%"),
        storage_section(),
        backup_panel(),
        on_mount=SystemState.watch,
        on_unmount=SystemState.stop_watching,
    )
