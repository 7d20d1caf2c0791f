"""The Knowledge page in the browser: staff build a knowledge base by dropping files,
watch each document's status live; viewers only see what they may read."""

import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, sign_in
from tests.conftest import wait_until
from tests.knowledge.conftest import ALICE_PDF

pytestmark = pytest.mark.browser

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def create_user(stack, role: str) -> tuple[str, str]:
    email, password = f"{role}-{uuid.uuid4().hex[:8]}@strata.test", f"{role}-password-123"
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        token = client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).json()[
            "token"
        ]

        def created() -> bool:
            # The API commits just after its response (SessionDep), so the login's session row
            # may not be there yet; a 401 creates nothing.
            response = client.post(
                "/api/v1/users",
                headers={"Authorization": f"Bearer {token}"},
                json={"email": email, "role": role, "password": password},
            )
            assert response.status_code in (201, 401), response.text
            return response.status_code == 201

        wait_until(created, 10, f"the {role} user to be created")
        # ...and so may the new user's row: wait until the user can sign in.
        wait_until(
            lambda: client.post("/api/v1/auth/login", json={"email": email, "password": password}).status_code == 200,
            10,
            f"the {role} user to be able to sign in",
        )
    return email, password


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
