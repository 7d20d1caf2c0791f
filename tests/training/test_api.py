"""The training-runs API without a worker: who may start and read runs, every request a user
can get wrong refused with a message naming what is wrong, the newest version by default,
a queued run cancelled, the rate limit, and a queue outage leaving a clear failed run."""

from app.api import build_api
from app.auth.service import SYSTEM
from app.core.db import session_scope
from app.core.settings import get_settings
from app.predict.registry import ensure_builtin_models
from models.manifest import EMBEDDER_NAME
from tests.training.conftest import as_csv, sample, start, upload

BODY = {"dataset": "news", "text_column": "text", "label_column": "topic", "model_name": "topics"}


def news_csv(bbc_sample, rows: int = 40) -> bytes:
    """Articles with their topic, their word count (an integer column) and a one-valued source."""
    texts, labels = sample(bbc_sample.texts, bbc_sample.labels, rows=rows)
    return as_csv(
        [(text, label, len(text.split()), "bbc") for text, label in zip(texts, labels, strict=True)],
        header=("text", "topic", "words", "source"),
    )


def test_openapi_publishes_staff_for_starting_and_viewer_for_reading():
    paths = build_api().openapi()["paths"]
    roles = {
        (method, path): paths[path][method]["x-strata-minimum-role"]
        for path, methods in paths.items()
        if path.startswith("/api/v1/training-runs")
        for method in methods
    }
    assert roles == {
        ("post", "/api/v1/training-runs"): "staff",
        ("get", "/api/v1/training-runs"): "viewer",
        ("get", "/api/v1/training-runs/compare"): "viewer",
        ("get", "/api/v1/training-runs/{run_id}"): "viewer",
        ("post", "/api/v1/training-runs/{run_id}/cancel"): "staff",
    }


async def test_viewers_read_but_cannot_start_and_strangers_are_asked_to_sign_in(
    client, staff_headers, viewer_headers, bbc_sample
):
    await upload(client, staff_headers, "news", news_csv(bbc_sample))
    refused = await start(client, viewer_headers, **BODY)
    assert refused.status_code == 403 and refused.json()["detail"] == "This needs the staff role; you are viewer."
    client.cookies.clear()  # signing in set the session cookie: a stranger has none
    anonymous = await start(client, {}, **BODY)
    assert anonymous.status_code == 401 and "Sign in" in anonymous.json()["detail"]
    assert (await client.get("/api/v1/training-runs")).status_code == 401
    listing = await client.get("/api/v1/training-runs", headers=viewer_headers)
    assert listing.status_code == 200 and listing.json()["total"] == 0


async def test_requests_a_user_can_get_wrong_are_refused_naming_what_is_wrong(
    client, staff_headers, bbc_sample, settings
):
    await upload(client, staff_headers, "news", news_csv(bbc_sample))
    with session_scope() as db_session:
        ensure_builtin_models(db_session=db_session, actor=SYSTEM, settings=settings)
    cases = [
        (
            {"text_column": "body"},
            422,
            "There is no column 'body' to use as the text column; the columns are 'text', 'topic', 'words', 'source'.",
        ),
        ({"label_column": "category"}, 422, "There is no column 'category' to use as the label column"),
        ({"text_column": "words"}, 422, "The column 'words' holds integer values, not text"),
        ({"label_column": "text"}, 422, "The text column and the label column are both 'text'"),
        ({"label_column": "source"}, 422, "The column 'source' has 1 label; training needs at least two."),
        ({"holdout_fraction": 0.7}, 422, "The holdout fraction must be between 0.05 and 0.5; got 0.7."),
        ({"holdout_fraction": 0}, 422, "holdout_fraction"),
        ({"seed": -1}, 422, "seed"),
        ({"model_name": "../escape"}, 422, "A model name is 1-100 letters, digits, '-' or '_'"),
        ({"model_name": EMBEDDER_NAME}, 422, f"'{EMBEDDER_NAME}' is an embedder"),
        ({"dataset": "nope"}, 404, "There is no dataset 'nope'."),
        ({"version": 9}, 404, "The dataset 'news' has no version 9."),
    ]
    for change, status, message in cases:
        response = await start(client, staff_headers, **{**BODY, **change})
        assert (response.status_code, message in response.json()["detail"]) == (status, True), (change, response.text)
    assert (await client.get("/api/v1/training-runs", headers=staff_headers)).json()["total"] == 0
    assert (await client.get("/api/v1/jobs", headers=staff_headers)).json() == []


