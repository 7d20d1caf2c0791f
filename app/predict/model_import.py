"""The file side of an admin's model import, confined to the model import folder.

An import names a folder relative to STRATA_MODEL_IMPORT_DIR (default <data dir>/imports)
and reads nothing else: a name that resolves elsewhere (`..`, another absolute path), a
symbolic link anywhere on the way or in the tree, a hard-linked file (it may be any file of
the same file system) or anything but plain files and folders is refused. The tree is
checked before the copy and the copy again afterwards (links are copied as links, never
followed), so a link swapped in meanwhile is caught too. Errors and registry events name the
folder relative to the import folder, never by a server path."""

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
    path: Path
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
    return ImportFolder(current, name)


def _refuse_links_and_special_files(folder: ImportFolder, top: Path) -> None:
    def fail(error: OSError) -> None:
        raise InvalidInput(f"{folder.name!r} cannot be read completely.") from None

    entries = 0
    for directory, subdirectories, files in os.walk(top, onerror=fail, followlinks=False):
        for entry in (*subdirectories, *files):
            entries += 1
            if entries > MAX_IMPORT_ENTRIES:
                raise InvalidInput(f"{folder.name!r} holds more than {MAX_IMPORT_ENTRIES} files and folders.")
            path = Path(directory) / entry
            inside = f"{folder.name}/{path.relative_to(top).as_posix()}"
            try:
                mode = path.lstat()
            except OSError as error:
                fail(error)
            if stat.S_ISLNK(mode.st_mode):
                raise InvalidInput(f"{inside!r} is a symbolic link; imports must contain only real files.")
            if stat.S_ISREG(mode.st_mode) and mode.st_nlink > 1:
                raise InvalidInput(f"{inside!r} is a hard link; copy the real file into the import folder.")
            if not (stat.S_ISREG(mode.st_mode) or stat.S_ISDIR(mode.st_mode)):
                raise InvalidInput(f"{inside!r} is not a regular file or folder.")


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
    """Copies the folder to `destination` and checks the copy: only real files, a manifest
    whose ONNX file matches its sha256, `dimensions` (production's, if any), and a model that
    loads and runs. On any refusal nothing stays at `destination`."""
    _refuse_links_and_special_files(folder, folder.path)
    if destination.exists():
        shutil.rmtree(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            shutil.copytree(folder.path, destination, symlinks=True)
        except (shutil.Error, OSError):
            raise InvalidInput(f"{folder.name!r} could not be copied: it changed or holds unreadable files.") from None
        _refuse_links_and_special_files(folder, destination)
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
