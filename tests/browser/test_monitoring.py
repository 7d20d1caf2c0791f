"""The Monitoring page in the browser: predictions made on the Predict page, and the right
label a person gives one of them, show in the page's totals and charts."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import choose, watch_console

pytestmark = pytest.mark.browser

HEADLINES = [
    "The striker scored twice in the cup final.",
    "Parliament votes on the budget next week.",
]


def test_predictions_and_feedback_from_the_predict_page_show_on_the_monitoring_page(admin_page):
    problems = watch_console(admin_page)
    admin_page.click("#nav-predict")
    model = admin_page.locator("#predict-model")
    expect(model).to_contain_text("(classifier)")
    model_name = model.inner_text().split(" (")[0]
    admin_page.fill("#predict-input", "\n".join(HEADLINES))
    admin_page.click("#predict-submit")
    first_label = admin_page.locator("#predict-result-0 .result-label")
    expect(first_label).not_to_be_empty(timeout=60_000)

    # The person knows better than the model: whatever it said, the right label is another one.
    said = first_label.inner_text()
    admin_page.click("#predict-feedback-label-0")
    options = admin_page.get_by_role("option")
    correct = next(text for text in options.all_inner_texts() if text != said)
    admin_page.get_by_role("option", name=correct, exact=True).click()
    admin_page.click("#predict-feedback-submit-0")
    expect(admin_page.locator("#predict-feedback-saved-0")).to_contain_text(correct)

    admin_page.click("#nav-monitoring")
    choose(admin_page, "monitoring-model", model_name)
    expect(admin_page.locator("#monitoring-total-predictions")).to_have_text(re.compile(r"^[1-9]"))
    expect(admin_page.locator("#monitoring-total-feedback")).to_have_text(re.compile(r"^[1-9]"))
    # One wrong prediction among those with feedback: the accuracy is below 100 %.
    expect(admin_page.locator("#monitoring-total-accuracy")).not_to_have_text(re.compile(r"^(100|—|-|$)"))
    for chart in ("predictions", "labels", "confidence", "accuracy"):
        expect(admin_page.locator(f"#monitoring-chart-{chart} .recharts-surface").first).to_be_visible()
    assert problems == []
