"""Admins in the browser: an accuracy alert shows on Home and on the Monitoring page until it is
acknowledged there; the Usage and Audit log pages filter and export what two users did."""

import csv
import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, choose, create_user, watch_console

pytestmark = pytest.mark.browser


def _bearer(stack, email: str, password: str) -> dict[str, str]:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}


def _production_classifier(client: httpx.Client) -> str:
    models = client.get("/api/v1/models").json()
    return next(m["name"] for m in models if m["kind"] == "classifier" and m["production_version"])


def _logged_prediction(client: httpx.Client, model: str) -> dict:
    """A prediction the log kept: API predictions are sampled (10% by default), so ask until one is."""
    for attempt in range(200):
        response = client.post(f"/api/v1/models/{model}/predict", json={"inputs": f"Cup final report number {attempt}"})
        assert response.status_code == 200, response.text
        result = response.json()["results"][0]
        if result["prediction_id"]:
            return result
    raise AssertionError("no prediction was logged in 200 requests")


def _csv_rows(download) -> list[dict[str, str]]:
    with open(download.value.path(), newline="", encoding="utf-8") as exported:
        return list(csv.DictReader(exported))


def test_an_accuracy_alert_shows_on_home_and_monitoring_until_acknowledged(admin_page, stack):
    problems = watch_console(admin_page)
    with httpx.Client(base_url=stack.url, timeout=60, headers=_bearer(stack, ADMIN_EMAIL, ADMIN_PASSWORD)) as client:
        model = _production_classifier(client)
        prediction = _logged_prediction(client, model)
        wrong = next(score["label"] for score in prediction["scores"] if score["label"] != prediction["label"])
        feedback = client.post(f"/api/v1/predictions/{prediction['prediction_id']}/feedback", json={"label": wrong})
        assert feedback.status_code == 200, feedback.text
        thresholds = client.get(f"/api/v1/models/{model}/alert-thresholds").json()
        strict = {key: thresholds[key] for key in ("max_error_rate", "min_predictions", "window_minutes")}
        updated = client.put(
            f"/api/v1/models/{model}/alert-thresholds", json={**strict, "min_accuracy": 0.99, "min_feedback": 1}
        )
        assert updated.status_code == 200, updated.text
        opened = client.post(f"/api/v1/models/{model}/alert-check").json()
        assert [alert["kind"] for alert in opened] == ["accuracy"], opened

    admin_page.reload()
    home_alerts = admin_page.locator("#home-alerts")
    expect(home_alerts).to_contain_text(model)
    expect(home_alerts).to_contain_text("accuracy")

    admin_page.click("#nav-monitoring")
    choose(admin_page, "monitoring-model", model)
    expect(admin_page.locator("#drift-model")).to_contain_text(model)
    alert = admin_page.locator(".alert-row").filter(has_text=model)
    expect(alert.locator(".alert-kind")).to_have_text(re.compile("^accuracy$", re.IGNORECASE))
    alert.locator(".alert-acknowledge").click()
    expect(admin_page.locator("#alerts-none")).to_be_visible()

    admin_page.click("#nav-home")
    expect(admin_page.locator("#home-alerts")).not_to_contain_text(model)
    assert problems == []


def test_usage_and_audit_pages_filter_and_export_what_two_users_did(admin_page, stack):
    problems = watch_console(admin_page)
    people = [create_user(stack, "viewer") for _ in range(2)]
    (first, first_password), (second, second_password) = people
    for (email, password), requests in (((first, first_password), 3), ((second, second_password), 1)):
        with httpx.Client(base_url=stack.url, timeout=60, headers=_bearer(stack, email, password)) as client:
            model = _production_classifier(client)
            for number in range(requests):
                response = client.post(f"/api/v1/models/{model}/predict", json={"inputs": f"{email} asks {number}"})
                assert response.status_code == 200, response.text

    admin_page.click("#nav-admin-usage")
    choose(admin_page, "usage-group-by", "user")
    table = admin_page.locator("#usage-table")
    for email, requests in ((first, 3), (second, 1)):
        # Usage is written behind in bulk, about once a second: Refresh until it shows.
        row = table.locator(".usage-row").filter(has_text=email)
        for _ in range(10):
            if row.count():
                break
            admin_page.click("#usage-refresh")
            admin_page.wait_for_timeout(1000)
        expect(row.locator("td").first).to_have_text(str(requests))
    choose(admin_page, "usage-user", first)
    expect(table.locator(".usage-row")).to_have_count(1)
    expect(table).to_contain_text(first)
    with admin_page.expect_download() as download:
        admin_page.click("#usage-export")
    exported = _csv_rows(download)
    assert {(row["group_by"], row["label"]) for row in exported} == {("user", first)}
    assert sum(int(row["requests"]) for row in exported) == 3

    admin_page.click("#nav-admin-audit")
    admin_page.fill("#audit-filter-user", first)
    admin_page.click("#audit-filter-apply")
    rows = admin_page.locator("#audit-entries .audit-row")
    expect(rows.filter(has_text="user.created")).to_have_count(1)
    expect(rows.filter(has_text="session.signed_in")).not_to_have_count(0)
    expect(admin_page.locator("#audit-entries")).not_to_contain_text(second)
    choose(admin_page, "audit-filter-action", "user.created")
    admin_page.click("#audit-filter-apply")
    expect(rows).to_have_count(1)
    expect(admin_page.locator("#audit-pages")).to_have_text(re.compile(r"· 1 entries"))
    with admin_page.expect_download() as download:
        admin_page.click("#audit-export")
    exported = _csv_rows(download)
    assert [row["action"] for row in exported] == ["user.created"]
    assert first in exported[0]["target"]
    assert problems == []
