"""The model registry: models, their versions, who changed what, and the built-in models.

Each model has exactly one production version; a staging version may take a canary share
of traffic; promote and roll back are one call each; every change is a RegistryChange row
with the acting user. Viewers read the registry, staff change it, admins import model files
(the file side of an import is app/predict/model_import.py)."""

import re
import shutil
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import func
from sqlmodel import Session, col, select

from app.auth.tables import User
from app.core import ml
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.roles import Actor, Role, require_role
from app.core.settings import Settings, get_settings
from app.core.uploads import incoming_dir
from app.predict import cache, model_import
from app.predict.artifacts import artifact_path, store_bytes, store_folder, version_key
from app.predict.registry_changes import record_change, who
from app.predict.routing import Route, ServedVersion
from app.predict.schemas import LabelSpec, ModelSummary, RegistryEvent, VersionSummary
from app.predict.serving import VersionRef
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel, RegistryChange
from models.classifier import CLASSIFIER_NAME, DEFAULT_LABELS, ZeroShotClassifier, read_calibration
from models.manifest import EMBEDDER_NAME, ManifestError, read_manifest

MIN_LABELS = 2
MAX_LABELS = 50
MAX_LABEL_NAME_CHARS = 100
MAX_LABEL_DESCRIPTION_CHARS = 300
TRAINED_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")

log = structlog.get_logger("strata.predict")


# ------------------------------------------------------------------ reading


def _get_model(db_session: Session, model_name: str, *, for_update: bool = False) -> RegisteredModel:
    query = select(RegisteredModel).where(RegisteredModel.name == model_name)
    if for_update:
        # Registry changes of one model are serialised (PostgreSQL; SQLite serialises all writes).
        query = query.with_for_update()
    model = db_session.exec(query).first()
    if model is None:
        raise NotFound(f"No model named {model_name!r}.")
    return model


def _versions(db_session: Session, model: RegisteredModel) -> list[ModelVersion]:
    query = select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(col(ModelVersion.number).desc())
    return list(db_session.exec(query))


def _get_version(db_session: Session, model: RegisteredModel, number: int) -> ModelVersion:
    version = db_session.exec(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.number == number)
    ).first()
    if version is None:
        raise NotFound(f"Model {model.name!r} has no version {number}.")
    return version


def _production(db_session: Session, model: RegisteredModel) -> ModelVersion | None:
    return db_session.exec(
        select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.stage == "production")
    ).first()


def _canary(db_session: Session, model: RegisteredModel) -> ModelVersion | None:
    if model.canary_version_id is None or model.canary_percent <= 0:
        return None
    return db_session.get(ModelVersion, model.canary_version_id)


def _summary(db_session: Session, model: RegisteredModel) -> ModelSummary:
    production = _production(db_session, model)
    canary = _canary(db_session, model)
    return ModelSummary(
        name=model.name,
        kind=model.kind,
        description=model.description,
        production_version=production.number if production else None,
        canary_version=canary.number if canary else None,
        canary_percent=model.canary_percent if canary else 0,
    )


def list_models(*, db_session: Session, actor: User) -> list[ModelSummary]:
    require_role(actor, Role.viewer)
    models = db_session.exec(select(RegisteredModel).order_by(col(RegisteredModel.name)))
    return [_summary(db_session, model) for model in models]


def get_model(*, db_session: Session, actor: User, model_name: str) -> ModelSummary:
    require_role(actor, Role.viewer)
    return _summary(db_session, _get_model(db_session, model_name))


def _served_counts(db_session: Session, version_ids: list[int]) -> dict[int, int]:
    """From the Redis counters; while Redis is down, the sampled prediction log stands in."""
    counts = cache.served_counts(version_ids)
    if counts is not None:
        return counts
    rows = db_session.exec(
        select(PredictionLog.version_id, func.count())
        .where(col(PredictionLog.version_id).in_(version_ids))
        .group_by(PredictionLog.version_id)
    )
    return dict(rows.all())


