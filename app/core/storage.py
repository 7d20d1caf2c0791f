"""Where files live: uploaded documents, dataset versions, model artifacts, batch inputs and
outputs, backups. One interface, two backends: a files root (the data dir by default; a
shared mount such as NFS or a ReadWriteMany volume for scale-out) or an S3-compatible
bucket (MinIO, Ceph, AWS). Web and worker processes on different machines, each with its
own data dir, read and write the same keys.

Keys are relative posix paths under one of KEY_AREAS (`datasets/objects/<sha256>`,
`knowledge/<kb>/<file>`, `predict/<model>/...`), so a key can never reach the database,
the secrets or the embedded services that share the data dir with the files root."""

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

import structlog

from app.core.errors import ServiceUnavailable
from app.core.settings import Settings, get_settings

KEY_AREAS = ("datasets", "knowledge", "predict", "batch", "backups")
MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes
COPY_CHUNK_BYTES = 1024 * 1024
# Half-written files of an atomic save: never listed as keys.
TEMP_PREFIX = ".strata-tmp-"


log = structlog.get_logger()


class StorageKeyMissing(FileNotFoundError):
    """The key holds nothing (a FileNotFoundError, so callers that caught that keep working)."""


class StorageUnavailable(ServiceUnavailable):
    """The store did not answer or refused; the server log says why (the user is not shown
    the store's address or its error)."""


def validate_key(key: str) -> str:
    """`key` if it is a safe relative posix path under one of KEY_AREAS, else ValueError."""
    _check_parts(key, what="key")
    return key


def normalise_prefix(prefix: str) -> str:
    """A folder of keys, as `area/...` ending in a slash ('' for every area); ValueError if unsafe.
    A folder, not a string prefix: `batch/ab` must not reach `batch/abc/`."""
    if prefix == "":
        return ""
    _check_parts(prefix.rstrip("/"), what="prefix")
    return prefix.rstrip("/") + "/"


def _check_parts(value: str, *, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"A storage {what} must be a non-empty string.")
    if len(value.encode()) > MAX_KEY_LENGTH:
        raise ValueError(f"A storage {what} has at most {MAX_KEY_LENGTH} bytes.")
    if "\\" in value or "\x00" in value or value.startswith("/"):
        raise ValueError(f"Storage {what} {value!r} is not a relative posix path.")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"Storage {what} {value!r} has an empty, '.' or '..' part.")
    if parts[0] not in KEY_AREAS:
        raise ValueError(f"Storage {what} {value!r} is not under one of {', '.join(KEY_AREAS)}.")
    if any(part.startswith(TEMP_PREFIX) for part in parts):
        raise ValueError(f"Storage {what} {value!r} uses the reserved name {TEMP_PREFIX!r}.")


class Storage(Protocol):
    def save(self, key: str, source: Path | BinaryIO) -> int:
        """Stores `source` (a file, or a stream read to its end) at `key` atomically: readers see
        the old object or the whole new one. Returns the bytes stored."""

    def open(self, key: str) -> BinaryIO:
        """A read stream of the object; StorageKeyMissing if there is none."""

    def local_path(self, key: str) -> Path:
        """A local file holding the object, for readers that need a path (parsers, pyarrow,
        onnxruntime). Treat it as read-only. StorageKeyMissing if there is none."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Removes the object; a missing one is fine."""

    def delete_prefix(self, prefix: str) -> int:
        """Removes every key in the folder `prefix`; returns how many."""

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """(key, size) of every object in the folder `prefix` (all areas for ''), sorted by key."""


def _write_stream(source: BinaryIO, target: BinaryIO) -> int:
    written = 0
    while chunk := source.read(COPY_CHUNK_BYTES):
        target.write(chunk)
        written += len(chunk)
    return written


