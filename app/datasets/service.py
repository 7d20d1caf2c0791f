"""Datasets: named series of immutable versions, each a CSV, JSONL or Parquet file stored
once per content, with its profile and the lineage of what was made from it.

Viewers read and download; staff upload and delete. Training and batch jobs record what
they made from a version with record_lineage; a version a model version was trained on
cannot be deleted."""

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from app.audit.service import record
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.roles import Actor, Role, require_role
from app.core.sandbox import SandboxLimits, run_isolated
from app.core.settings import Settings
from app.core.storage import StorageKeyMissing, get_storage
from app.core.uploads import safe_filename
from app.datasets.converting import TARGETS as CONVERSION_TARGETS
from app.datasets.quality import quality_report
from app.datasets.storage import (
    StagedFile,
    UploadedFile,
    convert_isolated,
    converted_key,
    object_key,
    profile_isolated,
    stage_upload,
)
from app.datasets.tables import PROTECTING_KINDS, Dataset, DatasetLineage, DatasetVersion, LineageKind
from models.manifest import sha256_file

# Names appear in URLs (/api/v1/datasets/{name}/...) and file names of downloads.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet"}


@dataclass
class Uploaded:
    dataset: Dataset
    version: DatasetVersion
    # True when the same bytes already were a version of this dataset: nothing new was stored.
    existing: bool


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            "A dataset name is 1 to 100 letters, digits, dots, dashes or underscores, starting with a letter or digit."
        )
    return name


# ----------------------------------------------------------------------- reading


def list_datasets(*, db_session: Session, actor: Actor) -> list[tuple[Dataset, list[DatasetVersion]]]:
    """Every dataset by name, with its versions, newest first."""
    require_role(actor, Role.viewer)
    datasets = db_session.exec(select(Dataset).order_by(Dataset.name)).all()
    versions = db_session.exec(
        select(DatasetVersion).options(defer(DatasetVersion.profile)).order_by(col(DatasetVersion.number).desc())
    ).all()
    by_dataset: dict[int, list[DatasetVersion]] = {}
    for version in versions:
        by_dataset.setdefault(version.dataset_id, []).append(version)
    return [(dataset, by_dataset.get(dataset.id, [])) for dataset in datasets]


def get_version(*, db_session: Session, actor: Actor, name: str, number: int) -> tuple[Dataset, DatasetVersion]:
    require_role(actor, Role.viewer)
    # A name no dataset can have is not looked up (PostgreSQL refuses strings with NUL, say).
    dataset = (
        db_session.exec(select(Dataset).where(Dataset.name == name)).first() if NAME_PATTERN.fullmatch(name) else None
    )
    if dataset is None:
        raise NotFound(f"There is no dataset {name!r}.")
    version = db_session.exec(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id, DatasetVersion.number == number)
    ).first()
    if version is None:
        raise NotFound(f"The dataset {name!r} has no version {number}.")
    return dataset, version


def newest_or_numbered_version(
    *, db_session: Session, actor: Actor, name: str, number: int | None
) -> tuple[Dataset, DatasetVersion]:
    """Version `number` of the dataset, or its newest when `number` is None (what a job started
    on "the newest version" reads: the newest at the moment it is started)."""
    if number is not None:
        return get_version(db_session=db_session, actor=actor, name=name, number=number)
    require_role(actor, Role.viewer)
    dataset = (
        db_session.exec(select(Dataset).where(Dataset.name == name)).first() if NAME_PATTERN.fullmatch(name) else None
    )
    if dataset is None:
        raise NotFound(f"There is no dataset {name!r}.")
    newest = db_session.exec(
        select(func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == dataset.id)
    ).one()
    return get_version(db_session=db_session, actor=actor, name=name, number=newest or 0)


@dataclass
class VersionDetails:
    dataset: Dataset
    version: DatasetVersion
    quality: dict
    lineage: list[DatasetLineage]


def version_details(
    *,
    db_session: Session,
    actor: Actor,
    name: str,
    number: int,
    label_column: str | None = None,
    text_column: str | None = None,
) -> VersionDetails:
    """The version with its quality report (the label distribution of `label_column` and the
    warnings) and lineage; a label or text column that does not exist is a 422 listing those that do."""
    dataset, version = get_version(db_session=db_session, actor=actor, name=name, number=number)
    return VersionDetails(
        dataset=dataset,
        version=version,
        quality=quality_report(version.profile, label_column=label_column or None, text_column=text_column or None),
        lineage=lineage_of(db_session=db_session, actor=actor, dataset_version_id=version.id),
    )