def list_versions(*, db_session: Session, actor: User, model_name: str) -> list[VersionSummary]:
    """Newest first; `served` counts predictions per version."""
    require_role(actor, Role.viewer)
    model = _get_model(db_session, model_name)
    versions = _versions(db_session, model)
    canary = _canary(db_session, model)
    served = _served_counts(db_session, [v.id for v in versions])
    summaries = []
    for version in versions:
        if canary is not None and version.id == canary.id:
            traffic = model.canary_percent
        elif version.stage == "production":
            traffic = 100 - (model.canary_percent if canary else 0)
        else:
            traffic = 0
        summaries.append(
            VersionSummary(
                id=version.id,
                model_name=model.name,
                number=version.number,
                stage=version.stage,
                sha256=version.sha256,
                size_bytes=version.size_bytes,
                source=version.source,
                metrics=version.metrics,
                labels=[LabelSpec(**label) for label in version.labels],
                created_by=version.created_by,
                created_at=version.created_at,
                traffic_percent=traffic,
                served=served.get(version.id, 0),
            )
        )
    return summaries


def _version_summary(db_session: Session, actor: User, model_name: str, version: ModelVersion) -> VersionSummary:
    return next(
        v for v in list_versions(db_session=db_session, actor=actor, model_name=model_name) if v.id == version.id
    )


def registry_events(*, db_session: Session, actor: User, model_name: str, limit: int = 20) -> list[RegistryEvent]:
    """Newest first."""
    require_role(actor, Role.viewer)
    model = _get_model(db_session, model_name)
    changes = db_session.exec(
        select(RegistryChange)
        .where(RegistryChange.model_id == model.id)
        .order_by(col(RegistryChange.at).desc(), col(RegistryChange.id).desc())
        .limit(min(max(limit, 1), 500))
    )
    return [
        RegistryEvent(
            at=change.at,
            user=change.user,
            action=change.action,
            model_name=model.name,
            version=change.version_number,
            detail=change.detail,
        )
        for change in changes
    ]


def pick_model(models: list[ModelSummary], name: str) -> ModelSummary | None:
    """The model of that name; else the first classifier, else any model (what a page opens on)."""
    by_name = {m.name: m for m in models}
    fallback = next((m for m in models if m.kind == "classifier"), models[0] if models else None)
    return by_name.get(name, fallback)


@dataclass
class Overview:
    """What the Models page shows of one model (model None when no model exists yet)."""

    models: list[ModelSummary]
    model: ModelSummary | None
    versions: list[VersionSummary]
    events: list[RegistryEvent]


def overview(*, db_session: Session, actor: User, model_name: str) -> Overview:
    models = list_models(db_session=db_session, actor=actor)
    model = pick_model(models, model_name)
    if model is None:
        return Overview(models, None, [], [])
    return Overview(
        models,
        model,
        list_versions(db_session=db_session, actor=actor, model_name=model.name),
        registry_events(db_session=db_session, actor=actor, model_name=model.name),
    )


# ------------------------------------------------------------------ changing


def _next_number(db_session: Session, model: RegisteredModel) -> int:
    highest = db_session.exec(select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model.id)).one()
    return (highest or 0) + 1


def _check_labels(labels: list[LabelSpec]) -> list[LabelSpec]:
    cleaned = [LabelSpec(name=label.name.strip(), description=label.description.strip()) for label in labels]
    if not MIN_LABELS <= len(cleaned) <= MAX_LABELS:
        raise InvalidInput(f"A classifier needs {MIN_LABELS} to {MAX_LABELS} labels; got {len(cleaned)}.")
    names = [label.name for label in cleaned]
    if any(not name for name in names):
        raise InvalidInput("Every label needs a name.")
    if len({name.lower() for name in names}) != len(names):
        raise InvalidInput("Label names must differ from each other.")
    for label in cleaned:
        if len(label.name) > MAX_LABEL_NAME_CHARS:
            raise InvalidInput(f"Label name {label.name[:20]!r}… is longer than {MAX_LABEL_NAME_CHARS} characters.")
        if len(label.description) > MAX_LABEL_DESCRIPTION_CHARS:
            raise InvalidInput(
                f"The description of {label.name!r} is longer than {MAX_LABEL_DESCRIPTION_CHARS} characters."
            )
    return cleaned


