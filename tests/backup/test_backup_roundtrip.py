"""A Strata in use (users, an API key, a knowledge base with an ingested document, a conversation,
a trained model version on canary beside the built-in one, a dataset and its training run) is
backed up while predictions keep coming, then restored with `strata restore` into a fresh data
dir on SQLite and, separately, into an empty PostgreSQL database: search results, predictions,
the conversation and every sign-in answer as before."""

import asyncio
import os
import shutil
from pathlib import Path

import pytest
import redis

from app.backup import backup_and_restore as backup
from app.backup import vectors as backup_vectors
from app.core.settings import get_settings
from models.classifier import CLASSIFIER_NAME
from tests.backup.conftest import empty_postgresql
from tests.conftest import reset_caches, run_strata, sign_in
from tests.knowledge.conftest import create_kb, upload, wait_documents
from tests.predict.conftest import forget_process_state
from tests.training.conftest import start, wait_run
from tests.training.conftest import upload as upload_dataset

pytestmark = [pytest.mark.one_backend, pytest.mark.usefixtures("builtin_models")]

HANDBOOK = """# Travel policy

Employees book flights through the travel desk at least fourteen days ahead.
Economy class is the rule for flights under six hours; business class needs a director's approval.
Hotel costs are refunded up to 180 euros a night in capital cities and 120 euros elsewhere.

# Equipment

Every new employee receives a laptop on the first day. Lost laptops are reported to security within 24 hours.
Monitors and keyboards are ordered through the equipment portal and arrive within a week.
"""
QUESTIONS = ["How much is refunded for a hotel night in a capital?", "Who approves business class flights?"]
TEXTS = ["The refund arrived quickly, thank you!", "My laptop broke and nobody answers my tickets."]
TICKETS = [(f"Ticket {i}: the invoice was paid twice, please refund it", "billing") for i in range(20)] + [
    (f"Ticket {i}: the laptop does not start after the update", "hardware") for i in range(20)
]
PASSWORD = "password-123"


def tickets_csv() -> bytes:
    return ("text,topic\n" + "".join(f'"{text}",{topic}\n' for text, topic in TICKETS)).encode()


async def fill(client, admin, staff) -> dict:
    """Everything a user would notice, as read back through the API."""
    admin_headers = await sign_in(client, admin.email, PASSWORD)
    staff_headers = await sign_in(client, staff.email, PASSWORD)
    key = await client.post("/api/v1/keys", headers=admin_headers, json={"user_id": staff.id, "name": "ci"})
    assert key.status_code == 201, key.text
    kb = await create_kb(client, staff_headers, name="Handbook")
    uploaded = await upload(client, staff_headers, kb["id"], ("handbook.md", HANDBOOK.encode()))
    assert uploaded.status_code == 202, uploaded.text
    assert [d["status"] for d in await wait_documents(client, staff_headers, kb["id"])] == ["ready"]
    answer = await client.post(
        "/api/v1/ask", headers=staff_headers, json={"question": QUESTIONS[0], "knowledge_base_ids": [kb["id"]]}
    )
    assert answer.status_code == 200, answer.text
    await upload_dataset(client, staff_headers, "tickets", tickets_csv())
    run = await start(
        client, staff_headers, dataset="tickets", text_column="text", label_column="topic", model_name="tickets"
    )
    assert run.status_code in (200, 201, 202), run.text
    assert (await wait_run(client, staff_headers, run.json()["id"]))["status"] == "succeeded"
    labels = [
        {"name": "praise", "description": "thanks, happy, pleased"},
        {"name": "complaint", "description": "broken, angry, nobody answers"},
    ]
    version = await client.post(
        f"/api/v1/models/{CLASSIFIER_NAME}/versions", headers=staff_headers, json={"labels": labels}
    )
    assert version.status_code == 201, version.text
    canary = await client.put(
        f"/api/v1/models/{CLASSIFIER_NAME}/versions/{version.json()['number']}/canary",
        headers=staff_headers,
        json={"percent": 30},
    )
    assert canary.status_code == 200, canary.text
    return {"api_key": key.json()["key"], "kb": kb["id"]}


