"""The storage interface (app/core/storage.py) on both backends: a files root and an
S3-compatible server (moto's standalone server, a real process)."""

import hashlib
import io
import os
import tracemalloc
import uuid
from pathlib import Path

import pytest

from app.core.settings import Settings
from app.core.storage import FilesStorage, S3Storage, StorageKeyMissing, StorageUnavailable, storage_from_settings
from tests.conftest import free_port


@pytest.fixture(params=["files", "s3"])
def store(request, tmp_path):
    if request.param == "files":
        settings = Settings(data_dir=tmp_path / "data", files_dir=tmp_path / "shared")
    else:
        s3_server = request.getfixturevalue("s3_server")
        bucket_url = s3_server.create_bucket(f"strata-{uuid.uuid4().hex[:12]}")
        settings = Settings(
            data_dir=tmp_path / "data",
            storage_url=bucket_url,
            s3_endpoint_url=s3_server.endpoint_url,
            s3_region="us-east-1",
            s3_access_key_id=s3_server.access_key_id,
            s3_secret_access_key=s3_server.secret_access_key,
        )
    storage = storage_from_settings(settings)
    assert isinstance(storage, FilesStorage if request.param == "files" else S3Storage)
    return storage


def test_round_trip_from_a_path_and_from_a_stream(store, tmp_path):
    source = tmp_path / "report.csv"
    source.write_bytes(b"text,label\nhello,1\n")

    assert store.save("datasets/objects/abc", source) == 19
    assert store.save("knowledge/1/notes.txt", io.BytesIO(b"some notes")) == 10

    with store.open("datasets/objects/abc") as stream:
        assert stream.read() == b"text,label\nhello,1\n"
    assert store.local_path("knowledge/1/notes.txt").read_bytes() == b"some notes"
    assert store.exists("datasets/objects/abc")
    assert not store.exists("datasets/objects/other")
    assert source.read_bytes() == b"text,label\nhello,1\n", "saving leaves the source as it was"


def test_overwrite_replaces_the_whole_object(store):
    store.save("predict/m/1/model.onnx", io.BytesIO(b"first version, longer"))
    store.save("predict/m/1/model.onnx", io.BytesIO(b"second"))

    with store.open("predict/m/1/model.onnx") as stream:
        assert stream.read() == b"second"
    assert list(store.iter_keys("predict/m")) == [("predict/m/1/model.onnx", 6)]