def _add_classifier_version(
    db_session: Session,
    model: RegisteredModel,
    *,
    labels: list[LabelSpec],
    temperature: float,
    metrics: dict[str, float],
    source: str,
    actor: Actor,
    stage: str,
) -> ModelVersion:
    number = _next_number(db_session, model)
    classifier = ZeroShotClassifier.build(
        ml.get_embedder(), [(label.name, label.description) for label in labels], temperature
    )
    artifact = version_key(model.name, number, ".json")
    sha256, size_bytes = store_bytes(artifact, classifier.to_json().encode())
    version = ModelVersion(
        model_id=model.id,
        number=number,
        stage=stage,
        artifact=artifact,
        sha256=sha256,
        size_bytes=size_bytes,
        source=source,
        metrics={**metrics, "temperature": temperature},
        labels=[label.model_dump() for label in labels],
        created_by_id=actor.id,
        created_by=who(actor),
    )
    db_session.add(version)
    db_session.flush()
    return version


def create_classifier_version(
    *, db_session: Session, actor: User, model_name: str, labels: list[LabelSpec]
) -> VersionSummary:
    """A new staging version of a zero-shot classifier with this label set (staff). Its source
    is "imported" (the label set comes from a person, not from training); it keeps the
    production version's calibrated temperature, since there is no labelled data to refit it."""
    require_role(actor, Role.staff)
    model = _get_model(db_session, model_name, for_update=True)
    if model.kind != "classifier":
        raise InvalidInput(f"{model_name!r} is an embedder; label sets belong to classifiers.")
    cleaned = _check_labels(labels)
    base = _production(db_session, model) or _versions(db_session, model)[0]
    temperature = ZeroShotClassifier.load(artifact_path(base.artifact)).temperature
    version = _add_classifier_version(
        db_session,
        model,
        labels=cleaned,
        temperature=temperature,
        metrics={},
        source="imported",
        actor=actor,
        stage="staging",
    )
    record_change(db_session, model, actor, "create_version", version.number, f"{len(cleaned)} labels")
    return _version_summary(db_session, actor, model_name, version)


def import_embedder_version(*, db_session: Session, actor: User, model_name: str, path: str) -> VersionSummary:
    """A new staging version of an embedder from a built ONNX model folder (manifest.json, the
    ONNX file, tokenizer.json; see models/build.py) that an admin put in the model import
    folder; `path` names it relative to that folder. Admin only: it reads server files."""
    require_role(actor, Role.admin)
    model = _get_model(db_session, model_name, for_update=True)
    if model.kind != "embedder":
        raise InvalidInput(f"{model_name!r} is a classifier; ONNX imports are embedder versions.")
    source = model_import.confined_folder(path)
    number = _next_number(db_session, model)
    artifact = version_key(model.name, number)
    production = _production(db_session, model)
    # Copied and checked on local disk first; only a model that loads and runs is stored.
    destination = incoming_dir(get_settings(), "model-imports") / uuid.uuid4().hex
    try:
        checked = model_import.copy_checked(
            source,
            destination,
            dimensions=read_manifest(artifact_path(production.artifact)).dimensions if production else None,
        )
        store_folder(artifact, destination)
    finally:
        shutil.rmtree(destination, ignore_errors=True)
    manifest = checked.manifest
    version = ModelVersion(
        model_id=model.id,
        number=number,
        stage="staging",
        artifact=artifact,
        sha256=manifest.sha256,
        size_bytes=manifest.size_bytes,
        source="imported",
        metrics={"parity_min_cosine": manifest.parity.min_cosine, "parity_mean_cosine": manifest.parity.mean_cosine},
        created_by_id=actor.id,
        created_by=actor.email,
    )
    db_session.add(version)
    db_session.flush()
    record_change(db_session, model, actor, "import_version", number, checked.description)
    return _version_summary(db_session, actor, model_name, version)


