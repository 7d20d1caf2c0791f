"""The Ask page's handlers, called as the browser would call them: a viewer is offered only
the knowledge bases they may read, and cannot add one by sending the event themselves."""

import app.app  # noqa: F401 - builds every page and state
from app.ask.state import AskState
from tests.predict.test_state import send, signed_in


async def test_a_viewer_is_offered_only_readable_knowledge_bases_and_cannot_forge_one(notes_kb, viewer, staff):
    staff_tab = signed_in(AskState, staff)
    await send(staff_tab, AskState.load)
    assert [(kb.id, kb.name, kb.chosen) for kb in staff_tab.knowledge_bases] == [(notes_kb["id"], "Notes", True)]

    viewer_tab = signed_in(AskState, viewer)
    await send(viewer_tab, AskState.load)
    assert viewer_tab.knowledge_bases == [] and viewer_tab.chosen_ids == []
    await send(viewer_tab, AskState.choose_knowledge_base, notes_kb["id"], True)
    assert viewer_tab.chosen_ids == []
