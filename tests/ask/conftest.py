"""Ask fixtures: knowledge bases ingested by a real worker. `alice_kb` holds the real
83-page Alice PDF (slow to ingest: only where a page matters); `notes_kb` a short note."""

import pytest

from tests.conftest import sign_in
from tests.generation.conftest import fake_llm  # noqa: F401 - a language model server the test controls
from tests.knowledge.conftest import (  # noqa: F401 - fixtures shared with the knowledge tests
    _chroma_first,
    alice_pdf,
    create_kb,
    upload,
    wait_documents,
)

NOTES = (
    b"The Mad Hatter hosts the tea party at six o'clock, with the March Hare and the Dormouse.\n\n"
    b"The Queen of Hearts plays croquet with flamingos as mallets and hedgehogs as balls."
)


async def _ready_kb(http, user, workers, name: str, filename: str, content: bytes) -> dict:
    workers()
    headers = await sign_in(http, user.email)
    kb = await create_kb(http, headers, name=name, reader_roles=("staff",))
    assert (await upload(http, headers, kb["id"], (filename, content))).status_code == 202
    [document] = await wait_documents(http, headers, kb["id"])
    assert document["status"] == "ready", document
    return {"id": kb["id"], "headers": headers}


@pytest.fixture
async def alice_kb(client, staff, alice_pdf, workers) -> dict:  # noqa: F811
    """{"id", "headers" (staff's)} of a knowledge base readable by staff only."""
    return await _ready_kb(client, staff, workers, "Alice", "alice.pdf", alice_pdf)


@pytest.fixture
async def notes_kb(client, staff, workers) -> dict:  # noqa: F811
    """{"id", "headers" (staff's)} of a knowledge base readable by staff only."""
    return await _ready_kb(client, staff, workers, "Notes", "notes.md", NOTES)
