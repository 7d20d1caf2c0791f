"""Asking in the browser: a real multi-page PDF becomes a knowledge base, a question whose
answer is on a known page streams in token by token, and its citation opens that page."""

import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.knowledge.conftest import ALICE_ANSWER_PAGE, ALICE_ANSWER_TEXT, ALICE_PDF, ALICE_QUESTION

pytestmark = pytest.mark.browser

# An answer waits for retrieval and a prompt pass over the passages and the conversation so
# far, on 2 cores shared with the other test process: in CI on an AVX2-only CPU a follow-up's
# first token did not come within Playwright's default 30 s.
ANSWER_SECONDS = 240


def answer_lengths_while_streaming(page) -> list[int]:
    """The answer's length each time it changes, until the Stop button goes away."""
    lengths: list[int] = []
    deadline = time.monotonic() + ANSWER_SECONDS
    while time.monotonic() < deadline:
        text, streaming = page.evaluate(
            "() => [document.querySelector('#live-answer')?.innerText ?? '', !!document.querySelector('#stop')]"
        )
        if text and (not lengths or len(text) != lengths[-1]):
            lengths.append(len(text))
        if lengths and not streaming:
            return lengths
        page.wait_for_timeout(50)
    raise AssertionError(f"the answer did not finish streaming: {lengths}")


@pytest.mark.timeout(900)  # ingesting 83 pages and writing an answer on 2 shared cores
def test_ask_a_pdf_and_open_the_cited_page(admin_page):
    assert ALICE_PDF.is_file(), "run `make sample-data` first"
    page = admin_page
    page.click("#nav-knowledge")
    name = f"Alice {uuid.uuid4().hex[:6]}"
    page.fill("#kb-new-name", name)
    page.click("#kb-create")
    expect(page.locator("#kb-title")).to_have_text(name)
    page.locator("#knowledge-upload input[type=file]").set_input_files([str(ALICE_PDF)])
    document = page.locator(".doc-row", has_text="alice.pdf")
    expect(document.locator(".doc-status")).to_have_text("ready", timeout=300_000)

    page.click("#nav-ask")
    for row in page.locator(".kb-choice").all():
        checkbox, wanted = row.get_by_role("checkbox"), str(name in row.inner_text()).lower()
        if checkbox.get_attribute("aria-checked") != wanted:
            checkbox.click()
            expect(checkbox).to_have_attribute("aria-checked", wanted)
    page.fill("#question", ALICE_QUESTION)
    page.click("#ask")

    expect(page.locator("#stop")).to_be_visible()
    steps = page.locator(".ask-step")
    expect(steps.first).to_contain_text(f"Searching {name}")
    expect(steps.nth(1)).to_contain_text("passages found")
    expect(steps.nth(2)).to_contain_text("Writing the answer")
    lengths = answer_lengths_while_streaming(page)
    assert len(lengths) >= 5 and lengths == sorted(lengths), f"tokens did not arrive one after another: {lengths}"

    answer = page.locator(".turn-answer").last
    expect(answer.locator(".answer")).not_to_be_empty()
    answer.locator(".citation").first.click()
    dialog = page.locator("#citation-dialog")
    expect(dialog.locator("#citation-where")).to_contain_text(f"page {ALICE_ANSWER_PAGE}")
    expect(dialog.locator("#citation-text")).to_contain_text(ALICE_ANSWER_TEXT, ignore_case=True)
    link = dialog.locator("#citation-open-document")
    expect(link).to_have_attribute(
        "href", re.compile(rf"/api/v1/knowledge/documents/\d+/file#page={ALICE_ANSWER_PAGE}$")
    )
    original = page.request.get(link.get_attribute("href"))
    assert original.ok and original.body() == ALICE_PDF.read_bytes()

    # A follow-up in the same conversation, stopped as soon as it starts writing.
    page.keyboard.press("Escape")
    page.fill("#question", "And what did she do with the bottle?")
    page.click("#ask")
    page.wait_for_function(
        "() => (document.querySelector('#live-answer')?.innerText ?? '').length > 0", timeout=ANSWER_SECONDS * 1000
    )
    page.click("#stop")
    expect(page.locator("#stop")).to_have_count(0)
    expect(page.locator(".turn-answer").last).to_contain_text("stopped")

    # Rated, then reopened later from the conversation list.
    page.locator(".turn-answer").first.locator(".thumbs-up").click()
    page.fill("#feedback-comment", "Right page.")
    page.click("#feedback-send")
    expect(page.get_by_text("Thanks, your feedback is saved.")).to_be_visible()
    page.click("#new-conversation")
    expect(page.locator(".turn-answer")).to_have_count(0)
    page.locator(".conversation-row").get_by_text(ALICE_QUESTION).click()
    expect(page.locator(".turn-question")).to_have_count(2)
    expect(page.locator(".turn-answer")).to_have_count(2)
