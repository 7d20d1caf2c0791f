"""The admin Webhooks page through its handlers: the secret is shown once, a test message
reaches a real receiver, and a receiver that is down shows as a failure in the delivery log."""

import pytest

from app.webhooks.state import WebhooksState
from tests.conftest import free_port
from tests.predict.test_state import send, signed_in


@pytest.fixture
def admin(make_user):
    return make_user("admin@x.io", role="admin")


async def test_an_admin_adds_a_webhook_sends_a_test_and_sees_a_failure(admin, receiver):
    page = signed_in(WebhooksState, admin)
    await send(page, WebhooksState.load)
    assert page.webhooks == [] and page.deliveries == []
    await send(page, WebhooksState.edit, "form_name", "ops")
    await send(page, WebhooksState.edit, "form_url", receiver.url)
    await send(page, WebhooksState.toggle_kind, "drift", False)
    await send(page, WebhooksState.create)
    assert page.created_name == "ops" and len(page.created_secret) >= 32
    receiver.secret = page.created_secret
    [row] = page.webhooks
    assert (row.name, row.kinds, row.enabled) == ("ops", "accuracy, error rate", True)
    await send(page, WebhooksState.dismiss_secret)
    assert page.created_secret == ""

    sent = await send(page, WebhooksState.send_test, row.id)
    assert "delivered to ops (HTTP 200)" in str(sent)
    assert receiver.received[0].valid and receiver.received[0].json["event"] == "test"
    [delivery] = page.deliveries
    assert (delivery.status, delivery.attempts, delivery.last_result) == ("delivered", "1 of 4", "HTTP 200")

    down = f"http://127.0.0.1:{free_port()}/hook"
    await send(page, WebhooksState.edit, "form_name", "down")
    await send(page, WebhooksState.edit, "form_url", down)
    await send(page, WebhooksState.create)
    down_row = next(row for row in page.webhooks if row.name == "down")
    failed = await send(page, WebhooksState.send_test, down_row.id)
    assert "Test message to down failed: ConnectError" in str(failed)
    newest = page.deliveries[0]
    assert (newest.webhook, newest.status, newest.attempts) == ("down", "pending", "1 of 4")
    assert newest.next_attempt and newest.attempt_log[0].startswith("#1 ")
    assert "ConnectError" in newest.attempt_log[0]

    await send(page, WebhooksState.switch, down_row.id, False)
    assert not next(row for row in page.webhooks if row.name == "down").enabled
    await send(page, WebhooksState.delete, down_row.id)
    assert [row.name for row in page.webhooks] == ["ops"]


async def test_staff_cannot_use_the_webhooks_page(staff):
    page = signed_in(WebhooksState, staff)
    for handler, *args in [
        (WebhooksState.load,),
        (WebhooksState.create,),
        (WebhooksState.send_test, 1),
        (WebhooksState.delete, 1),
    ]:
        assert "This needs the admin role; you are staff." in str(await send(page, handler, *args)), handler