class FilesStorage:
    """Keys as files under `root`; a temp file in the target's folder renamed over it makes
    each save atomic, also on NFS (rename is atomic there within one directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def save(self, key: str, source: Path | BinaryIO) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(temporary, "wb") as out:
                if isinstance(source, Path):
                    with open(source, "rb") as inp:
                        written = _write_stream(inp, out)
                else:
                    written = _write_stream(source, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return written

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise StorageKeyMissing(f"No object stored at {key!r}.") from None

    def local_path(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise StorageKeyMissing(f"No object stored at {key!r}.")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            pass

    def delete_prefix(self, prefix: str) -> int:
        folder = normalise_prefix(prefix)
        if not folder:
            raise ValueError("Deleting every key at once is refused; name a folder.")
        deleted = 0
        for key, _size in list(self.iter_keys(folder)):
            self.delete(key)
            deleted += 1
        shutil.rmtree(self.root / folder, ignore_errors=True)
        return deleted

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        folder = normalise_prefix(prefix)
        starts = [self.root / folder] if folder else [self.root / area for area in KEY_AREAS]
        found: list[tuple[str, int]] = []
        for start in starts:
            for directory, _dirs, files in os.walk(start):
                for name in files:
                    if name.startswith(TEMP_PREFIX):
                        continue
                    path = Path(directory) / name
                    try:
                        size = path.stat().st_size
                    except FileNotFoundError:  # deleted while we walked
                        continue
                    found.append((path.relative_to(self.root).as_posix(), size))
        yield from sorted(found)


class S3Storage:
    """Keys as objects under `s3://bucket/prefix`. An upload is one PUT or a multipart upload,
    each visible only once complete; local_path keeps a copy under `cache_dir`, fetched again
    when the object's ETag or size changed."""

    def __init__(
        self,
        *,
        url: str,
        cache_dir: Path,
        endpoint_url: str = "",
        region: str = "",
        access_key_id: str = "",
        secret_access_key: str = "",
    ) -> None:
        # Imported here: the files backend (the embedded default) never pays for loading boto3.
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"STRATA_STORAGE_URL must look like s3://bucket/prefix, not {url!r}.")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.cache_dir = cache_dir.resolve()
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                # MinIO and Ceph are addressed by path (no wildcard DNS per bucket on premises).
                s3={"addressing_style": "path" if endpoint_url else "auto"},
            ),
        )
        # Parts of 8 MB, two at a time (the machine's cores serve users meanwhile).
        self.transfer = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
        self._cache_locks: dict[str, threading.Lock] = {}
        self._cache_guard = threading.Lock()

    def _object(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key_of(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    @contextmanager
    def _answering(self, key: str) -> Iterator[None]:
        """Turns the store's errors into StorageKeyMissing (no such object) or StorageUnavailable."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound"):
                raise StorageKeyMissing(f"No object stored at {key!r}.") from None
            log.error("storage.failed", bucket=self.bucket, key=key, error=str(error))
            raise StorageUnavailable("The file store refused the request; the server log says why.") from error
        except (BotoCoreError, Boto3Error) as error:
            log.error("storage.failed", bucket=self.bucket, key=key, error=str(error))
            raise StorageUnavailable("The file store is unavailable; the server log says why.") from error

    def save(self, key: str, source: Path | BinaryIO) -> int:
        name = self._object(key)
        if isinstance(source, Path):
            size = source.stat().st_size
            with self._answering(key):
                self.client.upload_file(str(source), self.bucket, name, Config=self.transfer)
            return size
        # boto3 reads a stream's parts into memory, several at once; spooled to a local file
        # first, the upload reads it by ranges and holds a few MB whatever the size.
        spool_dir = self.cache_dir / "spool"
        spool_dir.mkdir(parents=True, exist_ok=True)
        spool = spool_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(spool, "wb") as out:
                size = _write_stream(source, out)
            with self._answering(key):
                self.client.upload_file(str(spool), self.bucket, name, Config=self.transfer)
        finally:
            spool.unlink(missing_ok=True)
        return size

    def _head(self, key: str) -> dict:
        with self._answering(key):
            return self.client.head_object(Bucket=self.bucket, Key=self._object(key))

    def open(self, key: str) -> BinaryIO:
        with self._answering(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._object(key))["Body"]

    def local_path(self, key: str) -> Path:
        head = self._head(key)
        version = f"{head['ETag']} {head['ContentLength']}"
        copy = self.cache_dir / "objects" / key
        stamp = self.cache_dir / "etags" / key
        with self._cache_guard:
            lock = self._cache_locks.setdefault(key, threading.Lock())
        with lock:
            if copy.is_file() and stamp.is_file() and stamp.read_text() == version:
                return copy
            copy.parent.mkdir(parents=True, exist_ok=True)
            stamp.parent.mkdir(parents=True, exist_ok=True)
            # Another process may fetch the same key: each writes its own temp file, and the
            # renames leave a whole copy either way.
            temporary = copy.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex}")
            try:
                with self._answering(key):
                    self.client.download_file(self.bucket, self._object(key), str(temporary), Config=self.transfer)
                os.replace(temporary, copy)
            finally:
                temporary.unlink(missing_ok=True)
            stamp.write_text(version)
            return copy

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except StorageKeyMissing:
            return False
        return True

    def _forget_copy(self, key: str) -> None:
        (self.cache_dir / "objects" / key).unlink(missing_ok=True)
        (self.cache_dir / "etags" / key).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        with self._answering(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        self._forget_copy(key)

    def delete_prefix(self, prefix: str) -> int:
        folder = normalise_prefix(prefix)
        if not folder:
            raise ValueError("Deleting every key at once is refused; name a folder.")
        keys = [key for key, _size in self.iter_keys(folder)]
        for start in range(0, len(keys), 1000):  # S3 deletes at most 1000 objects a request
            batch = keys[start : start + 1000]
            with self._answering(folder):
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._object(key)} for key in batch], "Quiet": True},
                )
            for key in batch:
                self._forget_copy(key)
        return len(keys)

    def iter_keys(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        folder = normalise_prefix(prefix)
        listed = f"{self.prefix}/{folder}" if self.prefix else folder
        pages = iter(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=listed))
        # S3 lists keys in UTF-8 byte order, which is Python's order of the same strings.
        while True:
            with self._answering(folder):
                page = next(pages, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                key = self._key_of(item["Key"])
                try:
                    validate_key(key)
                except ValueError:  # not Strata's (put there by hand)
                    continue
                yield key, item["Size"]


def storage_from_settings(settings: Settings) -> Storage:
    if settings.storage_url:
        return S3Storage(
            url=settings.storage_url,
            cache_dir=settings.resolved_data_dir / "cache" / "storage",
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        )
    return FilesStorage(settings.resolved_files_dir)


@lru_cache
def get_storage() -> Storage:
    """The configured store, one per process (boto3 clients are thread-safe)."""
    return storage_from_settings(get_settings())
