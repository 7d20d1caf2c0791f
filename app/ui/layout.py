"""The app shell: sidebar navigation for the user's role, the user, sign out."""

from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState
from app.core.roles import Role


@dataclass(frozen=True)
class NavItem:
    label: str
    route: str
    icon: str
    minimum_role: Role


NAV = (
    NavItem("Home", "/", "house", Role.viewer),
    NavItem("Ask", "/ask", "message-circle-question", Role.viewer),
    NavItem("Knowledge", "/knowledge", "library", Role.viewer),
    NavItem("Predict", "/predict", "sparkles", Role.viewer),
    NavItem("Models", "/models", "boxes", Role.viewer),
    NavItem("Datasets", "/datasets", "table", Role.viewer),
    NavItem("Experiments", "/experiments", "flask-conical", Role.viewer),
    NavItem("Batch", "/batch", "layers", Role.viewer),
    NavItem("Jobs", "/jobs", "list-checks", Role.staff),
    NavItem("Monitoring", "/monitoring", "chart-line", Role.staff),
    NavItem("Schedules", "/schedules", "calendar-clock", Role.staff),
    NavItem("System", "/system", "activity", Role.staff),
    NavItem("Users", "/admin/users", "users", Role.admin),
    NavItem("API keys", "/admin/keys", "key-round", Role.admin),
    NavItem("Usage", "/admin/usage", "chart-column", Role.admin),
    NavItem("Audit log", "/admin/audit", "scroll-text", Role.admin),
    NavItem("Webhooks", "/admin/webhooks", "webhook", Role.admin),
)


def _visible_to(minimum: Role) -> rx.Var[bool]:
    return {Role.viewer: True, Role.staff: AuthState.is_staff, Role.admin: AuthState.is_admin}[minimum]


def _nav_link(item: NavItem) -> rx.Component:
    active = AuthState.router.page.path == item.route
    link = rx.link(
        rx.hstack(rx.icon(item.icon, size=16), rx.text(item.label, size="2"), align="center", spacing="2"),
        href=item.route,
        underline="none",
        color_scheme=rx.cond(active, "iris", "gray"),
        weight=rx.cond(active, "bold", "regular"),
        padding_y="6px",
        id=f"nav-{item.route.strip('/').replace('/', '-') or 'home'}",
    )
    visible = _visible_to(item.minimum_role)
    return link if visible is True else rx.cond(visible, link)


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.image(src="/logo.svg", alt="", width="28px", height="28px", id="shell-logo"),
            rx.heading("Strata", size="5"),
            align="center",
            spacing="2",
            margin_bottom="4",
        ),
        *[_nav_link(item) for item in NAV],
        rx.spacer(),
        rx.divider(),
        rx.vstack(
            rx.text(AuthState.user_name, weight="bold", size="2", id="shell-user-name"),
            rx.text(AuthState.user_email, size="1", color_scheme="gray"),
            rx.badge(AuthState.user_role, id="shell-user-role"),
            rx.button("Sign out", on_click=AuthState.sign_out, variant="soft", size="1", id="sign-out"),
            spacing="1",
            align="start",
        ),
        width="220px",
        min_height="100vh",
        padding="20px",
        border_right="1px solid var(--gray-5)",
        align="start",
        spacing="1",
    )


def favicon_links() -> list[rx.Component]:
    """The icons of every page: files in assets/, which Reflex serves at the root."""
    return [
        rx.el.link(rel="icon", href="/favicon.ico", sizes="16x16 32x32 48x48"),
        rx.el.link(rel="icon", href="/logo.svg", type="image/svg+xml"),
    ]


def refused() -> rx.Component:
    return rx.callout(
        AuthState.denied_reason,
        title="Not allowed",
        icon="shield-alert",
        color_scheme="red",
        id="access-denied",
    )


def shell(title: str, *children: rx.Component, **content_props) -> rx.Component:
    """A signed-in page. Its content renders (and its on_mount fires) only once on_load allowed the user."""
    return rx.hstack(
        sidebar(),
        rx.box(
            rx.heading(title, size="7", margin_bottom="5"),
            rx.match(
                AuthState.access,
                ("allowed", rx.vstack(*children, spacing="5", width="100%", **content_props)),
                ("denied", refused()),
                rx.spinner(),
            ),
            padding="32px",
            width="100%",
            max_width="1200px",
        ),
        spacing="0",
        align="start",
        width="100%",
    )


def page_guard(minimum: Role):
    """The on_load event that checks the session and role of a page's visitor."""
    return AuthState.open_page(minimum.value)
