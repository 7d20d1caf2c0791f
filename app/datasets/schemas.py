from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.datasets.tables import Dataset, DatasetLineage, DatasetVersion


class ColumnOut(BaseModel):
    name: str
    type: str  # text, integer, number, boolean, list, object, mixed, empty, ...


class VersionSummary(BaseModel):
    number: int
    sha256: str
    format: str
    filename: str
    size_bytes: int
    row_count: int
    columns: list[ColumnOut]
    created_at: datetime

    @classmethod
    def of(cls, version: DatasetVersion) -> "VersionSummary":
        return cls(
            number=version.number,
            sha256=version.sha256,
            format=version.format,
            filename=version.filename,
            size_bytes=version.size_bytes,
            row_count=version.row_count,
            columns=[ColumnOut(**column) for column in version.columns],
            created_at=version.created_at,
        )


class DatasetOut(BaseModel):
    name: str
    created_at: datetime
    versions: list[VersionSummary]  # newest first

    @classmethod
    def of(cls, dataset: Dataset, versions: list[DatasetVersion]) -> "DatasetOut":
        return cls(name=dataset.name, created_at=dataset.created_at, versions=[VersionSummary.of(v) for v in versions])


class LineageOut(BaseModel):
    kind: str  # training_run, model_version, batch_job or batch_result
    ref_id: str
    label: str
    created_at: datetime

    @classmethod
    def of(cls, link: DatasetLineage) -> "LineageOut":
        return cls(kind=link.kind, ref_id=link.ref_id, label=link.label, created_at=link.created_at)


class VersionOut(VersionSummary):
    dataset: str
    # The first rows, each a list of values in the order of `columns`; long texts are cut.
    preview: list[list[Any]]
    quality: dict[str, Any]
    lineage: list[LineageOut]
    download_url: str
    # On upload: true when the same bytes already were this version, so nothing new was stored.
    existing: bool = False

    @classmethod
    def full(
        cls, dataset: Dataset, version: DatasetVersion, *, quality: dict, lineage: list[DatasetLineage]
    ) -> "VersionOut":
        return cls(
            **VersionSummary.of(version).model_dump(),
            dataset=dataset.name,
            preview=version.profile["preview"],
            quality=quality,
            lineage=[LineageOut.of(link) for link in lineage],
            download_url=f"/api/v1/datasets/{dataset.name}/versions/{version.number}/download",
        )
