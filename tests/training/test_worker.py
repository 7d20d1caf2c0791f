"""Training runs end to end: real data uploaded as CSV, a real `strata worker` running the
training.run job with the real embedder, the winner served by the predict API, lineage on the
dataset version, and a cancel. Each run uses a seeded stratified split, so its figures are the
same on every machine: the chosen model's holdout macro-F1 is at least the TF-IDF + logistic
regression baseline's (issue 9's requirement), on Rotten Tomatoes and on BBC News."""

import asyncio

import pytest

from tests.predict.conftest import forget_process_state
from tests.training.conftest import as_csv, start, upload, wait_run


@pytest.fixture(autouse=True)
def _fresh_serving():
    """Loaded model versions are kept per process by id; ids restart with each test's database."""
    forget_process_state()
    yield
    forget_process_state()


def check_report(run: dict, holdout_rows: int) -> None:
    candidates = {candidate["name"]: candidate for candidate in run["candidates"]}
    assert set(candidates) == {"tfidf-lr", "embedding-lr"}  # every candidate's scores, not only the winner's
    assert run["chosen"] == max(candidates.values(), key=lambda c: c["cv_macro_f1"])["name"]
    for candidate in candidates.values():
        assert 0 < candidate["cv_macro_f1"] <= 1 and 0 < candidate["holdout"]["macro_f1"] <= 1
    assert run["macro_f1"] == candidates[run["chosen"]]["holdout"]["macro_f1"]
    assert run["macro_f1"] >= run["baseline"]["holdout"]["macro_f1"]
    assert set(run["per_class"]) == set(run["labels"])
    assert all(0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1 for scores in run["per_class"].values())
    matrix = run["confusion_matrix"]
    assert len(matrix) == len(run["labels"]) and sum(map(sum, matrix)) == holdout_rows
    assert run["parity"]["ok"] and run["parity"]["label_disagreements"] == 0
    assert run["duration_seconds"] > 0 and run["progress"] == 1.0


async def served_accuracy(client, headers, model: str, version: int, texts: list[str], labels: list[str]) -> float:
    """The share of `texts` the pinned version labels as `labels` say, predicted through the API."""
    response = await client.post(
        f"/api/v1/models/{model}/predict", headers=headers, json={"inputs": texts, "version": version}
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == version
    results = response.json()["results"]
    return sum(result["label"] == label for result, label in zip(results, labels, strict=True)) / len(labels)


async def test_rotten_tomatoes_run_registers_a_staging_version_that_predicts_and_a_cancelled_run_nothing(
    client, workers, staff_headers, viewer_headers, reviews_sample
):
    workers()
    # Two rows the run must leave out and say so: one without a text, one without a label.
    rows = [*reviews_sample.rows(), ("", "fresh"), ("A film nobody rated.", "")]
    await upload(client, staff_headers, "reviews", as_csv(rows, ("text", "verdict")))
    body = {"dataset": "reviews", "text_column": "text", "label_column": "verdict", "model_name": "reviews"}
    response = await start(client, staff_headers, **body, holdout_fraction=0.25, seed=0)
    assert response.status_code == 202, response.text
    run = await wait_run(client, viewer_headers, response.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    check_report(run, holdout_rows=150)
    assert run["labels"] == ["fresh", "rotten"]
    assert run["rows"] == {
        "read": 602,
        "used": 600,
        "without_text": 1,
        "without_label": 1,
        "first_left_out": [601, 602],
    }
    assert (run["split"]["train_rows"], run["split"]["seed"]) == (450, 0)
    assert run["model_version"] == {"model": "reviews", "version": 1, "stage": "staging"}

    # The new staging version answers when pinned, as any other version would, about as well
    # on snippets it never saw as on its holdout.
    unseen = reviews_sample.unseen_texts, reviews_sample.unseen_labels
    assert await served_accuracy(client, viewer_headers, "reviews", 1, *unseen) >= 0.6
    versions = (await client.get("/api/v1/models/reviews/versions", headers=viewer_headers)).json()
    assert [(v["number"], v["stage"], v["source"]) for v in versions] == [(1, "staging", "trained")]

    # Lineage both ways, and the data a model version was trained on cannot be deleted.
    version = (await client.get("/api/v1/datasets/reviews/versions/1", headers=viewer_headers)).json()
    assert [(link["kind"], link["label"]) for link in version["lineage"]] == [
        ("training_run", f"training run {run['id']}"),
        ("model_version", "model reviews version 1"),
    ]
    refused = await client.delete("/api/v1/datasets/reviews/versions/1", headers=staff_headers)
    assert refused.status_code == 409
    assert (
        refused.json()["detail"] == "Version 1 of 'reviews' cannot be deleted: it is used by model reviews version 1."
    )

    # Another run on the same data, cancelled once it is training: it stops at its next step.
    response = await start(client, staff_headers, **body, seed=1)
    run_id = response.json()["id"]
    training = await wait_progress(client, staff_headers, run_id, at_least=0.05)
    assert training["status"] == "running" and training["model_version"] is None
    cancelled = await client.post(f"/api/v1/training-runs/{run_id}/cancel", headers=staff_headers)
    assert cancelled.status_code == 200, cancelled.text
    run = await wait_run(client, staff_headers, run_id)
    assert run["status"] == "cancelled"
    assert (run["model_version"], run["accuracy"], run["chosen"]) == (None, None, None)
    versions = (await client.get("/api/v1/models/reviews/versions", headers=staff_headers)).json()
    assert [v["number"] for v in versions] == [1]


@pytest.mark.one_backend
async def test_bbc_news_run_chooses_at_least_the_baseline_and_labels_unseen_articles(
    client, workers, staff_headers, viewer_headers, bbc_sample
):
    workers()
    await upload(client, staff_headers, "bbc", as_csv(bbc_sample.rows()))
    response = await start(
        client,
        staff_headers,
        dataset="bbc",
        text_column="text",
        label_column="topic",
        model_name="bbc-topics",
        holdout_fraction=0.3,
        seed=7,
    )
    assert response.status_code == 202, response.text
    run = await wait_run(client, viewer_headers, response.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    check_report(run, holdout_rows=30)
    assert run["labels"] == ["business", "entertainment", "politics", "sport", "tech"]
    unseen = bbc_sample.unseen_texts, bbc_sample.unseen_labels
    assert await served_accuracy(client, viewer_headers, "bbc-topics", 1, *unseen) >= 0.8


async def wait_progress(client, headers, run_id: int, at_least: float, timeout: float = 120) -> dict:
    """The run once it is running and past `at_least` of its work (reading done: training)."""
    deadline = asyncio.get_running_loop().time() + timeout
    run = None
    while asyncio.get_running_loop().time() < deadline:
        run = (await client.get(f"/api/v1/training-runs/{run_id}", headers=headers)).json()
        if run["status"] != "queued" and (run["status"] != "running" or run["progress"] >= at_least):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"training run {run_id} did not get past {at_least}: {run}")
