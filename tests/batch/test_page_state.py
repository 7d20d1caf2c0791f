"""The Batch page's handlers, called as the browser would call them: everyone sees the runs and
what can be scored, only staff fill in the form, start and cancel."""

import app.app  # noqa: F401 - builds every page and state
from app.batch.state import NEWEST, PRODUCTION, BatchState
from tests.batch.conftest import MODEL
from tests.predict.test_state import send, signed_in

VIEWER_HANDLERS = {"load"}
STAFF_HANDLERS = {"edit", "start", "cancel"}
CSV = b"id,review,stars\n1,A warm and funny film.,5\n2,Dull and far too long.,1\n"


def test_every_handler_checks_its_role():
    roles = {
        name: handler.fn.minimum_role.value
        for name, handler in BatchState.event_handlers.items()
        if hasattr(handler.fn, "minimum_role")
    }
    assert roles == {**dict.fromkeys(VIEWER_HANDLERS, "viewer"), **dict.fromkeys(STAFF_HANDLERS, "staff")}


async def test_staff_start_a_batch_from_the_form_and_viewers_watch_it(
    staff, viewer, settings, redis_url, reviews_model
):
    from app.datasets import service as datasets_service
    from tests.datasets.test_page_state import PickedFile

    await datasets_service.upload_dataset(actor=staff, settings=settings, name="films", upload=PickedFile("f.csv", CSV))
    tab = signed_in(BatchState, staff)
    await send(tab, BatchState.load)
    assert tab.dataset_names == ["films"] and tab.model_names == [MODEL]
    await send(tab, BatchState.edit, "form_dataset", "films")
    assert (tab.version_choices, tab.column_choices, tab.form_text_column) == ([NEWEST, "1"], ["review"], "review")
    await send(tab, BatchState.edit, "form_model", MODEL)
    assert tab.model_version_choices == [PRODUCTION, "1"] and tab.can_start
    await send(tab, BatchState.start)
    assert [(run.dataset, run.model, run.status, run.rows) for run in tab.runs] == [
        ("films v1", f"{MODEL} v1", "queued", "0 / 2")
    ]

    looker = signed_in(BatchState, viewer)
    await send(looker, BatchState.load)
    assert [run.id for run in looker.runs] == [tab.runs[0].id]
    refused = await send(looker, BatchState.start)
    assert refused is not None and looker.runs[0].status == "queued"
    await send(looker, BatchState.cancel, tab.runs[0].id)
    await send(tab, BatchState.cancel, tab.runs[0].id)
    assert tab.runs[0].status == "cancelled" and not tab.runs[0].active
