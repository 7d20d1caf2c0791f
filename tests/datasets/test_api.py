"""The datasets API: versions by content, schema, first rows and quality on real data
(BBC News), download, lineage and roles."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import select

from app.datasets import service
from app.datasets.tables import DatasetLineage, DatasetVersion, LineageKind
from tests.datasets.conftest import stored_files, upload


async def test_bbc_news_csv_becomes_a_version_with_schema_rows_and_quality(client, staff_headers, bbc_news_csv):
    response = await upload(client, staff_headers, "bbc-news", "bbc.csv", bbc_news_csv)
    assert response.status_code == 201, response.text
    version = response.json()
    assert (version["dataset"], version["number"], version["format"], version["existing"]) == (
        "bbc-news",
        1,
        "csv",
        False,
    )
    assert version["row_count"] == 2225
    assert version["columns"] == [{"name": "text", "type": "text"}, {"name": "topic", "type": "text"}]
    assert len(version["preview"]) == 20 and version["preview"][0][1] == "business"
    text = next(c for c in version["quality"]["columns"] if c["name"] == "text")
    assert text["missing"] == 0
    assert text["text_lengths"]["min"] < text["text_lengths"]["median"] < text["text_lengths"]["max"]
    # BBC articles are long: most pass the embedder's 256 word pieces, counted with its tokenizer.
    assert text["text_lengths"]["over_limit"] > 1000
    assert "embedder's tokenizer" in version["quality"]["length_unit"]
    assert any("longer than the embedder's limit of 256 word pieces" in w for w in version["quality"]["warnings"])

    quality = await client.get(
        "/api/v1/datasets/bbc-news/versions/1/quality", headers=staff_headers, params={"label_column": "topic"}
    )
    assert quality.status_code == 200, quality.text
    distribution = {item["label"]: item["rows"] for item in quality.json()["label_distribution"]}
    assert distribution == {"business": 510, "entertainment": 386, "politics": 417, "sports": 511, "tech": 401}


async def test_identical_upload_answers_with_the_existing_version_and_stores_nothing_new(
    client, staff_headers, settings
):
    data = b"text,label\nhello,a\nworld,b\n"
    first = await upload(client, staff_headers, "tiny", "tiny.csv", data)
    assert first.status_code == 201, first.text
    files = stored_files(settings)
    again = await upload(client, staff_headers, "tiny", "renamed.csv", data)
    assert again.status_code == 200, again.text
    assert (again.json()["number"], again.json()["existing"]) == (1, True)
    assert stored_files(settings) == files == [f"objects/{first.json()['sha256']}"]

    second = await upload(client, staff_headers, "tiny", "tiny.csv", data + b"again,c\n")
    assert (second.status_code, second.json()["number"]) == (201, 2)
    # The same bytes in another dataset: a version of it, the file shared.
    other = await upload(client, staff_headers, "copy", "tiny.csv", data)
    assert (other.status_code, other.json()["number"], other.json()["sha256"]) == (201, 1, first.json()["sha256"])
    assert len(stored_files(settings)) == 2

    listing = (await client.get("/api/v1/datasets", headers=staff_headers)).json()
    assert [(d["name"], [v["number"] for v in d["versions"]]) for d in listing] == [("copy", [1]), ("tiny", [2, 1])]


@pytest.mark.parametrize(
    ("filename", "data", "media_type"),
    [
        ("rows.csv", b"text,label\nhi,a\n", "text/csv"),
        ("rows.jsonl", b'{"text": "hi", "label": "a"}\n', "application/x-ndjson"),
        ("rows.parquet", None, "application/vnd.apache.parquet"),
    ],
)
async def test_download_serves_the_bytes_as_an_attachment(
    client, viewer_headers, staff_headers, filename, data, media_type
):
    if data is None:
        out = io.BytesIO()
        pq.write_table(pa.table({"text": ["hi"], "label": ["a"]}), out)
        data = out.getvalue()
    assert (await upload(client, staff_headers, "rows", filename, data)).status_code == 201
    response = await client.get("/api/v1/datasets/rows/versions/1/download", headers=viewer_headers)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-disposition"].startswith("attachment;")
    assert f"rows-v1.{filename.rsplit('.', 1)[1]}" in response.headers["content-disposition"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_viewers_read_and_download_but_may_not_upload_or_delete(client, staff_headers, viewer_headers, settings):
    assert (await upload(client, staff_headers, "shared", "s.csv", b"a,b\n1,2\n")).status_code == 201
    refused = await upload(client, viewer_headers, "mine", "m.csv", b"a,b\n1,2\n")
    assert refused.status_code == 403
    assert "staff" in refused.json()["detail"]
    assert (await client.get("/api/v1/datasets/shared/versions/1", headers=viewer_headers)).status_code == 200
    deleted = await client.delete("/api/v1/datasets/shared/versions/1", headers=viewer_headers)
    assert deleted.status_code == 403
    assert [d["name"] for d in (await client.get("/api/v1/datasets", headers=viewer_headers)).json()] == ["shared"]
    assert len(stored_files(settings)) == 1


async def test_deleting_a_version_a_model_was_trained_on_is_refused_naming_the_model(
    client, staff_headers, settings, staff
):
    data = b"text,label\nhello,a\nworld,b\n"
    assert (await upload(client, staff_headers, "spam", "spam.csv", data)).status_code == 201
    from app.core.db import session_scope

    with session_scope() as db_session:
        version = db_session.exec(select(DatasetVersion)).one()
        service.record_lineage(
            db_session=db_session,
            actor=staff,
            dataset_version_id=version.id,
            kind=LineageKind.training_run,
            ref_id="17",
            label="training run 17",
        )
        service.record_lineage(
            db_session=db_session,
            actor=staff,
            dataset_version_id=version.id,
            kind=LineageKind.model_version,
            ref_id="3",
            label="model spam-filter version 2",
        )
    shown = (await client.get("/api/v1/datasets/spam/versions/1", headers=staff_headers)).json()
    assert [(link["kind"], link["label"]) for link in shown["lineage"]] == [
        ("training_run", "training run 17"),
        ("model_version", "model spam-filter version 2"),
    ]
    refused = await client.delete("/api/v1/datasets/spam/versions/1", headers=staff_headers)
    assert refused.status_code == 409
    assert (
        refused.json()["detail"] == "Version 1 of 'spam' cannot be deleted: it is used by model spam-filter version 2."
    )
    assert len(stored_files(settings)) == 1

    with session_scope() as db_session:
        for link in db_session.exec(select(DatasetLineage).where(DatasetLineage.kind == "model_version")):
            db_session.delete(link)
    assert (await client.delete("/api/v1/datasets/spam/versions/1", headers=staff_headers)).status_code == 204
    assert stored_files(settings) == []
    assert (await client.get("/api/v1/datasets", headers=staff_headers)).json() == []


async def test_a_name_no_dataset_can_have_is_a_404_on_every_database(client, viewer_headers):
    for name in ("nul%00byte", "a" * 300, "..", "ünïcode"):
        response = await client.get(f"/api/v1/datasets/{name}/versions/1", headers=viewer_headers)
        assert response.status_code == 404, (name, response.text)
