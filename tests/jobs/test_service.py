import pytest

import app.job_kinds  # noqa: F401 - registers the job kinds, as the web and worker do
from app.core.errors import Conflict, Forbidden, InvalidInput
from jobs import service
from jobs.tables import JobStatus


def test_viewers_cannot_create_jobs_and_unknown_kinds_are_refused(db_session, make_user, staff):
    viewer = make_user("v@x.io")
    with pytest.raises(Forbidden):
        service.create_job(db_session=db_session, kind="verify_models", params={}, actor=viewer, max_attempts=3)
    with pytest.raises(InvalidInput, match="Unknown job kind"):
        service.create_job(db_session=db_session, kind="nope", params={}, actor=staff, max_attempts=3)


def test_progress_is_recorded_until_a_cancel_request_stops_the_job(db_session, staff):
    job = service.create_job(db_session=db_session, kind="verify_models", params={}, actor=staff, max_attempts=3)
    service.start_attempt(db_session=db_session, job_id=job.id, worker_id="w1", attempt=1)
    service.record_progress(db_session=db_session, job_id=job.id, fraction=0.4, message="hashing")
    assert (job.status, job.progress, job.message) == ("running", 0.4, "hashing")
    service.request_cancel(db_session=db_session, job_id=job.id, actor=staff)
    with pytest.raises(service.JobCancelled):
        service.record_progress(db_session=db_session, job_id=job.id, fraction=0.5, message="")


def test_a_finished_job_cannot_be_cancelled_and_a_succeeded_one_not_retried(db_session, staff):
    job = service.create_job(db_session=db_session, kind="verify_models", params={}, actor=staff, max_attempts=3)
    service.finish_attempt(
        db_session=db_session, job_id=job.id, status=JobStatus.succeeded, message="Done", result={"x": 1}
    )
    assert job.progress == 1.0 and job.finished_at is not None
    with pytest.raises(Conflict):
        service.request_cancel(db_session=db_session, job_id=job.id, actor=staff)
    with pytest.raises(Conflict, match="Only failed or cancelled"):
        service.retryable_job(db_session=db_session, job_id=job.id, actor=staff)


def test_orphans_of_dead_workers_are_requeued_then_failed_when_attempts_run_out(db_session, staff):
    job = service.create_job(db_session=db_session, kind="verify_models", params={}, actor=staff, max_attempts=2)
    service.start_attempt(db_session=db_session, job_id=job.id, worker_id="dead", attempt=1)
    service.record_progress(db_session=db_session, job_id=job.id, fraction=0.6, message="half-way")
    assert service.orphaned_jobs(db_session=db_session, live_worker_ids={"dead"}) == []
    (orphan,) = service.orphaned_jobs(db_session=db_session, live_worker_ids={"alive"})
    assert service.requeue_or_fail_orphan(db_session=db_session, job=orphan) is True
    assert job.status == "queued" and "retrying (attempt 2 of 2)" in job.message
    service.start_attempt(db_session=db_session, job_id=job.id, worker_id="dead-too", attempt=2)
    assert job.progress == 0.0  # the new attempt starts over
    (orphan,) = service.orphaned_jobs(db_session=db_session, live_worker_ids=set())
    assert service.requeue_or_fail_orphan(db_session=db_session, job=orphan) is False
    assert job.status == "failed" and "died on each of 2 attempts" in job.error
