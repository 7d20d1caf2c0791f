"""Usage figures from a known sequence of requests by two users with two API keys, a session
and the Predict page; chat completions' token usage; the CSV export; who may see it."""

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.auth import service as auth_service
from app.core import ml
from app.core.db import session_scope
from app.core.time import utcnow
from app.predict.state import PredictState
from app.usage import recording
from app.usage import service as usage_service
from app.usage.jobs import usage_retention
from app.usage.state import UsageState
from app.usage.tables import UsageEvent
from models.classifier import CLASSIFIER_NAME
from tests.conftest import sign_in
from tests.predict.test_state import send, signed_in

pytestmark = pytest.mark.usefixtures("builtin_models")

BUSINESS = "Shares fell sharply after the bank reported lower quarterly profits and weak sales."
SPORT = "The striker scored twice as the club won the cup final in extra time."
# A model name a spreadsheet would run as a formula: the failed request records it as asked.
FORMULA_MODEL = "=1+2"
CHAT = {"model": "strata-chat", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4}
ADMIN_ONLY = "This needs the admin role"


def api_key(user) -> tuple[dict, int]:
    with session_scope() as db_session:
        key, plaintext = auth_service.create_api_key(
            db_session=db_session, actor=auth_service.SYSTEM, user_id=user.id, name=f"{user.email} script"
        )
    return {"Authorization": f"Bearer {plaintext}"}, key.id


def by_group(report: dict) -> dict:
    return {
        group["group"]: (
            group["requests"],
            group["errors"],
            group["prompt_tokens"],
            group["completion_tokens"],
        )
        for group in report["groups"]
    }


@pytest.fixture
def people(make_user):
    return make_user("admin@x.io", role="admin"), make_user("ann@x.io"), make_user("bob@x.io")


