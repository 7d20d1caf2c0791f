"""The Knowledge page's handlers check roles: viewers may only look, staff manage."""

import app.app  # noqa: F401 - builds every page and state
from app.knowledge.state import KnowledgeState

VIEWER_HANDLERS = {"load", "select"}
STAFF_HANDLERS = {"create", "rename", "delete_knowledge_base", "delete_document", "upload"}


def test_viewers_may_look_and_only_staff_may_manage():
    roles = {
        name: handler.fn.minimum_role.value
        for name, handler in KnowledgeState.event_handlers.items()
        if hasattr(handler.fn, "minimum_role")
    }
    assert roles == {**dict.fromkeys(VIEWER_HANDLERS, "viewer"), **dict.fromkeys(STAFF_HANDLERS, "staff")}
