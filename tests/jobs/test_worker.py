"""The jobs machinery end to end: a real worker process, real Valkey, the real
"Verify models" job on the real ONNX model."""

import asyncio
import shutil

import pytest

import app.job_kinds  # noqa: F401 - registers the job kinds, as the web and worker do
from app.core.db import session_scope
from jobs import service
from jobs.tables import Job, JobStatus
from tests.conftest import wait_until

VERIFY = "verify_models"


def job_state(job_id: str) -> Job:
    with session_scope() as db_session:
        return service.get_job(db_session=db_session, job_id=job_id)


def enqueue(user, max_attempts: int = 3) -> str:
    return asyncio.run(service.enqueue(kind=VERIFY, params={}, actor=user, max_attempts=max_attempts)).id


# "Verify models" replays the chat model's parity prompts token by token: about two minutes on an
# AVX2-only 2-core CPU while the other test process runs. Under the 300 s limit on a whole test.
VERIFY_SECONDS = 240


def wait_for_status(job_id: str, *statuses: JobStatus, timeout: float = VERIFY_SECONDS) -> Job:
    return wait_until(
        lambda: (job := job_state(job_id)).status in statuses and job, timeout, f"job {job_id} to be {statuses}"
    )


def wait_mid_run(job_id: str) -> Job:
    return wait_until(
        lambda: (job := job_state(job_id)).status == JobStatus.running and 0 < job.progress < 0.9 and job,
        120,
        "the job to be part-way through",
        interval=0.05,
    )


@pytest.mark.one_backend
def test_verify_models_reports_sha256_parity_and_speed(workers, staff):
    workers()
    job_id = enqueue(staff)
    job = wait_for_status(job_id, JobStatus.succeeded, JobStatus.failed)
    assert job.status == JobStatus.succeeded, job.error
    assert job.progress == 1.0 and job.attempts == 1
    reports = {report["name"]: report for report in job.result["models"]}
    assert set(reports) == {"all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"}
    report = reports["all-MiniLM-L6-v2"]
    assert report["sha256_ok"] and report["sha256_actual"] == report["sha256_expected"]
    assert report["parity_min_cosine"] >= 0.999
    assert report["latency_ms_p50"] > 0 and report["throughput_per_s"] > 0


def test_killed_worker_mid_job_is_retried_by_another_and_finishes(workers, staff):
    first = workers()
    job_id = enqueue(staff)
    wait_mid_run(job_id)
    first.kill()
    workers()
    job = wait_for_status(job_id, JobStatus.succeeded, JobStatus.failed)
    assert job.status == JobStatus.succeeded, job.error
    assert job.attempts == 2


def test_killed_worker_on_the_last_attempt_marks_the_job_failed_with_the_reason(workers, staff):
    first = workers()
    job_id = enqueue(staff, max_attempts=1)
    wait_mid_run(job_id)
    first.kill()
    workers()
    job = wait_for_status(job_id, JobStatus.failed, JobStatus.succeeded)
    assert job.status == JobStatus.failed
    assert "died" in job.error and job.finished_at is not None


def test_cancel_stops_a_running_job(workers, staff):
    workers()
    job_id = enqueue(staff)
    wait_mid_run(job_id)
    with session_scope() as db_session:
        service.request_cancel(db_session=db_session, job_id=job_id, actor=staff)
    job = wait_for_status(job_id, JobStatus.cancelled, JobStatus.succeeded, timeout=60)
    assert job.status == JobStatus.cancelled
    assert job.progress < 1.0


@pytest.mark.one_backend
def test_a_tampered_model_fails_verification_with_its_report(workers, worker_env, staff, tmp_path):
    tampered = tmp_path / "models"
    shutil.copytree(worker_env["STRATA_MODELS_DIR"], tampered)
    model_file = tampered / "all-MiniLM-L6-v2" / "model.onnx"
    data = bytearray(model_file.read_bytes())
    data[-100] ^= 0xFF
    model_file.write_bytes(bytes(data))
    worker_env["STRATA_MODELS_DIR"] = str(tampered)
    workers()
    job = wait_for_status(enqueue(staff), JobStatus.succeeded, JobStatus.failed)
    assert job.status == JobStatus.failed
    assert "Verification failed for: all-MiniLM-L6-v2" in job.error
    reports = {report["name"]: report for report in job.result["models"]}
    assert reports["all-MiniLM-L6-v2"]["sha256_ok"] is False and reports["all-MiniLM-L6-v2"]["passed"] is False
    assert reports["SmolLM2-135M-Instruct"]["passed"] is True  # only the tampered model fails


def test_jobs_wait_queued_while_no_worker_runs(db, redis_url, staff):
    job_id = enqueue(staff)
    assert job_state(job_id).status == JobStatus.queued
    assert job_state(job_id).message == "Waiting for a worker"
