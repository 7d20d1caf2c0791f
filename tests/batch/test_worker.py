"""Batch jobs run by real `strata worker` processes on a classifier trained in Strata: 10,500
Rotten Tomatoes snippets, a worker SIGKILLed mid-job and the result compared with an
uninterrupted run row by row; cancel; rows without text; results downloaded as CSV and Parquet."""

import asyncio
import csv
import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlmodel import col, select

from app.batch import running
from app.batch.tables import BatchChunk
from app.core.db import session_scope
from app.core.settings import get_settings
from app.core.storage import get_storage
from app.datasets.tables import DatasetLineage, LineageKind
from jobs.tables import Job
from models.trained import TrainedClassifier
from tests.batch.conftest import BATCH_ROWS, EMPTY_ROWS, MODEL, reviews_csv, start, upload, wait_batch

PROGRESS = re.compile(r"^[\d,]+ / 10,500 rows · [\d,]+ rows/s · ETA \d+:\d\d$")


def work_left(job_id: str) -> bool:
    """Whether anything of the job's work remains: its local folder or its stored chunks."""
    stored = list(get_storage().iter_keys(running.job_prefix(job_id)))
    return running.work_dir(get_settings(), job_id).exists() or bool(stored)


def chunks_of(batch_id: int) -> list[BatchChunk]:
    with session_scope() as db_session:
        return list(
            db_session.exec(
                select(BatchChunk).where(BatchChunk.batch_run_id == batch_id).order_by(col(BatchChunk.index))
            )
        )