def set_canary(*, db_session: Session, actor: User, model_name: str, version_number: int, percent: int) -> None:
    """Sends `percent` (0-100) of the model's traffic to this staging version (staff); 0 ends the canary."""
    require_role(actor, Role.staff)
    if not 0 <= percent <= 100:
        raise InvalidInput(f"A canary share is 0 to 100 percent; got {percent}.")
    model = _get_model(db_session, model_name, for_update=True)
    version = _get_version(db_session, model, version_number)
    if version.stage != "staging":
        raise Conflict(f"Version {version_number} is {version.stage}; only a staging version can be a canary.")
    if _production(db_session, model) is None:
        raise Conflict(f"{model_name!r} has no production version to share traffic with.")
    old_canary = db_session.get(ModelVersion, model.canary_version_id) if model.canary_version_id else None
    old = {"canary_version": old_canary.number if old_canary else None, "canary_percent": model.canary_percent}
    model.canary_version_id = version.id if percent > 0 else None
    model.canary_percent = percent
    db_session.add(model)
    new = {"canary_version": version_number if percent > 0 else None, "canary_percent": percent}
    record_change(db_session, model, actor, "set_canary", version_number, f"{percent}% of traffic", old=old, new=new)


def promote(*, db_session: Session, actor: User, model_name: str, version_number: int) -> None:
    """Makes this version production; the old production is archived and remembered for rollback (staff)."""
    require_role(actor, Role.staff)
    model = _get_model(db_session, model_name, for_update=True)
    version = _get_version(db_session, model, version_number)
    if version.stage == "production":
        raise Conflict(f"Version {version_number} is already in production.")
    current = _production(db_session, model)
    if current is not None:
        current.stage = "archived"
        db_session.add(current)
        # Flushed first: the new production must never coexist with the old one.
        db_session.flush()
    version.stage = "production"
    version.replaced_version_id = current.id if current else None
    model.canary_version_id = None
    model.canary_percent = 0
    db_session.add_all([version, model])
    detail = f"replaces version {current.number}" if current else "first production version"
    record_change(
        db_session,
        model,
        actor,
        "promote",
        version_number,
        detail,
        old={"production_version": current.number if current else None},
        new={"production_version": version_number},
    )


def rollback(*, db_session: Session, actor: User, model_name: str) -> None:
    """Brings the previous production version back; the current one is archived (staff)."""
    require_role(actor, Role.staff)
    model = _get_model(db_session, model_name, for_update=True)
    current = _production(db_session, model)
    previous = (
        db_session.get(ModelVersion, current.replaced_version_id) if current and current.replaced_version_id else None
    )
    if current is None or previous is None:
        raise Conflict(f"{model_name!r} has no previous production version to roll back to.")
    current.stage = "archived"
    db_session.add(current)
    db_session.flush()
    previous.stage = "production"
    model.canary_version_id = None
    model.canary_percent = 0
    db_session.add_all([previous, model])
    record_change(
        db_session,
        model,
        actor,
        "rollback",
        previous.number,
        f"version {current.number} archived",
        old={"production_version": current.number},
        new={"production_version": previous.number},
    )


# ------------------------------------------------------------------ built-ins


