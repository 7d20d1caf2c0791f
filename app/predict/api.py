from fastapi import APIRouter, status

from app.auth.deps import AdminUser, CurrentUser, IdentifiedCaller, SessionDep, StaffUser
from app.core.errors import NotFound
from app.predict import service
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


def _summary(db_session, model_name: str) -> ModelSummary:
    for model in service.list_models(db_session=db_session):
        if model.name == model_name:
            return model
    raise NotFound(f"No model named {model_name!r}.")


@router.get("/models")
def list_models(_: CurrentUser, db_session: SessionDep) -> list[ModelSummary]:
    return service.list_models(db_session=db_session)


@router.get("/models/{model_name}")
def get_model(model_name: str, _: CurrentUser, db_session: SessionDep) -> ModelSummary:
    return _summary(db_session, model_name)


@router.get("/models/{model_name}/versions")
def list_versions(model_name: str, _: CurrentUser, db_session: SessionDep) -> list[VersionSummary]:
    return service.list_versions(db_session=db_session, model_name=model_name)


@router.get("/models/{model_name}/events")
def registry_events(model_name: str, _: CurrentUser, db_session: SessionDep, limit: int = 20) -> list[RegistryEvent]:
    return service.registry_events(db_session=db_session, model_name=model_name, limit=min(max(limit, 1), 500))


@router.post("/models/{model_name}/versions", status_code=status.HTTP_201_CREATED)
def create_version(model_name: str, body: LabelSetRequest, user: StaffUser, db_session: SessionDep) -> VersionSummary:
    return service.create_classifier_version(
        db_session=db_session, actor=user, model_name=model_name, labels=body.labels
    )


@router.post("/models/{model_name}/versions/import", status_code=status.HTTP_201_CREATED)
def import_version(model_name: str, body: ImportRequest, user: AdminUser, db_session: SessionDep) -> VersionSummary:
    return service.import_embedder_version(
        db_session=db_session, actor=user, model_name=model_name, source_dir=body.path
    )


@router.put("/models/{model_name}/versions/{version_number}/canary")
def set_canary(
    model_name: str, version_number: int, body: CanaryRequest, user: StaffUser, db_session: SessionDep
) -> ModelSummary:
    service.set_canary(
        db_session=db_session, actor=user, model_name=model_name, version_number=version_number, percent=body.percent
    )
    return _summary(db_session, model_name)


@router.post("/models/{model_name}/versions/{version_number}/promote")
def promote(model_name: str, version_number: int, user: StaffUser, db_session: SessionDep) -> ModelSummary:
    service.promote(db_session=db_session, actor=user, model_name=model_name, version_number=version_number)
    return _summary(db_session, model_name)


@router.post("/models/{model_name}/rollback")
def rollback(model_name: str, user: StaffUser, db_session: SessionDep) -> ModelSummary:
    service.rollback(db_session=db_session, actor=user, model_name=model_name)
    return _summary(db_session, model_name)


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