async def wait_chunks(batch_id: int, count: int, timeout: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while len(chunks_of(batch_id)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {count} chunks of batch {batch_id} scored"
        await asyncio.sleep(0.05)


async def download(client, headers, batch: dict, file_format: str) -> bytes:
    response = await client.get(batch["result"][f"download_{file_format}"], headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "attachment" in response.headers["content-disposition"]
    return response.content


def csv_rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def expected_outputs(trained, texts: list[str]) -> list[tuple[str, float] | None]:
    """What the model itself answers for each text, None for a text it is not given."""
    model = TrainedClassifier.from_bytes(trained.onnx_model)
    scored = [i for i, text in enumerate(texts) if text.strip()]
    probabilities = model.probabilities_from_texts([texts[i] for i in scored])
    expected: list[tuple[str, float] | None] = [None] * len(texts)
    for i, row in zip(scored, probabilities, strict=True):
        expected[i] = (model.labels[int(row.argmax())], float(row.max()))
    return expected


async def test_a_worker_killed_mid_job_resumes_at_its_last_checkpoint_and_matches_an_uninterrupted_run(
    client, workers, worker_env, staff_headers, reviews_model, snippets, trained
):
    data, written = reviews_csv(snippets[0])
    await upload(client, staff_headers, "snippets", "snippets.csv", data)
    # Slow enough to be killed part-way (1,000-row chunks at 2,000 rows/s); the cap is a setting.
    worker_env["STRATA_BATCH_MAX_ROWS_PER_SECOND"] = "2000"
    first = workers()
    killed = await start(client, staff_headers, dataset="snippets", text_column="text", model=MODEL)
    await wait_chunks(killed["id"], 3)
    messages = {(await client.get(f"/api/v1/batch-jobs/{killed['id']}", headers=staff_headers)).json()["message"]}
    first.kill()
    assert len(chunks_of(killed["id"])) < 11, "the job finished before the worker was killed"

    workers()
    resumed = await wait_batch(client, staff_headers, killed["id"])
    assert resumed["status"] == "succeeded", resumed["error"]
    uninterrupted = await start(client, staff_headers, dataset="snippets", text_column="text", model=MODEL)
    batch = await wait_batch(client, staff_headers, uninterrupted["id"], messages=messages)
    assert batch["status"] == "succeeded", batch["error"]

    # Each chunk was checkpointed once: the first attempt's chunks were not scored again.
    chunks = chunks_of(killed["id"])
    assert [chunk.index for chunk in chunks] == list(range(11))
    assert sum(chunk.rows for chunk in chunks) == BATCH_ROWS
    attempts = [chunk.attempt for chunk in chunks]
    assert attempts == sorted(attempts) and attempts[0] == 1 and attempts[-1] == 2 and attempts.count(1) >= 3
    assert {chunk.attempt for chunk in chunks_of(uninterrupted["id"])} == {1}
    with session_scope() as db_session:
        assert db_session.get(Job, killed["job_id"]).attempts == 2
    for run in (resumed, batch):
        assert (run["rows_done"], run["rows_failed"], run["rows_total"]) == (BATCH_ROWS, len(EMPTY_ROWS), BATCH_ROWS)
        assert run["result"]["dataset"] == "snippets-predictions" and run["rows_per_second"] > 0
        assert not work_left(run["job_id"])
    assert any(PROGRESS.match(message) for message in messages), messages

    # The same bytes: the uninterrupted run's result is the very same, content-addressed, version.
    assert batch["result"]["version"] == resumed["result"]["version"] == 1
    rows = csv_rows(await download(client, staff_headers, resumed, "csv"))
    assert list(rows[0]) == ["id", "text", "prediction", "confidence", "model_version", "error"]
    assert [row["text"] for row in rows] == written
    for number, (row, expected) in enumerate(zip(rows, expected_outputs(trained, written), strict=True), start=1):
        if expected is None:
            assert (row["prediction"], row["confidence"], row["error"]) == ("", "", "no text: the value is empty")
        else:
            assert (row["prediction"], row["error"], row["model_version"]) == (expected[0], "", "1"), number
            assert float(row["confidence"]) == pytest.approx(expected[1], abs=2e-6), number

    table = pq.read_table(io.BytesIO(await download(client, staff_headers, resumed, "parquet")))
    assert table.schema.field("confidence").type == pa.float64()
    assert table.schema.field("model_version").type == pa.int64()
    assert table.column("prediction").to_pylist() == [row["prediction"] for row in rows]
    assert table.column("confidence").to_pylist()[:50] == [
        float(row["confidence"]) if row["confidence"] else None for row in rows[:50]
    ]

    with session_scope() as db_session:
        links = db_session.exec(select(DatasetLineage).order_by(col(DatasetLineage.id))).all()
    kinds = [(link.kind, link.label) for link in links]
    assert (LineageKind.batch_job, f"batch job {killed['id']}: scored with {MODEL} version 1") in kinds
    assert (
        LineageKind.batch_result,
        f"snippets-predictions version 1, the result of batch job {killed['id']}",
    ) in kinds


async def test_cancel_stops_a_batch_job_and_leaves_no_result(
    client, workers, worker_env, staff_headers, reviews_model, snippets
):
    await upload(client, staff_headers, "snippets", "snippets.csv", reviews_csv(snippets[0])[0])
    worker_env["STRATA_BATCH_MAX_ROWS_PER_SECOND"] = "1000"
    workers()
    batch = await start(client, staff_headers, dataset="snippets", text_column="text", model=MODEL)
    await wait_chunks(batch["id"], 1)
    cancelled = await client.post(f"/api/v1/batch-jobs/{batch['id']}/cancel", headers=staff_headers)
    assert cancelled.status_code == 200, cancelled.text
    done = await wait_batch(client, staff_headers, batch["id"])
    assert done["status"] == "cancelled" and done["result"] is None
    assert done["rows_done"] < BATCH_ROWS
    assert not work_left(batch["job_id"])
    names = [dataset["name"] for dataset in (await client.get("/api/v1/datasets", headers=staff_headers)).json()]
    assert names == ["snippets"]


async def test_rows_without_text_get_an_error_and_the_rest_is_scored_in_jsonl_and_parquet(
    client, workers, staff_headers, reviews_model, trained
):
    records = [
        {"text": "A warm, funny and moving film.", "stars": 5},
        {"text": None, "stars": 1},
        {"text": ["a", "list"], "stars": 2},
        {"stars": 3},
        {"text": "   ", "stars": 4},
        {"text": 42, "stars": 5},
        {"text": "Dull, slow and far too long.", "stars": 1},
    ]
    jsonl = "".join(json.dumps(record) + "\n" for record in records).encode()
    await upload(client, staff_headers, "mixed", "mixed.jsonl", jsonl)
    table = pa.table({"review": ["Great fun.", None, "", "Terrible."], "n": [1, 2, 3, 4]})
    parquet = io.BytesIO()
    pq.write_table(table, parquet)
    await upload(client, staff_headers, "typed", "typed.parquet", parquet.getvalue())
    workers()
    from_jsonl = await start(client, staff_headers, dataset="mixed", text_column="text", model=MODEL)
    from_parquet = await start(client, staff_headers, dataset="typed", text_column="review", model=MODEL)

    done = await wait_batch(client, staff_headers, from_jsonl["id"])
    assert done["status"] == "succeeded", done["error"]
    assert (done["rows_total"], done["rows_done"], done["rows_failed"]) == (7, 7, 4)
    version = await client.get(
        f"/api/v1/datasets/mixed-predictions/versions/{done['result']['version']}", headers=staff_headers
    )
    assert version.json()["format"] == "jsonl" and version.json()["filename"] == f"mixed-v1-scored-{MODEL}-v1.jsonl"
    result = [
        json.loads(line)
        for line in (await client.get(version.json()["download_url"], headers=staff_headers)).text.splitlines()
    ]
    assert [row["error"] for row in result] == [
        None,
        "no text: the value is missing",
        "not text: the value is a list",
        "no text: the value is missing",
        "no text: the value is empty",
        None,
        None,
    ]
    expected = expected_outputs(
        trained, [str(r.get("text")) if isinstance(r.get("text"), str | int) else "" for r in records]
    )
    for row, record, answer in zip(result, records, expected, strict=True):
        assert {key: row[key] for key in record} == record  # the original values, as they were
        assert row["prediction"] == (answer[0] if answer else None) and row["model_version"] == 1
    as_csv = csv_rows(await download(client, staff_headers, done, "csv"))
    assert [row["stars"] for row in as_csv] == ["5", "1", "2", "3", "4", "5", "1"]
    assert as_csv[2]["text"] == '["a", "list"]' and as_csv[3]["text"] == ""

    typed = await wait_batch(client, staff_headers, from_parquet["id"])
    assert typed["status"] == "succeeded", typed["error"]
    result = pq.read_table(
        io.BytesIO(
            (await client.get("/api/v1/datasets/typed-predictions/versions/1/download", headers=staff_headers)).content
        )
    )
    assert result.column_names == ["review", "n", "prediction", "confidence", "model_version", "error"]
    assert result.column("n").to_pylist() == [1, 2, 3, 4] and result.schema.field("n").type == pa.int64()
    assert result.column("error").to_pylist() == [
        None,
        "no text: the value is missing",
        "no text: the value is empty",
        None,
    ]
    assert [row["review"] for row in csv_rows(await download(client, staff_headers, typed, "csv"))] == [
        "Great fun.",
        "",
        "",
        "Terrible.",
    ]
