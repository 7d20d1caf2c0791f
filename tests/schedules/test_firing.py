"""The worker's tick, called in-process against the real database and Valkey at the moments a
schedule comes due: what it starts, what it refuses, and that it never starts a run twice."""

import asyncio
from datetime import timedelta

from sqlmodel import select

from app.auth import service as auth_service
from app.batch.service import BATCH_SCORE
from app.batch.tables import BatchRun
from app.core.db import session_scope
from app.core.time import utcnow
from app.schedules import service
from app.schedules.cron import next_run
from app.schedules.firing import claim, due, fire_due_schedules
from app.training.service import TRAINING_RUN
from app.training.tables import TrainingRun
from jobs import service as jobs_service
from jobs.tables import JobStatus
from tests.schedules.conftest import (
    DATASET,
    batch_params,
    create,
    jobs_of_kind,
    reread,
    reviews_csv,
    training_params,
    upload_version,
)

EVERY_MINUTE = "* * * * *"


def batches() -> list[BatchRun]:
    with session_scope() as db_session:
        return list(db_session.exec(select(BatchRun)).all())


async def test_a_due_schedule_starts_one_job_on_the_newest_version_even_when_two_ticks_fire_at_once(
    staff, reviews, classifier, settings
):
    schedule = create(staff, cron=EVERY_MINUTE)
    # A newer version arrives after the schedule was made: the run must read it.
    newest = await upload_version(staff, settings, reviews_csv(extra=" (v2)"))
    due = schedule.next_run_at

    first, second = await asyncio.gather(fire_due_schedules(due), fire_due_schedules(due))

    [job] = jobs_of_kind(BATCH_SCORE)
    assert {**first, **second} == {schedule.id: f"started job {job.id}"}
    [batch] = batches()
    assert (batch.job_id, batch.dataset_name, batch.dataset_version_number) == (job.id, DATASET, newest)
    assert job.created_by == staff.id
    fired = reread(schedule.id)
    assert fired.last_job_id == job.id and fired.last_outcome == f"started job {job.id}"
    assert fired.last_fired_at == due
    assert fired.next_run_at == due + timedelta(minutes=1)
    # The same moment again finds nothing due.
    assert await fire_due_schedules(due) == {}
    assert len(jobs_of_kind(BATCH_SCORE)) == 1


def test_a_claim_on_a_time_another_tick_already_moved_matches_nothing(staff, reviews, classifier):
    schedule = create(staff, cron=EVERY_MINUTE)
    moment = schedule.next_run_at
    with session_scope() as db_session:
        [(schedule_id, seen)] = due(db_session=db_session, now=moment)
    claims = []
    for _ in range(2):  # two ticks that both read the schedule before either claimed it
        with session_scope() as db_session:
            claims.append(claim(db_session=db_session, schedule_id=schedule_id, seen=seen, now=moment))
    assert claims[0] is not None and claims[0].refusal is None
    assert claims[1] is None
    assert reread(schedule.id).next_run_at == moment + timedelta(minutes=1)


async def test_a_schedule_whose_previous_run_is_still_going_is_skipped_and_says_so(staff, reviews, classifier):
    schedule = create(staff, cron=EVERY_MINUTE)
    due = schedule.next_run_at
    await fire_due_schedules(due)
    [job] = jobs_of_kind(BATCH_SCORE)
    assert job.status == JobStatus.queued  # no worker runs here: it waits in the queue

    later = due + timedelta(minutes=1)
    outcomes = await fire_due_schedules(later)

    assert outcomes == {schedule.id: f"skipped: the previous run (job {job.id}) is still queued"}
    assert len(jobs_of_kind(BATCH_SCORE)) == 1
    skipped = reread(schedule.id)
    assert skipped.last_outcome == outcomes[schedule.id] and skipped.last_job_id == job.id
    assert skipped.next_run_at == later + timedelta(minutes=1)

    # Once that run has finished, the next turn starts a new one.
    with session_scope() as db_session:
        jobs_service.request_cancel(db_session=db_session, actor=staff, job_id=job.id)
    outcomes = await fire_due_schedules(later + timedelta(minutes=1))
    assert len(jobs_of_kind(BATCH_SCORE)) == 2
    assert outcomes[schedule.id].startswith("started job ")


