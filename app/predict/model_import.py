"""The file side of an admin's model import, confined to the model import folder.

An import names a folder relative to STRATA_MODEL_IMPORT_DIR (default <data dir>/imports)
and reads nothing else: a name that resolves elsewhere (`..`, another absolute path), a
symbolic link anywhere on the way or in the tree, a hard-linked file (it may be any file of
the same file system) or anything but plain files and folders is refused. The copy opens
every folder and file relative to its parent's descriptor without following links and
checks what it opened, so a link swapped in while an import runs is refused too. Errors and
registry events name the folder relative to the import folder, never by a server path."""

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog

from app.core.errors import InvalidInput
from app.core.settings import get_settings
from models.embedder import Embedder
from models.manifest import MANIFEST_FILENAME, ManifestError, ModelManifest, read_manifest, sha256_file

# A built embedder folder holds a handful of files; far more is not one.
MAX_IMPORT_ENTRIES = 1000
OUTSIDE = (
    "Model imports are read only from the model import folder (STRATA_MODEL_IMPORT_DIR, by default "
    "'imports' in the data directory): name a folder inside it, relative to it."
)

log = structlog.get_logger("strata.predict")


@dataclass(frozen=True)
class ImportFolder:
    root: Path
    parts: tuple[str, ...]
    # Relative to the import folder: how errors and the registry name it.
    name: str


@dataclass(frozen=True)
class CheckedImport:
    manifest: ModelManifest
    # For the registry event: the folder's name and the model's digest, no server path.
    description: str


def confined_folder(path: str) -> ImportFolder:
    """The folder `path` names inside the import folder, or InvalidInput."""
    root = get_settings().resolved_model_import_dir
    if not path.strip() or "\0" in path:
        raise InvalidInput(OUTSIDE)
    requested = Path(path.strip())
    if requested.is_absolute():
        # An absolute path is accepted only if it spells out a place inside the import folder.
        try:
            requested = requested.relative_to(root)
        except ValueError:
            raise InvalidInput(OUTSIDE) from None
    if ".." in requested.parts or not requested.parts:
        raise InvalidInput(OUTSIDE)
    name = requested.as_posix()
    current = root
    try:
        for part in requested.parts:
            current = current / part
            if current.is_symlink():
                raise InvalidInput(f"{name!r} goes through a symbolic link; imports must be real folders.")
        if not current.is_dir():
            raise InvalidInput(f"There is no folder {name!r} in the model import folder.")
        inside = current.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):  # a name too long, a loop: nothing an import can use
        raise InvalidInput(f"There is no folder {name!r} in the model import folder.") from None
    if not inside:
        raise InvalidInput(OUTSIDE)
    return ImportFolder(root, requested.parts, name)


def _refusal(inside: str, error: OSError) -> InvalidInput:
    if error.errno == errno.ELOOP:
        return InvalidInput(f"{inside!r} is a symbolic link; imports must contain only real files.")
    return InvalidInput(f"{inside!r} cannot be read; it may have changed during the import.")


