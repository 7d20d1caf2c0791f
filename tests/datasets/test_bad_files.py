"""Bad files get a message that names the row, line, byte or column at fault, and leave
nothing behind: no version, no file, nothing in staging (issue 9, point 4)."""

import csv
import io
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.core.settings import get_settings
from tests.conftest import reset_caches
from tests.datasets.conftest import stored_files, upload


def _parquet() -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table({"text": ["a", "b"] * 50, "label": ["x", "y"] * 50}), out)
    return out.getvalue()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    return out.getvalue()


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
CORRUPT_PARQUET = _parquet()[:40] + b"\x00" * 200 + _parquet()[-40:]

BAD_FILES = [
    pytest.param(
        "ragged.csv",
        b"text,label\ngood,a\nalso good,b\ntoo,many,fields\n",
        "Row 4 of the file (the header is row 1) has 3 fields, expected 2 like the header: 'too,many,fields'.",
        id="ragged-csv",
    ),
    pytest.param(
        "latin1.csv",
        "text,label\nfine,a\ncafé crème,b\n".encode("latin-1"),
        "The file is not UTF-8 text: byte 0xE9 at line 3 (byte 22) is not valid UTF-8",
        id="wrong-encoding",
    ),
    pytest.param(
        "image.csv", PNG, "This file is a PNG image, not a CSV file. Upload CSV, JSONL or Parquet.", id="png-as-csv"
    ),
    pytest.param(
        "sheet.csv",
        _zip(),
        "This file is a ZIP archive (an Excel workbook is one: save the sheet as CSV), not a CSV file.",
        id="zip-as-csv",
    ),
    pytest.param(
        "rows.jsonl",
        b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n["c", "z"]\n',
        "Line 3 is an array, not a JSON object; each line of a JSONL file must be one object",
        id="jsonl-array-line",
    ),
    pytest.param(
        "rows.jsonl",
        b'{"text": "a", "label": "x"}\n{"text": "b", "label": \n',
        "Line 2 is not valid JSON: Expecting value at column 24.",
        id="jsonl-broken-line",
    ),
    pytest.param(
        "rows.json",
        b'[{"text": "a", "label": "x"},\n {"text": "b", "label": "y"}]\n',
        "This file is one JSON array; Strata reads JSONL, one JSON object per line.",
        id="json-array",
    ),
    pytest.param(
        "rows.parquet", CORRUPT_PARQUET, "The Parquet file is damaged and cannot be read", id="corrupt-parquet"
    ),
    pytest.param(
        "cut.parquet", _parquet()[:300], "The Parquet file is damaged: it is cut short", id="truncated-parquet"
    ),
    pytest.param("empty.csv", b"", "The file is empty.", id="empty"),
    pytest.param("blank.csv", b"\n\n  \n", "The file is empty.", id="blank"),
    pytest.param("header.csv", b"text,label\n", "The file has a header but no rows.", id="header-only"),
    pytest.param(
        "twice.csv",
        b"text,label,text\na,b,c\n",
        "The column name 'text' appears twice in the header (columns 1 and 3).",
        id="duplicate-column",
    ),
]


@pytest.mark.parametrize(("filename", "data", "message"), BAD_FILES)
async def test_a_bad_file_is_refused_naming_what_is_wrong_and_nothing_stays(
    client, staff_headers, settings, filename, data, message
):
    response = await upload(client, staff_headers, "bad", filename, data)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert stored_files(settings) == []
    assert (await client.get("/api/v1/datasets", headers=staff_headers)).json() == []


async def test_a_bad_new_version_leaves_the_good_ones_as_they_were(client, staff_headers, settings):
    assert (await upload(client, staff_headers, "kept", "good.csv", b"a,b\n1,2\n")).status_code == 201
    files = stored_files(settings)
    assert (await upload(client, staff_headers, "kept", "bad.csv", b"a,b\n1,2,3\n")).status_code == 422
    assert stored_files(settings) == files
    listing = (await client.get("/api/v1/datasets", headers=staff_headers)).json()
    assert [v["number"] for v in listing[0]["versions"]] == [1]


@pytest.fixture
def env_settings(monkeypatch, db):
    """Settings from the given STRATA_* variables for one test."""

    def apply(**variables: str):
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        reset_caches()
        return get_settings()

    yield apply
    monkeypatch.undo()
    reset_caches()


