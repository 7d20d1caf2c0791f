"""Composition root of the web process: pages, their guards, and the API."""

import reflex as rx

from app.api import build_api
from app.ask.page import ask_page
from app.ask.state import AskState
from app.audit.page import audit_page
from app.audit.state import AuditState
from app.auth.page import keys_page, login_page, users_page
from app.auth.state import KeysState, UsersState
from app.batch.page import batch_page
from app.batch.state import BatchState
from app.core.logging import configure_logging
from app.core.roles import Role
from app.core.settings import get_settings
from app.datasets.page import datasets_page
from app.datasets.state import DatasetsState
from app.home.page import home_page
from app.home.state import HomeState
from app.jobs_board.page import jobs_page
from app.knowledge.page import knowledge_page
from app.knowledge.state import KnowledgeState
from app.monitoring.page import monitoring_page
from app.monitoring.state import MonitoringState
from app.predict.page import models_page, predict_page
from app.predict.state import ModelsState, PredictState
from app.schedules.page import schedules_page
from app.schedules.state import SchedulesState
from app.system.page import system_page
from app.training.page import experiments_page
from app.training.state import ExperimentsState
from app.ui.layout import favicon_links, page_guard
from app.usage.page import usage_page
from app.usage.state import UsageState
from app.webhooks.page import webhooks_page
from app.webhooks.state import WebhooksState

configure_logging(get_settings().log_level)

app = rx.App(api_transformer=build_api(), head_components=favicon_links())
# Given STRATA_CORS_ORIGINS, Reflex's socket server would accept only those origins, not the
# app's own host (which Strata cannot know in advance): app.core.http.SameOriginWebSockets
# checks websocket origins instead ([] turns the socket server's own check off).
app.sio.eio.cors_allowed_origins = []
app.add_page(login_page, route="/login", title="Sign in · Strata")
app.add_page(home_page, route="/", title="Strata", on_load=[page_guard(Role.viewer), HomeState.load])
app.add_page(ask_page, route="/ask", title="Ask · Strata", on_load=[page_guard(Role.viewer), AskState.load])
app.add_page(
    knowledge_page,
    route="/knowledge",
    title="Knowledge · Strata",
    on_load=[page_guard(Role.viewer), KnowledgeState.load],
)
app.add_page(
    datasets_page,
    route="/datasets",
    title="Datasets · Strata",
    on_load=[page_guard(Role.viewer), DatasetsState.load],
)
app.add_page(jobs_page, route="/jobs", title="Jobs · Strata", on_load=page_guard(Role.staff))
app.add_page(
    monitoring_page,
    route="/monitoring",
    title="Monitoring · Strata",
    on_load=[page_guard(Role.staff), MonitoringState.load],
)
app.add_page(system_page, route="/system", title="System · Strata", on_load=page_guard(Role.staff))
app.add_page(
    users_page, route="/admin/users", title="Users · Strata", on_load=[page_guard(Role.admin), UsersState.load]
)
app.add_page(
    keys_page, route="/admin/keys", title="API keys · Strata", on_load=[page_guard(Role.admin), KeysState.load]
)
app.add_page(
    usage_page, route="/admin/usage", title="Usage · Strata", on_load=[page_guard(Role.admin), UsageState.load]
)
app.add_page(
    audit_page, route="/admin/audit", title="Audit log · Strata", on_load=[page_guard(Role.admin), AuditState.load]
)
app.add_page(
    webhooks_page,
    route="/admin/webhooks",
    title="Webhooks · Strata",
    on_load=[page_guard(Role.admin), WebhooksState.load],
)
app.add_page(
    predict_page, route="/predict", title="Predict · Strata", on_load=[page_guard(Role.viewer), PredictState.load]
)
app.add_page(models_page, route="/models", title="Models · Strata", on_load=[page_guard(Role.viewer), ModelsState.load])
app.add_page(
    schedules_page,
    route="/schedules",
    title="Schedules · Strata",
    on_load=[page_guard(Role.staff), SchedulesState.load],
)
app.add_page(
    experiments_page,
    route="/experiments",
    title="Experiments · Strata",
    on_load=[page_guard(Role.viewer), ExperimentsState.load],
)
app.add_page(batch_page, route="/batch", title="Batch · Strata", on_load=[page_guard(Role.viewer), BatchState.load])
