"""Predict and Models pages in the browser: predictions with per-label confidence, a
canary that moves live traffic counts, promote and roll back; a viewer only watches."""

import re
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import create_user, sign_in
from tests.browser.test_dashboard import assert_not_reloaded, mark_page

pytestmark = pytest.mark.browser

# A label set the staff member types into the editor: a new staging version of the zero-shot classifier.
NEW_LABELS = "\n".join(
    (
        "business: companies, markets, the economy",
        "sport: football, tennis, athletics",
        "technology: computers, software, the internet",
        "politics: government, elections, parliament",
        "science: research, space, discoveries",
    )
)
HEADLINES = [
    "Shares fell sharply after the central bank raised interest rates.",
    "The striker scored twice in the cup final.",
    "A new smartphone chip doubles battery life.",
    "Parliament votes on the budget next week.",
]
# Enough distinct callers that a 50% canary, sticky per caller, routes some to each version.
CALLERS = 16


def _api_keys(stack, count: int) -> list[str]:
    """API keys of `count` new viewers, made directly in the stack's database."""
    from sqlmodel import Session

    from app.auth import service as auth_service
    from app.core.db import make_engine

    keys = []
    engine = make_engine(stack.settings.effective_database_url)
    with Session(engine, expire_on_commit=False) as db_session:
        for _ in range(count):
            user = auth_service.create_user(
                db_session=db_session,
                actor=auth_service.SYSTEM,
                email=f"caller-{uuid.uuid4().hex[:8]}@strata.test",
                name="API caller",
                role="viewer",
                password="caller-password",
            )
            db_session.flush()
            _, key = auth_service.create_api_key(
                db_session=db_session, actor=auth_service.SYSTEM, user_id=user.id, name="canary test"
            )
            keys.append(key)
        db_session.commit()
    engine.dispose()
    return keys


def _predict_through_api(stack, model_name: str, keys: list[str]) -> None:
    for key in keys:
        response = httpx.post(
            f"{stack.url}/api/v1/models/{model_name}/predict",
            json={"inputs": HEADLINES},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text


def _served(page, number: int) -> int:
    return int(page.locator(f"#served-{number}").inner_text())


def _stage(page, number: int):
    return page.locator(f"#version-row-{number} .version-stage")


def test_predict_page_shows_label_confidence_chart_version_and_latency(admin_page):
    admin_page.click("#nav-predict")
    expect(admin_page.locator("#predict-model")).to_contain_text("classifier")
    admin_page.fill("#predict-input", "\n".join(HEADLINES[:2]))
    admin_page.click("#predict-submit")
    first, second = admin_page.locator("#predict-result-0"), admin_page.locator("#predict-result-1")
    expect(first.locator(".result-label")).to_have_text("business", timeout=60_000)
    expect(second.locator(".result-label")).to_have_text("sport")
    expect(first.locator(".result-confidence")).to_have_text(re.compile(r"\d+\.\d%"))
    expect(first.locator(".recharts-bar-rectangle")).not_to_have_count(0)
    expect(admin_page.locator("#predict-version")).to_contain_text("version")
    expect(admin_page.locator("#predict-latency")).to_contain_text("ms")
    # The same texts again come from the cache.
    admin_page.click("#predict-submit")
    expect(admin_page.locator("#predict-cached")).to_have_text("2 from cache")


def test_canary_share_moves_traffic_then_promote_and_roll_back(admin_page, stack):
    admin_page.click("#nav-models")
    expect(_stage(admin_page, 1)).to_have_text("production", timeout=60_000)
    model_name = admin_page.locator("#models-model").inner_text().split(" (")[0]
    newest = admin_page.locator(".version-row").count() + 1

    # A new label set becomes a staging version.
    admin_page.fill("#labels-editor", NEW_LABELS)
    admin_page.click("#create-version")
    expect(_stage(admin_page, newest)).to_have_text("staging")
    expect(admin_page.locator(f"#version-row-{newest}")).to_contain_text("science")

    # Half the traffic to it: the slider moves by keyboard (Home = 0, PageUp = +10).
    thumb = admin_page.locator("#canary-slider [role=slider]")
    thumb.focus()
    thumb.press("Home")
    for _ in range(5):
        thumb.press("PageUp")
    expect(admin_page.locator("#canary-draft")).to_have_text("50%")
    admin_page.click("#canary-apply")
    expect(admin_page.locator(f"#traffic-{newest}")).to_have_text("50%")
    expect(admin_page.locator("#traffic-1")).to_have_text("50%")

    # Predictions from many callers reach both versions; the open page counts them live.
    mark_page(admin_page)
    served_before = {1: _served(admin_page, 1), newest: _served(admin_page, newest)}
    _predict_through_api(stack, model_name, _api_keys(stack, CALLERS))
    for number, before in served_before.items():
        stack.wait(
            lambda n=number, b=before: _served(admin_page, n) > b, 30, f"version {number}'s served count to rise"
        )
    assert_not_reloaded(admin_page)

    admin_page.click(f"#promote-{newest}")
    expect(_stage(admin_page, newest)).to_have_text("production")
    expect(_stage(admin_page, 1)).to_have_text("archived")
    expect(admin_page.locator("#production-version")).to_have_text(f"production: version {newest}")
    expect(admin_page.locator("#registry-events")).to_contain_text("promote")

    admin_page.click("#rollback")
    expect(_stage(admin_page, 1)).to_have_text("production")
    expect(_stage(admin_page, newest)).to_have_text("archived")
    expect(admin_page.locator("#production-version")).to_have_text("production: version 1")
    expect(admin_page.locator("#registry-events")).to_contain_text("rollback")


def test_a_viewer_sees_the_registry_but_its_controls_do_nothing(stack, new_page):
    viewer = new_page()
    sign_in(viewer, *create_user(stack, "viewer"))
    viewer.wait_for_url("**/")
    viewer.click("#nav-models")
    expect(_stage(viewer, 1)).to_be_visible(timeout=60_000)
    expect(viewer.locator("#read-only-note")).to_be_visible()
    for control in ("#rollback", "#create-version", "#labels-editor"):
        expect(viewer.locator(control)).to_be_disabled()
    for promote in viewer.locator("[id^='promote-']").all():
        expect(promote).to_be_disabled()
    stages_before = viewer.locator(".version-stage").all_inner_texts()
    viewer.locator("#rollback").click(force=True)
    expect(viewer.locator(".version-stage")).to_have_text(stages_before)
    # The Predict page is theirs to use.
    viewer.click("#nav-predict")
    viewer.fill("#predict-input", HEADLINES[1])
    viewer.click("#predict-submit")
    expect(viewer.locator("#predict-result-0 .result-label")).to_have_text("sport", timeout=60_000)
