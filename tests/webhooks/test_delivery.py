"""Webhook deliveries to a real local HTTP receiver that checks the signature; a receiver that
is down gets every attempt, and the failure shows in the delivery log."""

from datetime import timedelta

import pytest
from sqlmodel import select

from app.alerts import service as alerts
from app.core.db import session_scope
from app.core.time import utcnow
from app.predict.tables import ModelVersion, RegisteredModel
from app.webhooks.deliveries import deliver_due
from tests.conftest import free_port, sign_in, wait_until


@pytest.fixture
def admin(make_user):
    return make_user("admin@x.io", role="admin")


@pytest.fixture
def model_id(db) -> int:
    with session_scope() as db_session:
        model = RegisteredModel(name="churn", kind="classifier")
        db_session.add(model)
        db_session.flush()
        db_session.add(
            ModelVersion(
                model_id=model.id,
                number=3,
                artifact="/nowhere",
                sha256="0" * 64,
                size_bytes=1,
                source="test",
                created_by="system",
            )
        )
        return model.id


def open_error_rate_alert(model_id: int):
    with session_scope() as db_session:
        version_id = db_session.exec(select(ModelVersion.id).where(ModelVersion.model_id == model_id)).one()
        return alerts.open_alert(
            db_session=db_session,
            model_id=model_id,
            version_id=version_id,
            kind="error_rate",
            statistic="error_rate",
            value=0.2,
            threshold=0.05,
            message="20.0% of predictions failed.",
        )


async def create_webhook(client, headers, url: str, **fields) -> dict:
    response = await client.post("/api/v1/webhooks", headers=headers, json={"name": "ops", "url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_opened_alert_is_posted_signed_to_the_receiver_and_shows_delivered(client, admin, model_id, receiver):
    headers = await sign_in(client, admin.email)
    created = await create_webhook(client, headers, receiver.url, kinds=["error_rate"])
    receiver.secret = created["secret"]
    assert len(receiver.secret) >= 32
    [listed] = (await client.get("/api/v1/webhooks", headers=headers)).json()
    assert "secret" not in listed and listed["name"] == "ops"

    alert = open_error_rate_alert(model_id)
    assert open_error_rate_alert(model_id) is None  # an update of the open alert is not sent again
    assert await deliver_due() == 1
    assert await deliver_due() == 0

    [message] = receiver.received
    assert message.valid
    payload = message.json
    assert payload["text"] == "Strata alert (error rate) on churn v3: 20.0% of predictions failed."
    assert payload["event"] == "alert.opened"
    assert {key: payload["alert"][key] for key in ("id", "model", "version", "kind", "value", "threshold")} == {
        "id": alert.id,
        "model": "churn",
        "version": 3,
        "kind": "error_rate",
        "value": 0.2,
        "threshold": 0.05,
    }
    [delivery] = (await client.get("/api/v1/webhooks/deliveries", headers=headers)).json()
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 1, 200)
    assert [attempt["status_code"] for attempt in delivery["attempt_log"]] == [200]


async def test_a_webhook_of_other_kinds_or_disabled_gets_nothing(client, admin, model_id, receiver):
    headers = await sign_in(client, admin.email)
    await create_webhook(client, headers, receiver.url, kinds=["drift", "accuracy"])
    off = await create_webhook(client, headers, receiver.url, name="off", kinds=["error_rate"], enabled=False)
    open_error_rate_alert(model_id)
    assert await deliver_due() == 0
    assert receiver.received == []
    assert off["enabled"] is False


async def test_a_receiver_that_is_down_gets_every_attempt_and_the_failure_is_visible(
    client, admin, model_id, settings, monkeypatch
):
    monkeypatch.setattr(settings, "webhook_max_attempts", 3)
    headers = await sign_in(client, admin.email)
    down = f"http://127.0.0.1:{free_port()}/hook"
    webhook = await create_webhook(client, headers, down)
    open_error_rate_alert(model_id)

    assert await deliver_due() == 1
    [delivery] = (await client.get("/api/v1/webhooks/deliveries", headers=headers)).json()
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    assert "ConnectError" in delivery["last_error"]
    # Not due again before its backoff (30 s after the first failure), then due twice more.
    assert await deliver_due() == 0
    later = utcnow() + timedelta(hours=1)
    assert await deliver_due(now=later) == 1
    assert await deliver_due(now=later + timedelta(hours=1)) == 1
    assert await deliver_due(now=later + timedelta(hours=2)) == 0

    [delivery] = (await client.get("/api/v1/webhooks/deliveries", headers=headers)).json()
    assert (delivery["status"], delivery["attempts"], delivery["max_attempts"]) == ("failed", 3, 3)
    assert [attempt["number"] for attempt in delivery["attempt_log"]] == [1, 2, 3]
    assert all("ConnectError" in attempt["error"] for attempt in delivery["attempt_log"])
    assert delivery["finished_at"] is not None and delivery["next_attempt_at"] is None
    [listed] = (await client.get("/api/v1/webhooks", headers=headers)).json()
    assert (listed["id"], listed["failed_deliveries"], listed["last_delivery_status"]) == (webhook["id"], 1, "failed")


async def test_a_wrong_secret_is_refused_by_the_receiver_and_recorded_as_a_failed_attempt(client, admin, receiver):
    headers = await sign_in(client, admin.email)
    webhook = await create_webhook(client, headers, receiver.url, secret="the-secret-the-receiver-knows")
    receiver.secret = "another-secret-entirely"
    response = await client.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=headers)
    assert response.status_code == 200, response.text
    delivery = response.json()
    assert (delivery["event"], delivery["status"], delivery["last_status_code"]) == ("test", "pending", 401)
    assert delivery["last_error"] == "HTTP 401: bad signature"
    assert [message.valid for message in receiver.received] == [False]

    receiver.secret = "the-secret-the-receiver-knows"
    delivery = (await client.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=headers)).json()
    assert (delivery["status"], delivery["attempt_log"][0]["status_code"]) == ("delivered", 200)
    assert receiver.received[-1].valid and receiver.received[-1].json["event"] == "test"
    assert "admin@x.io" in delivery["text"]


async def test_a_real_worker_delivers_an_opened_alert(db, admin, model_id, receiver, workers, client):
    headers = await sign_in(client, admin.email)
    receiver.secret = (await create_webhook(client, headers, receiver.url))["secret"]
    workers()
    open_error_rate_alert(model_id)
    wait_until(lambda: receiver.received, timeout=60, what="the worker's webhook delivery")
    assert receiver.received[0].valid and receiver.received[0].json["alert"]["model"] == "churn"