def ensure_builtin_models(*, db_session: Session, actor: Actor, settings: Settings) -> list[str]:
    """Registers the built-in embedder and zero-shot classifier (idempotent: a model that
    exists is left alone). Skips a model whose files are not built yet. Returns what it added.
    Admin: `strata migrate` runs it as Strata itself (auth's SYSTEM)."""
    require_role(actor, Role.admin)
    added = []
    existing = set(db_session.exec(select(RegisteredModel.name)))
    embedder_dir = settings.resolved_models_dir / EMBEDDER_NAME
    try:
        manifest = read_manifest(embedder_dir)
    except ManifestError as exc:
        log.warning("predict.builtin_skipped", reason=str(exc))
        return added
    if EMBEDDER_NAME not in existing:
        model = RegisteredModel(
            name=EMBEDDER_NAME, kind="embedder", description=f"Sentence embeddings ({manifest.dimensions} dimensions)"
        )
        db_session.add(model)
        db_session.flush()
        db_session.add(
            ModelVersion(
                model_id=model.id,
                number=1,
                stage="production",
                artifact=str(embedder_dir),
                sha256=manifest.sha256,
                size_bytes=manifest.size_bytes,
                source="built-in",
                metrics={
                    "parity_min_cosine": manifest.parity.min_cosine,
                    "parity_mean_cosine": manifest.parity.mean_cosine,
                },
                created_by_id=actor.id,
                created_by=who(actor),
            )
        )
        record_change(db_session, model, actor, "register", 1, "built-in")
        added.append(EMBEDDER_NAME)
    calibration = read_calibration(settings.resolved_models_dir)
    if CLASSIFIER_NAME not in existing and calibration is not None:
        model = RegisteredModel(
            name=CLASSIFIER_NAME,
            kind="classifier",
            description="Scores a text against labels you describe (no training data needed)",
        )
        db_session.add(model)
        db_session.flush()
        _add_classifier_version(
            db_session,
            model,
            labels=[LabelSpec(name=name, description=description) for name, description in DEFAULT_LABELS],
            temperature=calibration.temperature,
            metrics=calibration.metrics,
            source="built-in",
            actor=actor,
            stage="production",
        )
        record_change(db_session, model, actor, "register", 1, "built-in, calibrated on BBC News")
        added.append(CLASSIFIER_NAME)
    return added


def register_trained_version(
    *,
    db_session: Session,
    actor: Actor,
    model_name: str,
    onnx_model: bytes,
    labels: list[str],
    metrics: dict[str, float],
) -> ModelVersion:
    """A classifier trained in Strata (models.training) as a new staging version of `model_name`,
    which is created as a classifier if it does not exist yet (staff). The artifact is the ONNX
    model itself; the caller links the version to its run and dataset version (lineage)."""
    require_role(actor, Role.staff)
    model = db_session.exec(select(RegisteredModel).where(RegisteredModel.name == model_name).with_for_update()).first()
    # The name becomes a folder under the data dir: nothing that could climb out of it.
    if model is None and not TRAINED_MODEL_NAME.fullmatch(model_name):
        raise InvalidInput(
            "A model name is 1-100 letters, digits, '-' or '_', starting with a letter or digit; "
            f"got {model_name[:120]!r}."
        )
    if model is None:
        model = RegisteredModel(name=model_name, kind="classifier", description="trained in Strata")
        db_session.add(model)
        db_session.flush()
    elif model.kind != "classifier":
        raise InvalidInput(f"{model_name!r} is an embedder; a trained classifier needs a classifier model.")
    number = _next_number(db_session, model)
    artifact = version_key(model.name, number, ".onnx")
    sha256, size_bytes = store_bytes(artifact, onnx_model)
    version = ModelVersion(
        model_id=model.id,
        number=number,
        stage="staging",
        artifact=artifact,
        sha256=sha256,
        size_bytes=size_bytes,
        source="trained",
        metrics=metrics,
        labels=[{"name": label, "description": ""} for label in labels],
        created_by_id=actor.id,
        created_by=who(actor),
    )
    db_session.add(version)
    db_session.flush()
    record_change(db_session, model, actor, "create_version", version.number, f"trained, {len(labels)} labels")
    return version


# ------------------------------------------------------------------ what serving reads


def _served(model: RegisteredModel, version: ModelVersion) -> ServedVersion:
    return ServedVersion(VersionRef(version.id, model.name, model.kind, version.artifact), version.number)


def load_route(*, db_session: Session, model_name: str) -> Route:
    """Production and canary of a model, for app/predict/service.py (which checked the caller)."""
    model = _get_model(db_session, model_name)
    production = _production(db_session, model)
    canary = _canary(db_session, model)
    return Route(
        model_name=model.name,
        production=_served(model, production) if production else None,
        canary=_served(model, canary) if canary else None,
        canary_percent=model.canary_percent if canary else 0,
    )


def load_pinned(*, db_session: Session, model_name: str, version_number: int) -> ServedVersion:
    """One version of a model, for app/predict/service.py (which checked the caller)."""
    model = _get_model(db_session, model_name)
    return _served(model, _get_version(db_session, model, version_number))