async def observe(client, staff, made: dict) -> dict:
    """What users see, signing in afresh: a password sign-in and the API key each must work."""
    headers = await sign_in(client, staff.email, PASSWORD)
    by_key = {"Authorization": f"Bearer {made['api_key']}"}
    searches = []
    for question in QUESTIONS:
        response = await client.post(
            "/api/v1/search", headers=by_key, json={"query": question, "knowledge_base_ids": [made["kb"]]}
        )
        assert response.status_code == 200, response.text
        searches.append([(p["chunk_id"], p["text"], round(p["score"], 4)) for p in response.json()])
    predictions = {}
    for model in (await client.get("/api/v1/models", headers=headers)).json():
        for version in (await client.get(f"/api/v1/models/{model['name']}/versions", headers=headers)).json():
            response = await client.post(
                f"/api/v1/models/{model['name']}/predict",
                headers=headers,
                json={"inputs": TEXTS, "version": version["number"]},
            )
            assert response.status_code == 200, response.text
            served = (model["name"], version["number"], version["stage"], version["traffic_percent"], version["sha256"])
            predictions[served] = [_rounded(result) for result in response.json()["results"]]
    conversations = (await client.get("/api/v1/conversations", headers=headers)).json()
    messages = [
        [
            (m["role"], m["content"])
            for m in (await client.get(f"/api/v1/conversations/{c['id']}", headers=headers)).json()["messages"]
        ]
        for c in conversations
    ]
    datasets = [
        (d["name"], [(v["number"], v["sha256"], v["row_count"]) for v in d["versions"]])
        for d in (await client.get("/api/v1/datasets", headers=headers)).json()
    ]
    runs = [
        (r["id"], r["status"], r["model_name"], r["accuracy"])
        for r in (await client.get("/api/v1/training-runs", headers=headers)).json()["runs"]
    ]
    return {
        "searches": searches,
        "predictions": predictions,
        "messages": messages,
        "datasets": datasets,
        "runs": runs,
    }


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items() if k != "prediction_id"}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


async def predict_while(client, headers, task: asyncio.Task) -> int:
    """Predictions as users send them, until the backup is written; every one must answer."""
    answered = 0
    while not task.done():
        response = await client.post(
            f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=headers, json={"inputs": f"load {answered}"}
        )
        assert response.status_code == 200, response.text
        answered += 1
    return answered


def switch_to(data_dir: Path, database_url: str) -> None:
    os.environ["STRATA_DATA_DIR"] = str(data_dir)
    os.environ["STRATA_DATABASE_URL"] = database_url
    reset_caches()
    forget_process_state()
    redis.Redis.from_url(os.environ["STRATA_REDIS_URL"]).flushdb()  # no cached prediction or session answers


def forget_vectors() -> None:
    """A fresh install's Chroma: the restore must bring the vectors back itself."""
    for name in backup_vectors.collection_names():
        backup_vectors.delete_collection(name)


@pytest.fixture
def postgresql_target():
    with empty_postgresql("restore") as url:
        yield url


async def test_a_backup_taken_under_load_restores_into_sqlite_and_postgresql_and_answers_as_before(
    chroma_server, client, workers, make_user, postgresql_target, tmp_path
):
    admin = make_user("root@x.io", role="admin", password=PASSWORD)
    staff = make_user("staff@x.io", role="staff", password=PASSWORD)
    workers()
    made = await fill(client, admin, staff)
    before = await observe(client, staff, made)
    assert before["searches"][0] and len(before["predictions"]) >= 3 and before["messages"] and before["runs"]

    archive = tmp_path / "strata.tar.gz"
    staff_headers = await sign_in(client, staff.email, PASSWORD)
    settings = get_settings().model_copy(update={"backup_include_models": False})
    writing = asyncio.create_task(asyncio.to_thread(backup.create_backup, archive, settings=settings))
    answered_during_backup = await predict_while(client, staff_headers, writing)
    summary = await writing
    assert answered_during_backup > 0
    assert summary.tables["user"] == 2 and summary.files >= 3 and sum(summary.vectors.values()) > 0

    source = (os.environ["STRATA_DATA_DIR"], os.environ["STRATA_DATABASE_URL"])
    # The trained version's artifact must come from the archive, not from where it was written.
    shutil.rmtree(Path(source[0]) / "predict" / "tickets")
    targets = {
        "sqlite": (tmp_path / "fresh-sqlite", f"sqlite:///{tmp_path / 'fresh-sqlite' / 'strata.db'}"),
        "postgresql": (tmp_path / "fresh-postgresql", postgresql_target),
    }
    try:
        for name, (data_dir, database_url) in targets.items():
            forget_vectors()
            switch_to(data_dir, database_url)
            restored = await asyncio.to_thread(run_strata, "restore", str(archive))
            assert restored.returncode == 0, f"{name}: {restored.stderr}"
            assert any((data_dir / "predict" / "tickets").iterdir()), name
            forget_process_state()
            assert await observe(client, staff, made) == before, name
    finally:
        forget_vectors()
        switch_to(Path(source[0]), source[1])