def version_file(
    *, db_session: Session, settings: Settings, actor: Actor, name: str, number: int, file_format: str | None = None
) -> tuple[Path, str, str]:
    """The version's file, its media type and the name to download it as: the stored file, or
    in `file_format` (csv or parquet), converted in the sandbox the first time and kept."""
    dataset, version = get_version(db_session=db_session, actor=actor, name=name, number=number)
    try:
        path = get_storage().local_path(version.stored_path)
    except StorageKeyMissing:
        raise NotFound(f"The file of {name!r} version {number} is missing from the file store.") from None
    target = file_format or version.format
    if target != version.format:
        if target not in CONVERSION_TARGETS:
            raise InvalidInput(f"A version downloads as {' or '.join(CONVERSION_TARGETS)}, not {target!r}.")
        path = convert_isolated(
            path,
            file_format=version.format,
            sha256=version.sha256,
            columns=version.columns,
            target=target,
            settings=settings,
        )
    return path, MEDIA_TYPES[target], f"{dataset.name}-v{version.number}.{EXTENSIONS[target]}"


def lineage_of(*, db_session: Session, actor: Actor, dataset_version_id: int) -> list[DatasetLineage]:
    require_role(actor, Role.viewer)
    return list(
        db_session.exec(
            select(DatasetLineage)
            .where(DatasetLineage.dataset_version_id == dataset_version_id)
            .order_by(DatasetLineage.id)
        ).all()
    )


def read_columns(
    *,
    settings: Settings,
    actor: Actor,
    version: DatasetVersion,
    columns: list[str],
    on_wait: Callable[[], None] | None = None,
) -> dict[str, list]:
    """The values of `columns` of the version in the order of its rows (None where a row has
    none), read in the sandbox like an upload. For jobs (training, scoring): it holds no
    session while it reads, and `on_wait`, called meanwhile, may raise to stop it (a cancel)."""
    require_role(actor, Role.viewer)
    try:
        path = get_storage().local_path(version.stored_path)
    except StorageKeyMissing:
        raise NotFound(
            f"The file of dataset version {version.number} ({version.filename}) is missing from the file store."
        ) from None
    return run_isolated(
        "app.datasets.reading:read_columns",
        {"path": str(path), "format": version.format, "columns": list(columns)},
        limits=SandboxLimits(
            timeout_seconds=settings.dataset_parse_timeout_seconds,
            memory_mb=settings.dataset_parse_max_memory_mb,
            subject="this dataset",
        ),
        on_wait=on_wait,
    )["columns"]


# ----------------------------------------------------------------------- lineage


def record_lineage(
    *, db_session: Session, actor: Actor, dataset_version_id: int, kind: LineageKind, ref_id: str, label: str
) -> DatasetLineage:
    """Notes that `kind` `ref_id` (a training run, model version, batch job or result) was made
    from the version: it is listed on the version, and a model version keeps it from deletion."""
    require_role(actor, Role.staff)
    if db_session.get(DatasetVersion, dataset_version_id) is None:
        raise NotFound(f"Dataset version {dataset_version_id} does not exist.")
    link = DatasetLineage(
        dataset_version_id=dataset_version_id, kind=LineageKind(kind), ref_id=str(ref_id)[:64], label=label[:300]
    )
    db_session.add(link)
    db_session.flush()
    return link


# ------------------------------------------------------------------------- delete


def delete_version(*, db_session: Session, settings: Settings, actor: Actor, name: str, number: int) -> None:
    """Deletes the version (and its dataset with its last version); refused while a model
    version names it as its training data. The file goes when no other version shares it."""
    require_role(actor, Role.staff)
    dataset, version = get_version(db_session=db_session, actor=actor, name=name, number=number)
    protecting = db_session.exec(
        select(DatasetLineage).where(
            DatasetLineage.dataset_version_id == version.id, col(DatasetLineage.kind).in_(PROTECTING_KINDS)
        )
    ).all()
    if protecting:
        users = "; ".join(link.label for link in protecting)
        raise Conflict(f"Version {number} of {name!r} cannot be deleted: it is used by {users}.")
    for link in db_session.exec(select(DatasetLineage).where(DatasetLineage.dataset_version_id == version.id)):
        db_session.delete(link)
    db_session.delete(version)
    db_session.flush()
    record(
        db_session=db_session,
        actor=actor,
        action="dataset.version_deleted",
        target=f"{dataset.name} version {version.number}",
        target_id=dataset.id,
        old=_version_facts(version),
    )
    remaining = db_session.exec(select(func.count()).where(DatasetVersion.dataset_id == dataset.id)).one()
    if not remaining:
        db_session.delete(dataset)
        record(
            db_session=db_session,
            actor=actor,
            action="dataset.deleted",
            target=dataset.name,
            target_id=dataset.id,
            detail="its last version was deleted",
        )
    shared = db_session.exec(select(func.count()).where(DatasetVersion.sha256 == version.sha256)).one()
    db_session.commit()
    if not shared:
        storage = get_storage()
        storage.delete(version.stored_path)
        for target in CONVERSION_TARGETS:
            storage.delete(converted_key(version.sha256, target))


# ------------------------------------------------------------------------- upload


