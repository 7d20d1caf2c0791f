"""Knowledge fixtures: the sample documents (`make sample-data`), users, an API client,
and the real Chroma server started before any worker so that workers see it."""

import asyncio
import io

import httpx
import pytest

from tests.conftest import REPO

SAMPLES = REPO / ".cache" / "data"
ALICE_PDF = SAMPLES / "alice.pdf"
LOOKING_GLASS_DOCX = SAMPLES / "looking-glass.docx"
# A question whose answer is on a known physical page of alice.pdf (the Ask tests use it too).
ALICE_QUESTION = "What was written on the little bottle Alice found?"
ALICE_ANSWER_PAGE = 7
ALICE_ANSWER_TEXT = "DRINK ME"


@pytest.fixture(autouse=True)
def _chroma_first(chroma_server):
    """Autouse so that Chroma's URL is in the environment before `workers` copies it."""
    return chroma_server


@pytest.fixture
def alice_pdf() -> bytes:
    assert ALICE_PDF.is_file(), "run `make sample-data` (scripts/fetch-sample-documents.sh) first"
    return ALICE_PDF.read_bytes()


async def create_kb(client, headers, name="Books", reader_roles=("viewer", "staff")) -> dict:
    response = await client.post(
        "/api/v1/knowledge", headers=headers, json={"name": name, "reader_roles": list(reader_roles)}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def upload(client, headers, kb_id: int, *files: tuple[str, bytes]) -> httpx.Response:
    return await client.post(
        f"/api/v1/knowledge/{kb_id}/documents",
        headers=headers,
        files=[("files", (name, io.BytesIO(data))) for name, data in files],
    )


async def wait_documents(client, headers, kb_id: int, statuses=("ready", "failed"), timeout=180) -> list[dict]:
    async def settled():
        documents = (await client.get(f"/api/v1/knowledge/{kb_id}/documents", headers=headers)).json()
        return documents if documents and all(d["status"] in statuses for d in documents) else None

    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if documents := await settled():
            return documents
        await asyncio.sleep(0.3)
    raise AssertionError(f"documents did not reach {statuses}: {await settled() or 'still running'}")
