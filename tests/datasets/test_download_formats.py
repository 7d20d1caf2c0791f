"""A version downloads as uploaded, or converted to CSV or Parquet (`?format=`): converted once in
the sandbox, typed by the profile in Parquet, removed with the version's file."""

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq

from tests.datasets.conftest import stored_files, upload

CSV = b"id,text,score,ok\n1,Good film,4.5,true\n2,,3,false\n3,Bad film,,\n"
JSONL = b"".join(
    json.dumps(record).encode() + b"\n"
    for record in [
        {"text": "a", "tags": ["x", "y"], "n": 1},
        {"text": "b", "meta": {"k": 1}, "n": 2},
        {"text": None, "n": 3},
    ]
)


async def test_csv_downloads_as_typed_parquet_once_and_the_conversion_goes_with_the_version(
    client, staff_headers, viewer_headers, settings
):
    version = (await upload(client, staff_headers, "films", "films.csv", CSV)).json()
    url = "/api/v1/datasets/films/versions/1/download"
    response = await client.get(url, headers=viewer_headers, params={"format": "parquet"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert 'filename="films-v1.parquet"' in response.headers["content-disposition"]
    assert response.headers["x-content-type-options"] == "nosniff"
    table = pq.read_table(io.BytesIO(response.content))
    assert [(field.name, str(field.type)) for field in table.schema] == [
        ("id", "int64"),
        ("text", "string"),
        ("score", "double"),
        ("ok", "bool"),
    ]
    assert table.to_pylist() == [
        {"id": 1, "text": "Good film", "score": 4.5, "ok": True},
        {"id": 2, "text": "", "score": 3.0, "ok": False},
        {"id": 3, "text": "Bad film", "score": None, "ok": None},
    ]
    assert stored_files(settings) == [f"converted/{version['sha256']}.parquet", f"objects/{version['sha256']}"]
    again = await client.get(url, headers=viewer_headers, params={"format": "parquet"})
    assert again.content == response.content
    as_uploaded = await client.get(url, headers=viewer_headers, params={"format": "csv"})
    assert as_uploaded.content == CSV and len(stored_files(settings)) == 2

    refused = await client.get(url, headers=viewer_headers, params={"format": "xlsx"})
    assert refused.status_code == 422 and "format" in refused.json()["detail"]
    assert (await client.delete("/api/v1/datasets/films/versions/1", headers=staff_headers)).status_code == 204
    assert stored_files(settings) == []


async def test_jsonl_downloads_as_csv_and_parquet_with_lists_and_objects_as_json(client, staff_headers):
    await upload(client, staff_headers, "events", "events.jsonl", JSONL)
    url = "/api/v1/datasets/events/versions/1/download"
    rows = list(csv.reader(io.StringIO((await client.get(url, headers=staff_headers, params={"format": "csv"})).text)))
    assert rows == [
        ["text", "tags", "n", "meta"],
        ["a", '["x", "y"]', "1", ""],
        ["b", "", "2", '{"k": 1}'],
        ["", "", "3", ""],
    ]
    table = pq.read_table(
        io.BytesIO((await client.get(url, headers=staff_headers, params={"format": "parquet"})).content)
    )
    assert table.schema.field("n").type == pa.int64() and table.schema.field("tags").type == pa.string()
    assert table.column("tags").to_pylist() == ['["x", "y"]', None, None]
    assert table.column("text").to_pylist() == ["a", "b", None]
