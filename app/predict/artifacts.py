"""Model version artifacts in the file store (app/core/storage.py), at keys under
predict/<model>/: a zero-shot classifier's label set (v<n>.json), a classifier trained in
Strata (v<n>.onnx), an imported embedder's folder (v<n>/manifest.json, ...). Every web and
worker process loads them from there. A built-in model's artifact is an absolute path into
this machine's models dir, and so are versions registered before the store; those are read
where they are."""

import hashlib
import io
from pathlib import Path, PurePosixPath

from app.core.storage import StorageKeyMissing, get_storage


def version_key(model_name: str, number: int, suffix: str = "") -> str:
    """The key of version `number`'s artifact: a file with `suffix` (.json, .onnx), or a folder."""
    return f"predict/{model_name}/v{number}{suffix}"


def store_bytes(key: str, data: bytes) -> tuple[str, int]:
    """Stores `data` at `key`; returns its sha256 and size."""
    get_storage().save(key, io.BytesIO(data))
    return hashlib.sha256(data).hexdigest(), len(data)


def store_folder(key: str, folder: Path) -> None:
    """Stores every file in `folder` under the folder key `key`, replacing what was there."""
    storage = get_storage()
    storage.delete_prefix(key)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        storage.save(f"{key}/{path.relative_to(folder).as_posix()}", path)


def artifact_path(artifact: str) -> Path:
    """A local file or folder holding the artifact, for the loaders (onnxruntime, tokenizers)."""
    if Path(artifact).is_absolute():
        return Path(artifact)
    storage = get_storage()
    if storage.exists(artifact):
        return storage.local_path(artifact)
    keys = [key for key, _size in storage.iter_keys(artifact)]
    if not keys:
        raise StorageKeyMissing(f"No model artifact is stored at {artifact!r}.")
    # Each file lands at its place in one local folder (the store's own, or its cache).
    locals_ = [storage.local_path(key) for key in keys]
    depth = len(PurePosixPath(keys[0]).relative_to(artifact).parts)
    return locals_[0].parents[depth - 1]
