"""Files shared the way clusters share them (issue 12, point 3): the web side (this process)
stores a dataset version and a trained model in an S3-compatible store (moto's server); a
worker with a data dir of its own reads both from there, scores, and stores the result,
which the web then serves."""

import pytest

from app.core.settings import get_settings
from app.core.storage import get_storage
from tests.batch.conftest import MODEL, reviews_csv, start, upload, wait_batch
from tests.batch.test_worker import csv_rows, download, expected_outputs
from tests.conftest import WorkerProcess

ROWS = 2_500


async def test_a_worker_with_its_own_data_dir_scores_what_the_web_stored_in_s3(
    s3_storage, client, worker_env, staff_headers, reviews_model, snippets, trained, tmp_path
):
    data, written = reviews_csv(snippets[0], rows=ROWS)
    version = await upload(client, staff_headers, "snippets", "snippets.csv", data)
    worker_data = tmp_path / "worker-data"
    worker = WorkerProcess({**worker_env, **s3_storage, "STRATA_DATA_DIR": str(worker_data)}).start()
    try:
        batch = await start(client, staff_headers, dataset="snippets", text_column="text", model=MODEL)
        done = await wait_batch(client, staff_headers, batch["id"])
    finally:
        worker.stop()
    assert done["status"] == "succeeded", done["error"]

    rows = csv_rows(await download(client, staff_headers, done, "csv"))
    assert [row["text"] for row in rows] == written
    for row, expected in zip(rows, expected_outputs(trained, written), strict=True):
        if expected is not None:
            assert (row["prediction"], row["model_version"]) == (expected[0], "1")
            assert float(row["confidence"]) == pytest.approx(expected[1], abs=2e-6)

    # The web kept its files in the bucket only; the worker read its own copies of the
    # dataset and of the trained model, fetched from the bucket.
    sha256 = version["sha256"]
    assert not (get_settings().resolved_data_dir / "datasets" / "objects" / sha256).exists()
    copies = worker_data / "cache" / "storage" / "objects"
    assert (copies / "datasets" / "objects" / sha256).read_bytes() == data
    assert (copies / "predict" / MODEL / "v1.onnx").read_bytes() == trained.onnx_model
    keys = [key for key, _size in get_storage().iter_keys()]
    assert f"datasets/objects/{sha256}" in keys and f"predict/{MODEL}/v1.onnx" in keys
    assert not [key for key in keys if key.startswith("batch/")], "a finished job's chunks are removed"
