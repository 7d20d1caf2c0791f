"""The Knowledge page in the browser: staff build a knowledge base by dropping files,
watch each document's status live; viewers only see what they may read."""

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import create_user, sign_in
from tests.knowledge.conftest import ALICE_PDF

pytestmark = pytest.mark.browser

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def test_staff_drop_a_pdf_and_a_bad_file_and_watch_one_ready_one_failed(stack, new_page, tmp_path):
    assert ALICE_PDF.is_file(), "run `make sample-data` first"
    staff = new_page()
    sign_in(staff, *create_user(stack, "staff"))
    staff.wait_for_url("**/")
    staff.click("#nav-knowledge")
    name = f"Books {uuid.uuid4().hex[:6]}"
    staff.fill("#kb-new-name", name)
    staff.click("#kb-new-reader-viewer")  # staff only: viewers must not see it
    staff.click("#kb-create")
    expect(staff.locator("#kb-title")).to_have_text(name)
    expect(staff.locator("#kb-readers")).to_have_text("Readers: admin, staff")

    bad = tmp_path / "scan.pdf"
    bad.write_bytes(PNG)
    staff.locator("#knowledge-upload input[type=file]").set_input_files([str(ALICE_PDF), str(bad)])
    alice = staff.locator(".doc-row", has_text="alice.pdf")
    scan = staff.locator(".doc-row", has_text="scan.pdf")
    expect(scan.locator(".doc-status")).to_have_text("failed", timeout=120_000)
    expect(scan.locator(".doc-error")).to_have_text("This file is a PNG image, not a PDF.")
    expect(alice.locator(".doc-status")).to_have_text("ready", timeout=240_000)
    expect(alice).to_contain_text("83")

    public = f"Handbook {uuid.uuid4().hex[:6]}"
    staff.fill("#kb-new-name", public)
    staff.click("#kb-create")
    expect(staff.locator("#kb-readers")).to_have_text("Readers: admin, viewer, staff")

    viewer = new_page()
    sign_in(viewer, *create_user(stack, "viewer"))
    viewer.wait_for_url("**/")
    viewer.click("#nav-knowledge")
    expect(viewer.locator(".kb-item", has_text=public)).to_be_visible()
    expect(viewer.locator(".kb-item", has_text=name)).to_have_count(0)
    expect(viewer.locator("#kb-create")).to_have_count(0)

    renamed = f"Staff handbook {uuid.uuid4().hex[:6]}"
    staff.locator(".kb-item", has_text=public).click()
    staff.fill("#kb-rename-name", renamed)
    staff.click("#kb-rename")
    expect(staff.locator("#kb-title")).to_have_text(renamed)
    staff.click("#kb-delete")
    staff.click("#kb-delete-confirm")
    expect(staff.locator(".kb-item", has_text=renamed)).to_have_count(0)
    expect(staff.locator(".kb-item", has_text=name)).to_be_visible()
