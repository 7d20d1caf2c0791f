"""The Schedules page's handlers, called as the browser would call them: staff fill in the form,
see the next times, pause, resume and delete; a viewer's events change nothing."""

from datetime import datetime

import app.app  # noqa: F401 - builds every page and state
from app.core.time import utcnow
from app.schedules.cron import next_run
from app.schedules.state import SchedulesState, when
from tests.predict.test_state import send, signed_in
from tests.schedules.conftest import DATASET, create

STAFF_HANDLERS = {"load", "edit", "choose_action", "create", "pause", "resume", "delete"}


def test_every_handler_needs_staff():
    roles = {
        name: handler.fn.minimum_role.value
        for name, handler in SchedulesState.event_handlers.items()
        if hasattr(handler.fn, "minimum_role")
    }
    assert roles == dict.fromkeys(STAFF_HANDLERS, "staff")


async def fill(tab, **fields):
    for field, value in fields.items():
        await send(tab, SchedulesState.edit, f"form_{field}", value)


async def test_staff_schedule_a_batch_job_from_the_form_and_pause_resume_and_delete_it(staff, reviews, classifier):
    tab = signed_in(SchedulesState, staff)
    await send(tab, SchedulesState.load)
    assert tab.dataset_names == [DATASET] and classifier in tab.model_names
    await fill(tab, name="nightly", cron="30 2 * * *", dataset=DATASET)
    assert tab.columns == ["text", "label"]
    assert tab.cron_preview.startswith("Next runs: ") and tab.cron_preview.count("02:30 UTC") == 3
    await fill(tab, text_column="text", model=classifier)

    before = utcnow()
    await send(tab, SchedulesState.create)

    [row] = tab.schedules
    assert (row.name, row.action, row.cron, row.paused) == ("nightly", "batch", "30 2 * * *", False)
    assert row.next_run in {when(next_run("30 2 * * *", before)), when(next_run("30 2 * * *", utcnow()))}
    assert row.what == f"score {DATASET}.text with {classifier} (production)"
    assert row.last_fired == "never" and row.last_outcome == "" and row.created_by == staff.email
    assert tab.form_name == "" and tab.form_cron == ""  # the form is ready for the next one

    await send(tab, SchedulesState.pause, row.id)
    assert tab.schedules[0].paused and tab.schedules[0].next_run == "paused"
    await send(tab, SchedulesState.resume, row.id)
    assert not tab.schedules[0].paused and tab.schedules[0].next_run.endswith("UTC")
    await send(tab, SchedulesState.delete, row.id)
    assert tab.schedules == []


async def test_a_training_schedule_from_the_form_and_a_bad_cron_is_explained_before_sending(staff, reviews):
    tab = signed_in(SchedulesState, staff)
    await send(tab, SchedulesState.load)
    await send(tab, SchedulesState.choose_action, "training")
    await fill(tab, name="weekly retrain", cron="0 4 * * 9")
    assert tab.cron_preview == "The day-of-week field's '9' is out of range: day-of-week values are 0-7."
    await send(tab, SchedulesState.create)
    assert tab.schedules == []  # refused: a toast says the same

    await fill(tab, cron="0 4 * * sun", dataset=DATASET, text_column="text", label_column="label")
    await fill(tab, model_name="review-mood")
    await send(tab, SchedulesState.create)
    [row] = tab.schedules
    assert row.action == "training" and row.next_run.startswith("Sun ")
    assert datetime.strptime(row.next_run, "%a %Y-%m-%d %H:%M UTC").hour == 4
    assert row.what == f"train review-mood on {DATASET} (text → label, holdout 0.2, seed 0)"


async def test_a_viewer_sending_the_pages_events_changes_nothing(staff, viewer, reviews, classifier):
    schedule = create(staff)
    looker = signed_in(SchedulesState, viewer)
    await send(looker, SchedulesState.load)
    assert looker.schedules == []
    await send(looker, SchedulesState.pause, schedule.id)
    await send(looker, SchedulesState.delete, schedule.id)
    looker.form_name, looker.form_cron = "mine", "* * * * *"
    await send(looker, SchedulesState.create)

    tab = signed_in(SchedulesState, staff)
    await send(tab, SchedulesState.load)
    assert [(row.name, row.paused) for row in tab.schedules] == [("nightly", False)]