async def test_a_run_starts_on_the_newest_version_is_queued_listed_on_it_and_can_be_cancelled(
    client, staff_headers, viewer_headers, bbc_sample, staff
):
    await upload(client, staff_headers, "news", news_csv(bbc_sample, rows=30))
    await upload(client, staff_headers, "news", news_csv(bbc_sample, rows=40))
    response = await start(client, staff_headers, **BODY, holdout_fraction=0.25, seed=3)
    assert response.status_code == 202, response.text
    run = response.json()
    assert (run["status"], run["dataset"], run["dataset_version"], run["model_name"]) == ("queued", "news", 2, "topics")
    assert (run["holdout_fraction"], run["seed"], run["started_by"], run["model_version"]) == (
        0.25,
        3,
        staff.email,
        None,
    )

    job = (await client.get(f"/api/v1/jobs/{run['job_id']}", headers=staff_headers)).json()
    assert (job["kind"], job["params"]["training_run_id"], job["status"]) == ("training.run", run["id"], "queued")
    version = (await client.get("/api/v1/datasets/news/versions/2", headers=viewer_headers)).json()
    assert [(link["kind"], link["label"]) for link in version["lineage"]] == [
        ("training_run", f"training run {run['id']}")
    ]

    assert (await client.post(f"/api/v1/training-runs/{run['id']}/cancel", headers=viewer_headers)).status_code == 403
    cancelled = await client.post(f"/api/v1/training-runs/{run['id']}/cancel", headers=staff_headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/training-runs/{run['id']}/cancel", headers=staff_headers)
    assert again.status_code == 409
    read = (await client.get(f"/api/v1/training-runs/{run['id']}", headers=viewer_headers)).json()
    assert read["status"] == "cancelled" and read["accuracy"] is None
    missing = await client.get("/api/v1/training-runs/999", headers=viewer_headers)
    assert missing.status_code == 404 and missing.json()["detail"] == "There is no training run 999."


async def test_starting_takes_from_the_callers_rate_limit(client, staff, bbc_sample, monkeypatch):
    monkeypatch.setenv("STRATA_RATE_LIMIT_PER_MINUTE", "2")
    get_settings.cache_clear()
    try:
        from tests.conftest import sign_in

        headers = await sign_in(client, staff.email)
        await upload(client, headers, "news", news_csv(bbc_sample))  # the first request of the minute
        assert (await start(client, headers, **BODY)).status_code == 202
        refused = await start(client, headers, **BODY)
        assert refused.status_code == 429 and "retry-after" in refused.headers
    finally:
        monkeypatch.delenv("STRATA_RATE_LIMIT_PER_MINUTE")
        get_settings.cache_clear()
    assert (await client.get("/api/v1/training-runs", headers=headers)).json()["total"] == 1


async def test_a_queue_outage_is_a_clear_503_and_the_run_is_kept_as_failed(
    client, staff_headers, bbc_sample, valkey_server
):
    await upload(client, staff_headers, "news", news_csv(bbc_sample))
    valkey_server.stop()
    try:
        response = await start(client, staff_headers, **BODY)
    finally:
        valkey_server.start()
    assert response.status_code == 503
    assert "job queue (Redis) is unreachable; the training run was not started" in response.json()["detail"]
    (run,) = (await client.get("/api/v1/training-runs", headers=staff_headers)).json()["runs"]
    assert run["status"] == "failed" and run["message"] == "Could not reach the job queue"
    assert "it never ran. Start it again." in run["error"]
