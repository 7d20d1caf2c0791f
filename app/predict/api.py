from fastapi import APIRouter, status

from app.auth.deps import AdminUser, CurrentUser, IdentifiedCaller, SessionDep, StaffUser
from app.predict import registry, service
from app.predict.schemas import (
    CanaryRequest,
    ImportRequest,
    LabelSetRequest,
    ModelSummary,
    PredictionResponse,
    PredictRequest,
    RegistryEvent,
    VersionSummary,
)

router = APIRouter(prefix="/api/v1", tags=["models"])


@router.get("/models")
def list_models(user: CurrentUser, db_session: SessionDep) -> list[ModelSummary]:
    return registry.list_models(db_session=db_session, actor=user)


@router.get("/models/{model_name}")
def get_model(model_name: str, user: CurrentUser, db_session: SessionDep) -> ModelSummary:
    return registry.get_model(db_session=db_session, actor=user, model_name=model_name)


@router.get("/models/{model_name}/versions")
def list_versions(model_name: str, user: CurrentUser, db_session: SessionDep) -> list[VersionSummary]:
    return registry.list_versions(db_session=db_session, actor=user, model_name=model_name)


@router.get("/models/{model_name}/events")
def registry_events(model_name: str, user: CurrentUser, db_session: SessionDep, limit: int = 20) -> list[RegistryEvent]:
    return registry.registry_events(db_session=db_session, actor=user, model_name=model_name, limit=limit)


@router.post("/models/{model_name}/versions", status_code=status.HTTP_201_CREATED)
def create_version(model_name: str, body: LabelSetRequest, user: StaffUser, db_session: SessionDep) -> VersionSummary:
    return registry.create_classifier_version(
        db_session=db_session, actor=user, model_name=model_name, labels=body.labels
    )


@router.post("/models/{model_name}/versions/import", status_code=status.HTTP_201_CREATED)
def import_version(model_name: str, body: ImportRequest, user: AdminUser, db_session: SessionDep) -> VersionSummary:
    return registry.import_embedder_version(db_session=db_session, actor=user, model_name=model_name, path=body.path)


@router.put("/models/{model_name}/versions/{version_number}/canary")
def set_canary(
    model_name: str, version_number: int, body: CanaryRequest, user: StaffUser, db_session: SessionDep
) -> ModelSummary:
    registry.set_canary(
        db_session=db_session, actor=user, model_name=model_name, version_number=version_number, percent=body.percent
    )
    return registry.get_model(db_session=db_session, actor=user, model_name=model_name)


@router.post("/models/{model_name}/versions/{version_number}/promote")
def promote(model_name: str, version_number: int, user: StaffUser, db_session: SessionDep) -> ModelSummary:
    registry.promote(db_session=db_session, actor=user, model_name=model_name, version_number=version_number)
    return registry.get_model(db_session=db_session, actor=user, model_name=model_name)


@router.post("/models/{model_name}/rollback")
def rollback(model_name: str, user: StaffUser, db_session: SessionDep) -> ModelSummary:
    registry.rollback(db_session=db_session, actor=user, model_name=model_name)
    return registry.get_model(db_session=db_session, actor=user, model_name=model_name)


@router.post("/models/{model_name}/predict")
async def predict(model_name: str, body: PredictRequest, caller: IdentifiedCaller) -> PredictionResponse:
    return await service.predict(
        actor=caller.user,
        model_name=model_name,
        inputs=body.input_list(),
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
        version_number=body.version,
    )
