"""The backup file: a gzipped tar whose last member, manifest.json, lists every other member
with its size and sha256. Restore reads the whole archive once to check it before it
changes anything, so a corrupted or truncated file is refused with nothing written."""

import hashlib
import io
import json
import tarfile
import time
import zlib
from pathlib import Path
from typing import IO, Any

from app.core.errors import InvalidInput

MANIFEST = "manifest.json"
FORMAT = 1
COPY_CHUNK = 1 << 20
# Level 3 compresses the JSON lines nearly as well as 9 at a fraction of the CPU, which the
# web and workers share with a backup taken while they serve.
COMPRESS_LEVEL = 3


class BadArchive(InvalidInput):
    """The file is not a complete, unaltered Strata backup."""


class _Hashing:
    """Reads through to `source`, hashing what passes."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        return data


class ArchiveWriter:
    """Writes to FILE.part and renames it when the manifest is in, so that an interrupted
    backup never looks like a finished one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        self.members: dict[str, dict[str, Any]] = {}
        self._tar = tarfile.open(self.partial, mode="w:gz", compresslevel=COMPRESS_LEVEL)

    def add_stream(self, name: str, source: IO[bytes], size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o600
        info.mtime = int(time.time())
        reader = _Hashing(source)
        self._tar.addfile(info, reader)
        self.members[name] = {"size": size, "sha256": reader.sha256.hexdigest()}

    def add_file(self, name: str, path: Path) -> None:
        with path.open("rb") as source:
            self.add_stream(name, source, path.stat().st_size)

    def add_json(self, name: str, value: Any) -> None:
        data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
        self.add_stream(name, io.BytesIO(data), len(data))

    def finish(self, manifest: dict[str, Any]) -> int:
        data = json.dumps({**manifest, "format": FORMAT, "members": self.members}, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.close()
        self.partial.replace(self.path)
        return self.path.stat().st_size

    def abandon(self) -> None:
        self._tar.close()
        self.partial.unlink(missing_ok=True)


def _plain(name: str) -> bool:
    """A relative posix path of named parts: restore joins member names onto its target folders
    (models/<name> onto the models dir), where '..' or an absolute path would lead outside."""
    parts = name.split("/")
    return "\\" not in name and "\x00" not in name and all(part not in ("", ".", "..") for part in parts)


def _damaged(path: Path, why: str) -> BadArchive:
    return BadArchive(f"{path.name} is not a usable Strata backup: {why}. Nothing was changed.")


def verify(path: Path) -> dict[str, Any]:
    """Reads the archive end to end and returns its manifest once every member's size and
    sha256 match it; raises BadArchive otherwise."""
    if not path.is_file():
        raise BadArchive(f"{path} does not exist or is not a file.")
    seen: dict[str, dict[str, Any]] = {}
    manifest_bytes = None
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    raise _damaged(path, f"member {member.name!r} is not a regular file")
                if not _plain(member.name):
                    raise _damaged(path, f"member {member.name!r} is not a plain relative path")
                source = tar.extractfile(member)
                if member.name == MANIFEST:
                    manifest_bytes = source.read()
                    continue
                digest = hashlib.sha256()
                while chunk := source.read(COPY_CHUNK):
                    digest.update(chunk)
                seen[member.name] = {"size": member.size, "sha256": digest.hexdigest()}
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise _damaged(path, f"it is truncated or corrupted ({type(exc).__name__}: {exc})") from None
    if manifest_bytes is None:
        raise _damaged(path, "it has no manifest (truncated, or not made by `strata backup`)")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise _damaged(path, "its manifest is not valid JSON") from None
    if manifest.get("format") != FORMAT:
        raise _damaged(path, f"its format {manifest.get('format')!r} is not {FORMAT}")
    expected = manifest.get("members", {})
    for name, facts in expected.items():
        if name not in seen:
            raise _damaged(path, f"{name} is missing")
        if seen[name] != facts:
            raise _damaged(path, f"{name} does not match its checksum")
    extra = sorted(set(seen) - set(expected))
    if extra:
        raise _damaged(path, f"it holds members its manifest does not list ({', '.join(extra[:3])})")
    return manifest


def extract_to(path: Path, directory: Path) -> None:
    """Unpacks a verified archive; member names are checked, as a tar can point outside. The
    files get the time they are unpacked, not the backup's: the retention sweep takes scratch
    with no file newer than its cutoff for a killed job's (app/system/temp_files.py)."""
    unpacked_at = int(time.time())

    def data_unpacked_now(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
        return tarfile.data_filter(member, destination).replace(mtime=unpacked_at, deep=False)

    with tarfile.open(path, mode="r:gz") as tar:
        tar.extractall(directory, filter=data_unpacked_now)