def test_a_missing_key_is_a_clear_error_and_deleting_it_is_fine(store):
    with pytest.raises(StorageKeyMissing, match="batch/job/output.csv"):
        store.open("batch/job/output.csv")
    with pytest.raises(FileNotFoundError):  # what callers catching the old error still see
        store.local_path("batch/job/output.csv")
    store.delete("batch/job/output.csv")


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "datasets/../../etc/passwd",
        "/etc/passwd",
        "datasets\\..\\strata.db",
        "strata.db",
        "run/valkey.password",
        "datasets//x",
        "datasets/./x",
        "datasets/x/",
        "",
        "datasets/x\x00y",
        "datasets/.strata-tmp-123",
    ],
)
def test_unsafe_keys_are_refused_before_anything_is_touched(store, key):
    with pytest.raises(ValueError):
        store.save(key, io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        store.open(key)
    with pytest.raises(ValueError):
        store.delete(key)


def test_a_key_cannot_reach_the_data_dir_beside_the_files(tmp_path):
    """The default files root is the data dir itself, holding the database and secrets."""
    data = tmp_path / "data"
    (data / "run").mkdir(parents=True)
    (data / "strata.db").write_bytes(b"database")
    (data / "run" / "valkey.password").write_text("secret")
    store = storage_from_settings(Settings(data_dir=data))
    store.save("datasets/objects/a", io.BytesIO(b"a"))

    assert list(store.iter_keys()) == [("datasets/objects/a", 1)]
    for key in ("strata.db", "run/valkey.password", "datasets/../strata.db"):
        with pytest.raises(ValueError):
            store.open(key)
    with pytest.raises(ValueError):
        store.delete_prefix("")
    assert (data / "strata.db").read_bytes() == b"database"


def test_iter_keys_and_delete_prefix_work_on_folders(store):
    for key in ("batch/ab/input.csv", "batch/ab/chunks/0.csv", "batch/abc/input.csv", "knowledge/2/a.pdf"):
        store.save(key, io.BytesIO(key.encode()))

    assert list(store.iter_keys("batch/ab")) == [
        ("batch/ab/chunks/0.csv", len("batch/ab/chunks/0.csv")),
        ("batch/ab/input.csv", len("batch/ab/input.csv")),
    ]
    assert [key for key, _ in store.iter_keys()] == [
        "batch/ab/chunks/0.csv",
        "batch/ab/input.csv",
        "batch/abc/input.csv",
        "knowledge/2/a.pdf",
    ]

    assert store.delete_prefix("batch/ab/") == 2
    assert [key for key, _ in store.iter_keys()] == ["batch/abc/input.csv", "knowledge/2/a.pdf"]
    assert store.delete_prefix("batch/nothing") == 0


def test_a_large_file_is_streamed_not_loaded_whole(store, tmp_path):
    size = 20 * 1024 * 1024
    source = tmp_path / "large.bin"
    digest = hashlib.sha256()
    with open(source, "wb") as out:
        for _ in range(size // (1024 * 1024)):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)

    tracemalloc.start()
    try:
        assert store.save("datasets/objects/large", source) == size
        with open(source, "rb") as stream:
            assert store.save("datasets/objects/large-from-stream", stream) == size
        read = hashlib.sha256()
        with store.open("datasets/objects/large") as stream:
            while chunk := stream.read(1024 * 1024):
                read.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert read.hexdigest() == digest.hexdigest()
    assert hashlib.sha256(store.local_path("datasets/objects/large-from-stream").read_bytes()).digest() == (
        digest.digest()
    )
    assert peak < size // 4, f"saving and reading 20 MB held {peak / 2**20:.1f} MB in memory at once"


def test_local_path_follows_the_object_when_it_changes(store):
    store.save("predict/m/1/head.onnx", io.BytesIO(b"weights one"))
    first = store.local_path("predict/m/1/head.onnx")
    assert first.read_bytes() == b"weights one"

    store.save("predict/m/1/head.onnx", io.BytesIO(b"weights two!"))
    assert store.local_path("predict/m/1/head.onnx").read_bytes() == b"weights two!"

    store.delete("predict/m/1/head.onnx")
    with pytest.raises(StorageKeyMissing):
        store.local_path("predict/m/1/head.onnx")


def test_two_processes_with_different_data_dirs_share_one_store(request, tmp_path):
    """What a web process saves, a worker with a data dir of its own reads (S3 and a shared mount)."""
    s3_server = request.getfixturevalue("s3_server")
    bucket_url = s3_server.create_bucket(f"strata-{uuid.uuid4().hex[:12]}")
    shared = tmp_path / "nfs"
    for make in (
        lambda data: Settings(
            data_dir=data,
            **{k.removeprefix("STRATA_").lower(): v for k, v in s3_server.environment(bucket_url).items()},
        ),
        lambda data: Settings(data_dir=data, files_dir=shared),
    ):
        web = storage_from_settings(make(tmp_path / f"web-{uuid.uuid4().hex}"))
        worker = storage_from_settings(make(tmp_path / f"worker-{uuid.uuid4().hex}"))
        web.save("knowledge/7/handbook.txt", io.BytesIO(b"the handbook"))

        path = worker.local_path("knowledge/7/handbook.txt")
        assert path.read_bytes() == b"the handbook"
        assert not path.is_relative_to(tmp_path / "web"), "the worker reads its own copy or the shared mount"


def test_a_bad_storage_url_is_refused(tmp_path):
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        storage_from_settings(Settings(data_dir=tmp_path, storage_url="http://minio:9000/bucket"))


def test_the_default_files_root_is_the_data_dir(tmp_path):
    """Existing installs keep their stored paths: `datasets/objects/<sha>` under the data dir."""
    store = storage_from_settings(Settings(data_dir=tmp_path))
    store.save("datasets/objects/abc", io.BytesIO(b"x"))
    assert (tmp_path / "datasets" / "objects" / "abc").read_bytes() == b"x"
    assert isinstance(store.local_path("datasets/objects/abc"), Path)


def test_an_unreachable_store_is_a_clear_error_naming_no_address(tmp_path):
    """A user sees that the file store is down, not the store's address or a traceback."""
    closed = f"http://127.0.0.1:{free_port()}"
    store = storage_from_settings(
        Settings(data_dir=tmp_path, storage_url="s3://strata/files", s3_endpoint_url=closed, s3_region="us-east-1")
    )
    for attempt in (
        lambda: store.save("datasets/objects/a", io.BytesIO(b"a")),
        lambda: store.open("datasets/objects/a"),
        lambda: store.local_path("datasets/objects/a"),
        lambda: list(store.iter_keys("datasets")),
    ):
        with pytest.raises(StorageUnavailable) as refused:
            attempt()
        assert refused.value.status_code == 503 and "127.0.0.1" not in refused.value.message
