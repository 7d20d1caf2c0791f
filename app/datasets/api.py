from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.responses import FileResponse, JSONResponse
from sqlmodel import Session

from app.auth.deps import CurrentUser, IdentifiedCaller, SessionDep, SettingsDep, StaffUser, role_at_least
from app.core.db import run_in_session
from app.core.roles import Actor, Role
from app.datasets import service
from app.datasets.schemas import DatasetOut, VersionOut

router = APIRouter(prefix="/api/v1", tags=["datasets"])

# A dataset downloads as a file and is never rendered or sniffed by the browser.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _version_out(*, db_session: Session, actor: Actor, name: str, number: int, existing: bool = False) -> VersionOut:
    details = service.version_details(db_session=db_session, actor=actor, name=name, number=number)
    out = VersionOut.full(details.dataset, details.version, quality=details.quality, lineage=details.lineage)
    out.existing = existing
    return out


@router.get("/datasets")
def list_datasets(user: CurrentUser, db_session: SessionDep) -> list[DatasetOut]:
    """Every dataset with its versions, newest first."""
    return [
        DatasetOut.of(dataset, versions)
        for dataset, versions in service.list_datasets(db_session=db_session, actor=user)
    ]


@router.post(
    "/datasets",
    status_code=status.HTTP_201_CREATED,
    response_model=VersionOut,
    # Published as the route's minimum role; the service checks it again, before a byte is stored.
    dependencies=[role_at_least(Role.staff)],
    responses={status.HTTP_200_OK: {"model": VersionOut, "description": "The same bytes already are this version"}},
)
async def upload_dataset(
    caller: IdentifiedCaller,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form(max_length=100)],
) -> JSONResponse:
    """Upload a CSV, JSONL or Parquet file (multipart `file`) as the next version of the dataset
    `name`: 201 with the new version, or 200 with `existing: true` when the same bytes already are
    a version of it. A file over STRATA_DATASET_MAX_MB is a 413, an unreadable one a 422 naming the
    row or column; nothing is stored. Needs the staff role; counts against the caller's rate limit."""
    uploaded = await service.upload_dataset(
        actor=caller.user,
        settings=settings,
        name=name,
        upload=file,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )
    out = await run_in_session(
        _version_out,
        actor=caller.user,
        name=uploaded.dataset.name,
        number=uploaded.version.number,
        existing=uploaded.existing,
    )
    return JSONResponse(
        out.model_dump(mode="json"), status_code=status.HTTP_200_OK if uploaded.existing else status.HTTP_201_CREATED
    )


@router.get("/datasets/{name}/versions/{number:int}")
def get_version(name: str, number: int, user: CurrentUser, db_session: SessionDep) -> VersionOut:
    """One version: schema, row count, first rows, quality report and lineage."""
    return _version_out(db_session=db_session, actor=user, name=name, number=number)


@router.get("/datasets/{name}/versions/{number:int}/quality")
def get_quality(
    name: str,
    number: int,
    user: CurrentUser,
    db_session: SessionDep,
    label_column: Annotated[str | None, Query(max_length=300)] = None,
    text_column: Annotated[str | None, Query(max_length=300)] = None,
) -> dict:
    """The quality report, with the label distribution of `label_column` and the warnings
    about it and about `text_column` (else every text column)."""
    return service.version_details(
        db_session=db_session, actor=user, name=name, number=number, label_column=label_column, text_column=text_column
    ).quality


@router.get("/datasets/{name}/versions/{number:int}/download")
def download_version(
    name: str,
    number: int,
    user: CurrentUser,
    db_session: SessionDep,
    settings: SettingsDep,
    format: Annotated[Literal["csv", "parquet"] | None, Query()] = None,  # noqa: A002 - the query parameter's name
):
    """The version's file as an attachment: as uploaded, or as CSV or Parquet (`format`),
    converted once and kept."""
    path, media_type, filename = service.version_file(
        db_session=db_session, settings=settings, actor=user, name=name, number=number, file_format=format
    )
    return FileResponse(
        path, media_type=media_type, filename=filename, content_disposition_type="attachment", headers=DOWNLOAD_HEADERS
    )


@router.delete("/datasets/{name}/versions/{number:int}", status_code=status.HTTP_204_NO_CONTENT)
def delete_version(name: str, number: int, user: StaffUser, db_session: SessionDep, settings: SettingsDep) -> None:
    """Deletes the version; 409 naming the model while a model version was trained on it."""
    service.delete_version(db_session=db_session, settings=settings, actor=user, name=name, number=number)