async def test_a_file_over_the_size_limit_is_a_413_before_anything_is_stored(client, staff_headers, env_settings):
    settings = env_settings(STRATA_DATASET_MAX_MB="0.01")  # 10 KB
    # Over STRATA_DATASET_MAX_MB but within the route's multipart allowance: the upload's own count refuses it.
    data = b"text,label\n" + b"some words,a\n" * 1000
    response = await upload(client, staff_headers, "big", "big.csv", data)
    assert response.status_code == 413
    assert "larger than the limit of 0.01 MB for a dataset; nothing was stored" in response.json()["detail"]
    # Far over it: the body limit refuses it from Content-Length before the route reads a byte.
    response = await upload(client, staff_headers, "big", "big.csv", data * 100)
    assert response.status_code == 413
    assert stored_files(settings) == []
    assert (await client.get("/api/v1/datasets", headers=staff_headers)).json() == []


async def test_a_missing_label_column_is_a_422_naming_it_and_listing_the_columns(client, staff_headers):
    created = await upload(client, staff_headers, "ds", "ds.csv", b"text,topic\nhello,a\n")
    assert created.status_code == 201, created.text
    response = await client.get(
        "/api/v1/datasets/ds/versions/1/quality", headers=staff_headers, params={"label_column": "label"}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "There is no column 'label' to use as the label column; the columns are 'text', 'topic'."
    )


async def test_quality_warnings_name_small_and_dominant_classes_empty_and_long_texts(client, staff_headers):
    rows = ["text,label"] + [f"message number {i},ham" for i in range(95)] + [f"spam {i},spam" for i in range(4)]
    rows += [",ham", "word " * 300 + ",ham"]
    assert (await upload(client, staff_headers, "mail", "mail.csv", "\n".join(rows).encode())).status_code == 201
    report = (
        await client.get(
            "/api/v1/datasets/mail/versions/1/quality",
            headers=staff_headers,
            params={"label_column": "label", "text_column": "text"},
        )
    ).json()
    assert report["label_distribution"][1] == {"label": "spam", "rows": 4, "share": 0.0396}
    warnings = "\n".join(report["warnings"])
    assert "1 classes have fewer than 10 rows: 'spam' (4)" in warnings
    assert "The class 'ham' has 96% of the labelled rows" in warnings
    assert "1 texts in 'text' are empty (the first is row 100)" in warnings
    assert (
        "1 texts in 'text' are longer than the embedder's limit of 256 word pieces (the first is row 101)" in warnings
    )


async def test_a_file_the_reader_cannot_finish_in_time_is_refused_and_nothing_stays(
    client, staff_headers, env_settings
):
    settings = env_settings(STRATA_DATASET_PARSE_TIMEOUT_SECONDS="0.01")
    response = await upload(client, staff_headers, "slow", "slow.csv", b"text,label\nhello,a\n")
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "Reading this dataset took longer than 0.01 s, the limit; split it into smaller files."
    )
    assert stored_files(settings) == []


async def test_uploads_take_from_the_callers_rate_limit(client, staff_headers, env_settings):
    settings = env_settings(STRATA_RATE_LIMIT_PER_MINUTE="1")
    assert (await upload(client, staff_headers, "one", "one.csv", b"a,b\n1,2\n")).status_code == 201
    refused = await upload(client, staff_headers, "two", "two.csv", b"a,b\n3,4\n")
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert [d["name"] for d in (await client.get("/api/v1/datasets", headers=staff_headers)).json()] == ["one"]
    assert len(stored_files(settings)) == 1


def test_the_word_piece_check_on_a_texts_start_agrees_with_tokenizing_it_whole(bbc_news_csv):
    """Long texts are first tokenized only up to a word boundary near their start; the verdict
    over the limit or not must equal the whole text's, also for texts built to mislead it."""
    from app.datasets.profiling import _WordPieces
    from app.datasets.storage import _embedder_tokenizer

    tokenizer_path, max_length = _embedder_tokenizer(get_settings())
    assert tokenizer_path, "the embedder is not built"
    pieces = _WordPieces(tokenizer_path, max_length)
    texts = [text for text, _ in list(csv.reader(io.StringIO(bbc_news_csv.decode())))[1:400]]
    texts += ["a" * 5000, "word " * 254, "word " * 253, ("x" * 2100 + " ") * 3, "é " * 300, "\n".join(["ok"] * 600)]
    assert pieces.over_limit(texts) == pieces._over(texts)
