"""The Home page: the signed-in user's morning dashboard, one card per section, each linking
to its page and saying what to do when it is empty. Ids are stable for the browser tests:
home-alerts, home-conversations, home-knowledge, home-models, home-jobs."""

import reflex as rx

from app.auth.state import AuthState
from app.home.state import (
    AlertLine,
    ConversationLink,
    DocumentLine,
    HomeState,
    JobRow,
    KnowledgeBaseLine,
    ModelLine,
)
from app.ui.layout import shell


def _section(title: str, href: str, link_text: str, body: rx.Component, element_id: str) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(title, size="3", weight="bold"),
                rx.spacer(),
                rx.link(link_text, href=href, size="2", id=f"{element_id}-link"),
                width="100%",
                align="center",
            ),
            body,
            spacing="3",
            width="100%",
        ),
        id=element_id,
        width="100%",
    )


def _empty(text: str) -> rx.Component:
    return rx.text(text, size="2", color_scheme="gray")


def _listed(items, row, empty_text: str) -> rx.Component:
    return rx.cond(items, rx.vstack(rx.foreach(items, row), spacing="2", width="100%"), _empty(empty_text))


def _alert(alert: AlertLine) -> rx.Component:
    return rx.callout(
        rx.text(rx.text.strong(alert.model), " · ", alert.kind, " · since ", alert.opened, ": ", alert.message),
        icon="triangle-alert",
        color_scheme="amber",
        size="1",
        width="100%",
    )


def _conversation(conversation: ConversationLink) -> rx.Component:
    return rx.hstack(
        rx.link(conversation.title, href=conversation.href, size="2"),
        rx.spacer(),
        rx.text(conversation.updated, size="1", color_scheme="gray"),
        width="100%",
    )


def _knowledge_base(knowledge_base: KnowledgeBaseLine) -> rx.Component:
    return rx.hstack(
        rx.text(knowledge_base.name, size="2"),
        rx.cond(
            knowledge_base.ingesting > 0,
            rx.badge(knowledge_base.ingesting.to_string() + " ingesting", color_scheme="amber"),
        ),
        align="center",
    )


def _document(document: DocumentLine) -> rx.Component:
    return rx.text(
        document.filename, " in ", document.knowledge_base, " (", document.status, ")", size="1", color_scheme="gray"
    )


def _model(model: ModelLine) -> rx.Component:
    return rx.hstack(
        rx.link(model.name, href="/predict", size="2", weight="bold"),
        rx.badge(model.kind, variant="soft"),
        rx.text(model.version, size="2"),
        rx.cond(model.canary, rx.text("canary ", model.canary, size="1", color_scheme="gray")),
        rx.spacer(),
        rx.text(model.logged_today.to_string() + " logged today", size="2"),
        width="100%",
        align="center",
    )


def _job(job: JobRow) -> rx.Component:
    return rx.hstack(
        rx.badge(job.status, color_scheme=rx.cond(job.status == "failed", "red", "blue")),
        rx.text(job.title, size="2", weight="bold"),
        rx.text(job.detail, size="1", color_scheme="gray", trim="both"),
        rx.spacer(),
        rx.text(job.when, size="1", color_scheme="gray"),
        width="100%",
        align="center",
    )


def _alerts() -> rx.Component:
    return _section(
        "Open alerts",
        "/monitoring",
        "Monitoring",
        _listed(HomeState.alerts, _alert, "No open alerts: every model is within its thresholds."),
        "home-alerts",
    )


def _conversations() -> rx.Component:
    return _section(
        "Your recent conversations",
        "/ask",
        "Ask a question",
        _listed(HomeState.conversations, _conversation, "No conversations yet — ask a question on the Ask page."),
        "home-conversations",
    )


def _knowledge() -> rx.Component:
    return _section(
        "Knowledge bases you can ask",
        "/knowledge",
        "Knowledge",
        rx.vstack(
            _listed(
                HomeState.knowledge_bases,
                _knowledge_base,
                rx.cond(
                    AuthState.is_staff,
                    "No knowledge bases yet — create one on the Knowledge page.",
                    "No knowledge bases yet — staff can create one on the Knowledge page.",
                ),
            ),
            rx.cond(
                HomeState.ingesting,
                rx.vstack(
                    rx.text("Still ingesting (not searchable yet)", size="2", weight="medium"),
                    rx.foreach(HomeState.ingesting, _document),
                    rx.cond(HomeState.more_ingesting, _empty(HomeState.more_ingesting)),
                    spacing="1",
                ),
            ),
            spacing="3",
            width="100%",
        ),
        "home-knowledge",
    )


def _models() -> rx.Component:
    return _section(
        "Models in production",
        "/models",
        "Models",
        rx.vstack(
            _listed(
                HomeState.models,
                _model,
                "No model is in production — promote a version on the Models page.",
            ),
            rx.cond(HomeState.models, _empty(HomeState.traffic_note)),
            spacing="2",
            width="100%",
        ),
        "home-models",
    )


def _jobs() -> rx.Component:
    return _section(
        "Jobs",
        "/jobs",
        "Jobs",
        rx.vstack(
            rx.text("Running", size="2", weight="medium"),
            _listed(HomeState.running_jobs, _job, "Nothing running — start work on the Jobs page."),
            rx.text("Failed recently", size="2", weight="medium"),
            _listed(HomeState.failed_jobs, _job, "No failed jobs."),
            spacing="2",
            width="100%",
        ),
        "home-jobs",
    )


def home_page() -> rx.Component:
    return shell(
        "Home",
        rx.text(
            "Good to see you, ",
            rx.text.strong(rx.cond(AuthState.user_name, AuthState.user_name, AuthState.user_email)),
            ".",
            size="3",
        ),
        rx.cond(
            HomeState.loaded,
            rx.vstack(
                _alerts(),
                rx.grid(
                    _conversations(),
                    _knowledge(),
                    columns=rx.breakpoints(initial="1", md="2"),
                    spacing="4",
                    width="100%",
                ),
                _models(),
                rx.cond(AuthState.is_staff, _jobs()),
                spacing="4",
                width="100%",
            ),
            rx.spinner(),
        ),
    )