async def test_figures_per_user_key_and_model_match_the_requests_made(client, people):
    admin_user, ann, bob = people
    key_a, key_a_id = api_key(ann)
    key_b, key_b_id = api_key(bob)
    ann_session = await sign_in(client, ann.email)
    predict_url = f"/api/v1/models/{CLASSIFIER_NAME}/predict"

    # Ann: two predictions with her key, one with her session, one for a model that does not exist.
    for body in ({"inputs": [BUSINESS, SPORT]}, {"inputs": SPORT}):
        assert (await client.post(predict_url, headers=key_a, json=body)).status_code == 200
    assert (await client.post(predict_url, headers=ann_session, json={"inputs": BUSINESS})).status_code == 200
    missing = await client.post(f"/api/v1/models/{FORMULA_MODEL}/predict", headers=key_a, json={"inputs": SPORT})
    assert missing.status_code == 404
    # Bob: a prediction and a chat completion with his key, a prediction on the Predict page.
    assert (await client.post(predict_url, headers=key_b, json={"inputs": SPORT})).status_code == 200
    chat = await client.post("/v1/chat/completions", headers=key_b, json=CHAT)
    assert chat.status_code == 200, chat.text
    usage = chat.json()["usage"]
    page = signed_in(PredictState, bob)
    await send(page, PredictState.load)
    await send(page, PredictState.choose_model, CLASSIFIER_NAME)
    await send(page, PredictState.predict, {"inputs": BUSINESS})
    assert [row.label for row in page.results] == ["business"]
    await recording.write_pending()

    # The built-in model's own tokenizer counted the prompt; the answer stopped at max_tokens or before.
    prompt_tokens = len(ml.get_generator().encode_chat([("user", "Say hello.")]))
    assert usage["prompt_tokens"] == prompt_tokens
    assert 0 < usage["completion_tokens"] <= CHAT["max_tokens"]
    assert usage["total_tokens"] == prompt_tokens + usage["completion_tokens"]
    completion_tokens = usage["completion_tokens"]

    admin = await sign_in(client, admin_user.email)

    async def report(**params) -> dict:
        response = await client.get("/api/v1/usage", headers=admin, params={"period": "hour", **params})
        assert response.status_code == 200, response.text
        return response.json()

    per_user = await report(group_by="user")
    assert per_user["totals"]["requests"] == 7 and per_user["totals"]["errors"] == 1
    assert per_user["totals"]["mean_latency_ms"] > 0
    assert by_group(per_user) == {
        str(ann.id): (4, 1, 0, 0),
        str(bob.id): (3, 0, prompt_tokens, completion_tokens),
    }
    assert [group["label"] for group in per_user["groups"]] == [ann.email, bob.email]

    per_key = await report(group_by="key")
    assert by_group(per_key) == {
        str(key_a_id): (3, 1, 0, 0),
        str(key_b_id): (2, 0, prompt_tokens, completion_tokens),
        None: (2, 0, 0, 0),  # Ann's session and Bob's Predict page
    }
    labels = {group["group"]: group["label"] for group in per_key["groups"]}
    assert labels[str(key_a_id)].startswith("ann@x.io script (sk-strata-")
    assert labels[None] == "No API key (pages and session cookies)"

    per_model = await report(group_by="model")
    assert by_group(per_model) == {
        CLASSIFIER_NAME: (5, 0, 0, 0),
        FORMULA_MODEL: (1, 1, 0, 0),
        "strata-chat": (1, 0, prompt_tokens, completion_tokens),
    }
    # Every request falls in the last hour's minute buckets, which add up to the totals.
    assert per_model["bucket_seconds"] == 60
    assert sum(row["requests"] for row in per_model["series"]) == 7

    # Filters combine: Ann's requests without a key; Bob's on the classifier; key A's errors.
    assert by_group(await report(group_by="key", user=ann.id, key="none")) == {None: (1, 0, 0, 0)}
    assert by_group(await report(group_by="user", user=bob.id, model=CLASSIFIER_NAME)) == {str(bob.id): (2, 0, 0, 0)}
    assert by_group(await report(group_by="model", key=key_a_id)) == {
        CLASSIFIER_NAME: (2, 0, 0, 0),
        FORMULA_MODEL: (1, 1, 0, 0),
    }

    # The CSV holds the same figures per minute and model; the formula-like name is text.
    exported = await client.get("/api/v1/usage.csv", headers=admin, params={"period": "hour", "group_by": "model"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    totals: dict[str, list[int]] = {}
    for row in rows:
        sums = totals.setdefault(row["label"], [0, 0, 0, 0])
        for index, column in enumerate(("requests", "errors", "prompt_tokens", "completion_tokens")):
            sums[index] += int(row[column])
    assert totals == {
        CLASSIFIER_NAME: [5, 0, 0, 0],
        "'" + FORMULA_MODEL: [1, 1, 0, 0],
        "strata-chat": [1, 0, prompt_tokens, completion_tokens],
    }

    # The Usage page shows the same figures, and its export link asks for what it shows.
    usage_page = signed_in(UsageState, admin_user)
    await send(usage_page, UsageState.load)
    await send(usage_page, UsageState.choose_period, "hour")
    await send(usage_page, UsageState.choose_group_by, "key")
    assert (usage_page.requests, usage_page.errors) == (7, 1)
    assert (usage_page.prompt_tokens, usage_page.completion_tokens) == (prompt_tokens, completion_tokens)
    assert [(row.requests, row.errors) for row in usage_page.rows] == [(3, 1), (2, 0), (2, 0)]
    assert sum(row[series.key] for row in usage_page.chart for series in usage_page.chart_series) == 7
    await send(usage_page, UsageState.choose_user, str(bob.id))
    assert usage_page.requests == 3
    await send(usage_page, UsageState.choose_key, "none")
    assert [row.label for row in usage_page.rows] == ["No API key (pages and session cookies)"]
    assert usage_page.requests == 1
    assert usage_page.csv_url == f"/api/v1/usage.csv?group_by=key&period=hour&user={bob.id}&key=none"
    refusal = await send(usage_page, UsageState.choose_model, "no-such-model")
    assert "had usage in this period" in str(refusal)


async def test_chat_completions_report_usage_when_streamed_only_if_asked(client, make_user):
    key, _ = api_key(make_user("carol@x.io"))
    prompt_tokens = len(ml.get_generator().encode_chat([("user", "Say hello.")]))

    async def chunks(body: dict) -> list[dict]:
        response = await client.post("/v1/chat/completions", headers=key, json={**CHAT, "stream": True, **body})
        assert response.status_code == 200, response.text
        data = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        return [json.loads(item) for item in data[:-1]]

    plain = await chunks({})
    assert all("usage" not in chunk for chunk in plain)
    counted = await chunks({"stream_options": {"include_usage": True}})
    *pieces, last = counted
    assert all(chunk["usage"] is None for chunk in pieces)
    assert last["choices"] == []
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in pieces)
    assert text
    usage = last["usage"]
    assert usage["prompt_tokens"] == prompt_tokens
    assert 0 < usage["completion_tokens"] <= CHAT["max_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    await recording.write_pending()
    with session_scope() as db_session:
        recorded = db_session.execute(
            select(UsageEvent.endpoint, UsageEvent.channel, UsageEvent.status_code, UsageEvent.prompt_tokens)
        ).all()
    assert recorded == [("chat", "api", 200, prompt_tokens)] * 2


async def test_viewers_and_staff_are_refused_the_usage_routes_and_handlers(client, make_user, people, staff, viewer):
    for user in (viewer, staff):
        headers = await sign_in(client, user.email)
        for path in ("/api/v1/usage", "/api/v1/usage.csv"):
            refused = await client.get(path, headers=headers)
            assert refused.status_code == 403 and ADMIN_ONLY in refused.json()["detail"], path
        page = signed_in(UsageState, user)
        for handler, *args in [
            (UsageState.load,),
            (UsageState.refresh,),
            (UsageState.choose_group_by, "model"),
            (UsageState.choose_period, "week"),
            (UsageState.choose_custom_period, {"since": "2026-01-01T00:00", "until": "2026-01-02T00:00"}),
            (UsageState.choose_user, "all"),
            (UsageState.choose_key, "all"),
            (UsageState.choose_model, "all"),
        ]:
            refusal = await send(page, handler, *args)
            assert ADMIN_ONLY in str(refusal), (user.role, handler)
        assert page.requests == 0 and page.rows == []
    admin = await sign_in(client, people[0].email)
    assert (await client.get("/api/v1/usage", headers=admin)).status_code == 200


async def test_bad_filters_say_what_to_fix(client, people):
    admin = await sign_in(client, people[0].email)
    for params, status, words in [
        ({"key": "abc"}, 422, "key must be an API key's id or 'none'"),
        ({"user": 999999}, 404, "No user with id 999999"),
        ({"key": 999999}, 404, "No API key with id 999999"),
        ({"period": "day", "since": "2026-01-01T00:00:00Z"}, 422, "either a period or since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 422, "must be before until"),
    ]:
        response = await client.get("/api/v1/usage", headers=admin, params=params)
        assert response.status_code == status and words in response.text, (params, response.text)
    bad_group = await client.get("/api/v1/usage", headers=admin, params={"group_by": "team"})
    assert bad_group.status_code == 422 and "group_by" in bad_group.text


async def test_retention_deletes_only_events_older_than_the_setting(db, settings, monkeypatch, people):
    monkeypatch.setattr(settings, "usage_retention_days", 30)
    now = utcnow()
    with session_scope() as db_session:
        for age_days in (31, 29, 0):
            db_session.add(
                UsageEvent(
                    at=now - timedelta(days=age_days),
                    user_id=people[1].id,
                    user_email=people[1].email,
                    channel="api",
                    endpoint="predict",
                    model=CLASSIFIER_NAME,
                    status_code=200,
                    latency_ms=1.0,
                )
            )
    assert await usage_retention({}) == 1
    with session_scope() as db_session:
        assert db_session.execute(select(func.count()).select_from(UsageEvent)).scalar_one() == 2


def _used(user, *, days_ago: float) -> None:
    with session_scope() as db_session:
        db_session.add(
            UsageEvent(
                at=utcnow() - timedelta(days=days_ago),
                user_id=user.id,
                user_email=user.email,
                channel="api",
                endpoint="predict",
                model=CLASSIFIER_NAME,
                status_code=200,
                latency_ms=1.0,
            )
        )


async def test_the_page_offers_everyone_it_shows_and_a_filter_on_someone_without_usage_shows_all(
    db, people, monkeypatch
):
    admin, ann, bob = people
    _used(ann, days_ago=3)
    _used(ann, days_ago=0)
    # Bob's request is written while the page loads, as the bulk writer writes behind requests.
    report = usage_service.usage_report

    def bob_asks_meanwhile(**arguments):
        monkeypatch.setattr(usage_service, "usage_report", report)
        _used(bob, days_ago=0)
        return report(**arguments)

    monkeypatch.setattr(usage_service, "usage_report", bob_asks_meanwhile)
    page = signed_in(UsageState, admin)
    await send(page, UsageState.load)
    assert {row.label for row in page.rows} == {ann.email, bob.email}
    assert {option.label for option in page.user_options} == {"All users", ann.email, bob.email}

    await send(page, UsageState.choose_user, str(bob.id))
    assert [row.label for row in page.rows] == [bob.email]
    # Bob has no usage four to two days ago: his filter goes, and Ann's usage then shows.
    since, until = (utcnow() - timedelta(days=days) for days in (4, 2))
    await send(
        page, UsageState.choose_custom_period, {"since": f"{since:%Y-%m-%dT%H:%M}", "until": f"{until:%Y-%m-%dT%H:%M}"}
    )
    assert page.user_filter == "all"
    assert [row.label for row in page.rows] == [ann.email] and page.requests == 1