async def test_paused_schedules_do_not_fire_and_resume_starts_from_the_next_time_after_now(staff, reviews, classifier):
    schedule = create(staff, cron=EVERY_MINUTE)
    with session_scope() as db_session:
        paused = service.pause_schedule(db_session=db_session, actor=staff, schedule_id=schedule.id).schedule
    assert paused.paused and paused.next_run_at is None

    assert await fire_due_schedules(schedule.next_run_at + timedelta(hours=2)) == {}
    assert jobs_of_kind(BATCH_SCORE) == []

    resumed_at = utcnow() + timedelta(hours=2, seconds=30)
    with session_scope() as db_session:
        resumed = service.resume_schedule(
            db_session=db_session, actor=staff, schedule_id=schedule.id, now=resumed_at
        ).schedule
    # The next minute after the resume, not one of the times missed while paused.
    assert not resumed.paused
    assert resumed.next_run_at == next_run(EVERY_MINUTE, resumed_at) > resumed_at
    assert await fire_due_schedules(resumed_at) == {}
    assert len((await fire_due_schedules(resumed.next_run_at)).keys()) == 1
    assert len(jobs_of_kind(BATCH_SCORE)) == 1


async def test_runs_missed_while_no_worker_ran_fire_once_then_the_schedule_keeps_its_times(staff, reviews, classifier):
    schedule = create(staff, cron="*/10 * * * *")
    # Three hours without a worker: eighteen times passed.
    back = schedule.next_run_at + timedelta(hours=3, minutes=4)

    outcomes = await fire_due_schedules(back)

    assert list(outcomes) == [schedule.id]
    assert len(jobs_of_kind(BATCH_SCORE)) == 1
    assert reread(schedule.id).next_run_at == next_run("*/10 * * * *", back) == back + timedelta(minutes=6)


async def test_a_scheduled_training_run_trains_on_the_newest_version_as_its_creator(staff, reviews, settings):
    schedule = create(staff, name="retrain", action="training", cron="0 4 * * *", params=training_params(seed=7))
    newest = await upload_version(staff, settings, reviews_csv(60))

    outcomes = await fire_due_schedules(schedule.next_run_at)

    [job] = jobs_of_kind(TRAINING_RUN)
    assert outcomes == {schedule.id: f"started job {job.id}"}
    with session_scope() as db_session:
        run = db_session.exec(select(TrainingRun)).one()
        assert job.params["version"] == newest and job.params["dataset"] == DATASET
    assert (run.job_id, run.text_column, run.label_column, run.model_name, run.seed, run.holdout_fraction) == (
        job.id,
        "text",
        "label",
        "review-mood",
        7,
        0.2,
    )
    assert run.created_by == staff.id


async def test_a_deactivated_creator_or_one_no_longer_staff_starts_nothing_and_the_schedule_says_why(
    staff, make_user, reviews, classifier
):
    other = make_user("other@x.io", role="staff")
    by_staff = create(staff, name="by staff", cron=EVERY_MINUTE)
    by_other = create(other, name="by other", cron=EVERY_MINUTE)
    with session_scope() as db_session:
        auth_service.update_user(db_session=db_session, actor=auth_service.SYSTEM, user_id=staff.id, active=False)
        auth_service.update_user(db_session=db_session, actor=auth_service.SYSTEM, user_id=other.id, role="viewer")

    due = max(by_staff.next_run_at, by_other.next_run_at)
    outcomes = await fire_due_schedules(due)

    assert outcomes == {
        by_staff.id: "failed: its creator staff@x.io is deactivated; create it again as an active staff member",
        by_other.id: "failed: its creator other@x.io is no longer staff; create it again as a staff member",
    }
    assert jobs_of_kind(BATCH_SCORE) == []
    assert reread(by_staff.id).last_outcome == outcomes[by_staff.id]
    assert reread(by_staff.id).next_run_at == due + timedelta(minutes=1)


async def test_a_dataset_gone_since_the_schedule_was_made_is_a_failed_outcome_naming_it(
    staff, reviews, classifier, settings
):
    from app.datasets import service as datasets_service

    schedule = create(staff, cron=EVERY_MINUTE, params=batch_params())
    with session_scope() as db_session:
        datasets_service.delete_version(db_session=db_session, settings=settings, actor=staff, name=DATASET, number=1)

    outcomes = await fire_due_schedules(schedule.next_run_at)

    assert outcomes == {schedule.id: f"failed: There is no dataset {DATASET!r}."}
    failed = reread(schedule.id)
    assert failed.last_outcome == outcomes[schedule.id] and failed.last_job_id is None
    assert jobs_of_kind(BATCH_SCORE) == []