def _open_folder(folder: ImportFolder) -> int:
    """A descriptor of the folder, opened one component at a time without following links."""
    try:
        descriptor = os.open(folder.root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise _refusal(folder.name, error) from None
    try:
        for part in folder.parts:
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
            except NotADirectoryError:  # what a link to a folder gives here, as does a file
                if stat.S_ISLNK(os.stat(part, dir_fd=descriptor, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, "a symbolic link") from None
                raise
            os.close(descriptor)
            descriptor = inner
    except OSError as error:
        os.close(descriptor)
        raise _refusal(folder.name, error) from None
    return descriptor


def _copy_file(inside: str, name: str, dir_fd: int, target: Path) -> None:
    try:
        # Non-blocking, so that opening a named pipe returns at once (and is refused below).
        descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as error:
        raise _refusal(inside, error) from None
    with os.fdopen(descriptor, "rb") as source:
        opened = os.fstat(source.fileno())
        if not stat.S_ISREG(opened.st_mode):
            raise InvalidInput(f"{inside!r} is not a regular file or folder.")
        if opened.st_nlink > 1:
            raise InvalidInput(f"{inside!r} is a hard link; copy the real file into the import folder.")
        os.set_blocking(source.fileno(), True)
        with target.open("xb") as copy:
            shutil.copyfileobj(source, copy)


def _copy_tree(folder: ImportFolder, destination: Path) -> None:
    def fail(error: OSError) -> None:
        raise _refusal(folder.name, error)

    top = _open_folder(folder)
    entries = 0
    try:
        destination.mkdir()
        walk = os.fwalk(".", dir_fd=top, follow_symlinks=False, onerror=fail)
        for directory, subdirectories, files, dir_fd in walk:
            relative = Path(directory)
            entries += len(subdirectories) + len(files)
            if entries > MAX_IMPORT_ENTRIES:
                raise InvalidInput(f"{folder.name!r} holds more than {MAX_IMPORT_ENTRIES} files and folders.")
            for name in subdirectories:
                inside = f"{folder.name}/{(relative / name).as_posix()}"
                if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    raise InvalidInput(f"{inside!r} is a symbolic link; imports must contain only real files.")
                (destination / relative / name).mkdir()
            for name in files:
                inside = f"{folder.name}/{(relative / name).as_posix()}"
                _copy_file(inside, name, dir_fd, destination / relative / name)
    except OSError as error:
        raise _refusal(folder.name, error) from None
    finally:
        os.close(top)


def _plain_file(folder: Path, name: str) -> Path | None:
    """`name` from the manifest as a file directly in the folder, or None if it points anywhere else."""
    if not name or Path(name).name != name or name in (".", ".."):
        return None
    return folder / name


def _checked_manifest(folder: ImportFolder, copy: Path, dimensions: int | None) -> ModelManifest:
    if not (copy / MANIFEST_FILENAME).is_file():
        raise InvalidInput(f"{folder.name!r} has no model manifest ({MANIFEST_FILENAME}): build the model first.")
    try:
        manifest = read_manifest(copy)
    except ManifestError:
        raise InvalidInput(f"The {MANIFEST_FILENAME} of {folder.name!r} is not a valid model manifest.") from None
    onnx_file = _plain_file(copy, manifest.file)
    tokenizer_file = _plain_file(copy, manifest.tokenizer_file)
    if onnx_file is None or tokenizer_file is None:
        raise InvalidInput(f"The manifest of {folder.name!r} names files outside its folder.")
    if not onnx_file.is_file() or sha256_file(onnx_file) != manifest.sha256:
        raise InvalidInput(f"{manifest.file!r} in {folder.name!r} does not match the sha256 in its manifest.")
    if dimensions is not None and manifest.dimensions != dimensions:
        raise InvalidInput(
            f"The import has {manifest.dimensions} dimensions, production has {dimensions}: "
            "vectors stored so far would stop matching."
        )
    return manifest


def copy_checked(folder: ImportFolder, destination: Path, *, dimensions: int | None) -> CheckedImport:
    """Copies the folder to `destination` (only real files) and checks the copy: a manifest
    whose ONNX file matches its sha256, `dimensions` (production's, if any), and a model that
    loads and runs. On any refusal nothing stays at `destination`."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        _copy_tree(folder, destination)
        manifest = _checked_manifest(folder, destination, dimensions)
        try:
            Embedder.load(destination, threads=1).embed(["a test sentence"])
        except Exception as exc:  # noqa: BLE001 - any failure to load or run means the import is unusable
            # The reason stays in the server log: it may quote the server's files.
            log.warning("predict.import_does_not_run", folder=folder.name, error=str(exc))
            raise InvalidInput(f"The model in {folder.name!r} does not load or run; the server log says why.") from None
    except InvalidInput:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    # Registry event details hold at most 500 characters; a folder name may be longer.
    shown = folder.name if len(folder.name) <= 200 else f"{folder.name[:200]}…"
    return CheckedImport(manifest, f"ONNX from import folder {shown!r} (sha256 {manifest.sha256[:12]})")
