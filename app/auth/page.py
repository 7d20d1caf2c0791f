import reflex as rx
from reflex_components_core.el.elements.base import BaseHTML

from app.auth.cookies import SIGN_IN_PATH
from app.auth.oidc import COMPANY_SIGN_IN_PATH
from app.auth.oidc_state import CompanySignInState
from app.auth.state import KeyRow, KeysState, LoginState, UserRow, UsersState
from app.ui.layout import shell

ROLES = ["viewer", "staff", "admin"]


def _company_sign_in() -> rx.Component:
    """When OIDC is configured: the way in for everyone but the break-glass admin. Its failures
    come back as LoginState.error codes."""
    return rx.cond(
        CompanySignInState.company_sign_in_enabled,
        rx.vstack(
            # A plain link: the browser leaves the app for the provider (no client-side routing),
            # sending this page's address, whose `next` says where to go after signing in.
            rx.button(
                rx.el.a(CompanySignInState.company_sign_in_label, href=COMPANY_SIGN_IN_PATH),
                as_child=True,
                width="100%",
                id="company-sign-in",
            ),
            rx.text("or with a password", size="1", color_scheme="gray"),
            align="center",
            width="100%",
        ),
    )


class _PostForm(BaseHTML):
    """A form the browser submits itself: rx.form always stops the submission and sends it
    over the websocket instead, where no response could set an HttpOnly cookie."""

    tag = "form"
    action: rx.Var[str]
    method: rx.Var[str]


def login_page() -> rx.Component:
    return rx.center(
        rx.card(
            _PostForm.create(
                rx.vstack(
                    rx.heading("Sign in to Strata", size="6"),
                    rx.cond(
                        LoginState.error,
                        rx.callout(LoginState.error, icon="triangle-alert", color_scheme="red", id="login-error"),
                    ),
                    _company_sign_in(),
                    rx.input(placeholder="Email", name="email", type="email", required=True, width="100%", id="email"),
                    rx.input(
                        placeholder="Password",
                        name="password",
                        type="password",
                        required=True,
                        width="100%",
                        id="password",
                    ),
                    rx.button("Sign in", type="submit", width="100%", id="sign-in"),
                    spacing="3",
                    width="320px",
                ),
                action=SIGN_IN_PATH,
                method="post",
            ),
        ),
        height="100vh",
    )


def _user_row(user: UserRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(user.email),
        rx.table.cell(user.name),
        rx.table.cell(
            rx.select(ROLES, value=user.role, on_change=lambda role: UsersState.change_role(user.id, role), size="1")
        ),
        rx.table.cell(
            rx.switch(checked=user.active, on_change=lambda active: UsersState.change_active(user.id, active))
        ),
        rx.table.cell(user.created),
        rx.table.cell(
            rx.button("Reset password", size="1", variant="soft", on_click=UsersState.reset_password(user.id))
        ),
        id=f"user-{user.email}",
    )


def users_page() -> rx.Component:
    return shell(
        "Users",
        rx.form(
            rx.hstack(
                rx.input(placeholder="email", name="email", required=True, id="new-user-email"),
                rx.input(placeholder="name", name="name", id="new-user-name"),
                rx.select(ROLES, name="role", default_value="viewer", id="new-user-role"),
                rx.input(
                    placeholder="password (8+ characters)",
                    name="password",
                    type="password",
                    required=True,
                    id="new-user-password",
                ),
                rx.button("Create user", type="submit", id="create-user"),
                wrap="wrap",
            ),
            on_submit=UsersState.create,
            reset_on_submit=True,
        ),
        rx.cond(
            UsersState.password_notice,
            rx.callout(
                rx.hstack(
                    rx.code(UsersState.password_notice, id="password-notice"),
                    rx.button("Done", size="1", on_click=UsersState.dismiss_notice),
                ),
                title="Shown once: pass it on securely",
                icon="key-round",
            ),
        ),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[rx.table.column_header_cell(h) for h in ("Email", "Name", "Role", "Active", "Created", "")]
                )
            ),
            rx.table.body(rx.foreach(UsersState.users, _user_row)),
            width="100%",
        ),
    )


def _key_row(key: KeyRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(key.prefix + "…")),
        rx.table.cell(key.name),
        rx.table.cell(key.owner),
        rx.table.cell(key.created),
        rx.table.cell(key.last_used),
        rx.table.cell(
            rx.cond(
                key.revoked,
                rx.badge("revoked", color_scheme="gray"),
                rx.button("Revoke", size="1", color_scheme="red", variant="soft", on_click=KeysState.revoke(key.id)),
            )
        ),
    )


def keys_page() -> rx.Component:
    return shell(
        "API keys",
        rx.form(
            rx.hstack(
                rx.select(KeysState.owner_emails, name="owner", placeholder="owner", id="new-key-owner"),
                rx.input(placeholder="what is it for?", name="name", id="new-key-name"),
                rx.button("Create key", type="submit", id="create-key"),
            ),
            on_submit=KeysState.create,
            reset_on_submit=True,
        ),
        rx.cond(
            KeysState.created_key,
            rx.callout(
                rx.hstack(
                    rx.code(KeysState.created_key, id="created-key"),
                    rx.button("Copy", size="1", on_click=rx.set_clipboard(KeysState.created_key)),
                    rx.button("Done", size="1", variant="soft", on_click=KeysState.dismiss_key),
                ),
                title="Shown once: store it now. Strata keeps only its hash.",
                icon="key-round",
            ),
        ),
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    *[rx.table.column_header_cell(h) for h in ("Key", "Name", "Owner", "Created", "Last used", "")]
                )
            ),
            rx.table.body(rx.foreach(KeysState.keys, _key_row)),
            width="100%",
        ),
    )
