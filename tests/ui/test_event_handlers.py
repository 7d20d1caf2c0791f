"""Every Reflex event handler that reads or changes data checks the caller's role."""

import app.app  # noqa: F401 - builds every page and state
from app.auth.state import AuthState

# Handlers that need no role: they are the check itself, touch no data, or check inside.
OPEN_HANDLERS = {
    "AuthState": {"setvar", "open_page", "sign_out"},
    "LoginState": {"setvar"},
    "AskState": {"setvar"},
    "UsersState": {"setvar", "dismiss_notice"},
    "KeysState": {"setvar", "dismiss_key"},
    # watch() re-checks the staff role on every refresh.
    "SystemState": {"setvar", "watch", "stop_watching"},
    # watch() re-checks the admin role on every refresh.
    "BackupState": {"setvar", "watch", "stop_watching"},
    "JobsState": {"setvar", "watch", "stop_watching"},
    # watch() re-checks the viewer role on every refresh.
    "ModelsState": {"setvar", "watch", "stop_watching"},
    "PredictState": {"setvar"},
    # watch() re-checks the viewer role on every refresh.
    "KnowledgeState": {"setvar", "watch", "stop_watching"},
    "DatasetsState": {"setvar"},
    # watch() re-checks the viewer role on every refresh.
    "ExperimentsState": {"setvar", "watch", "stop_watching"},
    "SchedulesState": {"setvar"},
    # watch() re-checks the viewer role on every refresh.
    "BatchState": {"setvar", "watch", "stop_watching"},
    "MonitoringState": {"setvar"},
    "DriftState": {"setvar"},
    "HomeState": {"setvar"},
    "AuditState": {"setvar"},
    "AlertsState": {"setvar"},
    "WebhooksState": {"setvar"},
    "UsageState": {"setvar"},
}


def all_states(state=AuthState):
    yield state
    for substate in state.get_substates():
        yield from all_states(substate)


def test_every_data_handler_is_guarded_by_a_role():
    unguarded = {
        f"{state.__name__}.{name}"
        for state in all_states()
        for name, handler in state.event_handlers.items()
        if not hasattr(handler.fn, "minimum_role") and name not in OPEN_HANDLERS.get(state.__name__, set())
    }
    assert unguarded == set()


def test_admin_pages_handlers_need_admin_and_jobs_handlers_staff():
    states = {state.__name__: state for state in all_states()}
    for name in ("UsersState", "KeysState", "AuditState", "WebhooksState", "UsageState", "BackupState"):
        for handler_name, handler in states[name].event_handlers.items():
            if hasattr(handler.fn, "minimum_role"):
                assert handler.fn.minimum_role.value == "admin", (name, handler_name)
    assert {
        h.fn.minimum_role.value for h in states["JobsState"].event_handlers.values() if hasattr(h.fn, "minimum_role")
    } == {"staff"}


def test_clients_cannot_set_state_vars_directly():
    """setvar needs a generated setter; none exist, so a client cannot forge its role or page access."""
    for state in all_states():
        assert not [name for name in state.event_handlers if name.startswith("set_")], state.__name__
