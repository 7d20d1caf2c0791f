"""The System page's Storage section (admins): what each store holds and how big it is, and the
retention jobs' settings and last runs (app/system/storage.py)."""

import reflex as rx

from app.system.state import RetentionRunView, StoreView, SystemState


def _pairs(pairs) -> rx.Component:
    return rx.data_list.root(
        rx.foreach(pairs, lambda pair: rx.data_list.item(rx.data_list.label(pair[0]), rx.data_list.value(pair[1]))),
        size="1",
    )


def _store_card(store: StoreView) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading(store.name, size="4"),
                rx.badge(store.size, size="2", id=f"store-size-{store.name}"),
                align="center",
            ),
            rx.cond(store.error, rx.text(store.error, color_scheme="red", size="2", id=f"store-error-{store.name}")),
            _pairs(store.details),
            rx.table.root(
                rx.table.body(
                    rx.foreach(
                        store.holds,
                        lambda item: rx.table.row(
                            rx.table.cell(item[0]), rx.table.cell(item[1]), rx.table.cell(item[2])
                        ),
                    )
                ),
                size="1",
                width="100%",
            ),
            spacing="2",
        ),
        width="100%",
        id=f"store-{store.name}",
    )


def _retention_row(run: RetentionRunView) -> rx.Component:
    return rx.table.row(rx.table.cell(run.job), rx.table.cell(run.ran_at), rx.table.cell(run.removed))


def _retention() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Retention", size="4"),
            _pairs(SystemState.retention_policy),
            rx.cond(SystemState.retention_error, rx.text(SystemState.retention_error, color_scheme="red", size="2")),
            rx.cond(
                SystemState.retention_runs,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            rx.table.column_header_cell("Job"),
                            rx.table.column_header_cell("Last run"),
                            rx.table.column_header_cell("Removed"),
                        )
                    ),
                    rx.table.body(rx.foreach(SystemState.retention_runs, _retention_row)),
                    size="1",
                    width="100%",
                ),
                rx.text("No retention job has run yet.", size="2", color_scheme="gray"),
            ),
            spacing="2",
        ),
        width="100%",
        id="retention",
    )


def _section() -> rx.Component:
    """Admins only: what each store holds and how big it is (gathered on opening and on Refresh)."""
    return rx.vstack(
        rx.hstack(
            rx.heading("Storage", size="5"),
            rx.text("Checked ", SystemState.storage_checked_at, size="1", color_scheme="gray"),
            rx.button(
                "Refresh",
                size="1",
                variant="soft",
                loading=SystemState.storage_loading,
                on_click=SystemState.load_storage,
                id="storage-refresh",
            ),
            align="center",
        ),
        rx.grid(rx.foreach(SystemState.stores, _store_card), columns="2", spacing="4", width="100%"),
        _retention(),
        width="100%",
        spacing="3",
        on_mount=SystemState.load_storage,
        id="storage",
    )


def storage_section() -> rx.Component:
    return rx.cond(SystemState.is_admin, _section())