async def upload_dataset(
    *,
    actor: Actor,
    settings: Settings,
    name: str,
    upload: UploadedFile,
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> Uploaded:
    """Stores the file as the next version of the dataset `name` (created if new), after
    reading it in the sandbox. The same bytes already in this dataset answer with that
    version (existing=True); bytes stored for another dataset are not stored again.
    Anything wrong leaves nothing behind. Takes a request from the rate limit of `caller`
    (an API key's, at `limit_per_minute`) or else of the user."""
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    # Checked before a byte is written: only those who may add datasets can fill the disk.
    require_role(actor, Role.staff)
    name = check_name(name)
    staged = await stage_upload(upload, settings=settings)
    try:
        return await _store_staged(actor=actor, settings=settings, name=name, staged=staged)
    finally:
        staged.discard()


async def add_version_from_file(*, actor: Actor, settings: Settings, name: str, path: Path, filename: str) -> Uploaded:
    """A local file Strata made (a batch job's result) as the next version of `name`, exactly
    like an upload of it: read in the sandbox, profiled, stored by content. The file is removed
    afterwards, stored or not."""
    require_role(actor, Role.staff)
    name = check_name(name)
    staged = StagedFile(
        filename=safe_filename(filename),
        path=path,
        size_bytes=path.stat().st_size,
        sha256=await asyncio.to_thread(sha256_file, path),
    )
    try:
        return await _store_staged(actor=actor, settings=settings, name=name, staged=staged)
    finally:
        staged.discard()


async def _store_staged(*, actor: Actor, settings: Settings, name: str, staged: StagedFile) -> Uploaded:
    found = await run_in_session(_same_content, actor=actor, name=name, sha256=staged.sha256)
    if isinstance(found, tuple):
        return Uploaded(dataset=found[0], version=found[1], existing=True)
    profile = found if found is not None else await asyncio.to_thread(profile_isolated, staged, settings=settings)
    dataset, version = await run_in_session(
        _add_version, settings=settings, actor=actor, name=name, staged=staged, profile=profile
    )
    return Uploaded(dataset=dataset, version=version, existing=False)


def _same_content(
    *, db_session: Session, actor: Actor, name: str, sha256: str
) -> tuple[Dataset, DatasetVersion] | dict | None:
    """This dataset's version with these bytes; else the profile of another dataset's; else None."""
    require_role(actor, Role.staff)
    rows = db_session.exec(
        select(DatasetVersion, Dataset)
        .join(Dataset, col(Dataset.id) == DatasetVersion.dataset_id)
        .where(DatasetVersion.sha256 == sha256)
    ).all()
    for version, dataset in rows:
        if dataset.name == name:
            return dataset, version
    return rows[0][0].profile if rows else None


def _version_facts(version: DatasetVersion) -> dict:
    return {
        "version": version.number,
        "filename": version.filename,
        "format": version.format,
        "rows": version.row_count,
        "sha256": version.sha256,
    }


def _audit_new_version(
    db_session: Session, actor: Actor, dataset: Dataset, version: DatasetVersion, *, new_dataset: bool
) -> None:
    if new_dataset:
        record(db_session=db_session, actor=actor, action="dataset.created", target=dataset.name, target_id=dataset.id)
    record(
        db_session=db_session,
        actor=actor,
        action="dataset.version_added",
        target=f"{dataset.name} version {version.number}",
        target_id=dataset.id,
        new=_version_facts(version),
    )


def _add_version(
    *, db_session: Session, settings: Settings, actor: Actor, name: str, staged: StagedFile, profile: dict
) -> tuple[Dataset, DatasetVersion]:
    require_role(actor, Role.staff)
    dataset = db_session.exec(select(Dataset).where(Dataset.name == name)).first()
    new_dataset = dataset is None
    if dataset is None:
        dataset = Dataset(name=name, created_by=actor.id)
        db_session.add(dataset)
    try:
        db_session.flush()
        latest = db_session.exec(
            select(func.max(DatasetVersion.number)).where(DatasetVersion.dataset_id == dataset.id)
        ).one()
        key = object_key(staged.sha256)
        version = DatasetVersion(
            dataset_id=dataset.id,
            number=(latest or 0) + 1,
            sha256=staged.sha256,
            format=profile["format"],
            filename=staged.filename,
            size_bytes=staged.size_bytes,
            row_count=profile["row_count"],
            columns=[{"name": column["name"], "type": column["type"]} for column in profile["columns"]],
            profile=profile,
            stored_path=key,
            created_by=actor.id,
        )
        db_session.add(version)
        db_session.flush()
        _audit_new_version(db_session, actor, dataset, version, new_dataset=new_dataset)
    except IntegrityError:
        raise Conflict(
            f"Another upload to {name!r} was stored at the same moment; upload again to make the next version."
        ) from None
    storage = get_storage()
    created = not storage.exists(key)
    if created:
        storage.save(key, staged.path)
    try:
        db_session.commit()
    except BaseException:
        if created:
            storage.delete(key)
        raise
    return dataset, version
