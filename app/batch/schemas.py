from datetime import datetime

from pydantic import BaseModel, Field

from app.batch.service import BatchView

# Bounds of the request fields: names as the datasets and registry allow them, ids within 32 bits.
MAX_NUMBER = 2**31 - 1


class BatchJobIn(BaseModel):
    dataset: str = Field(max_length=100)
    # The dataset's newest version when left out (resolved when the job starts).
    version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)
    text_column: str = Field(max_length=300)
    model: str = Field(max_length=100)
    # The model's production version when left out (resolved when the job starts).
    model_version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)


class ResultOut(BaseModel):
    dataset: str
    version: int
    download_csv: str
    download_parquet: str


class BatchJobOut(BaseModel):
    id: int
    job_id: str
    status: str  # queued, running, succeeded, failed or cancelled: the job's
    progress: float
    message: str
    error: str | None
    dataset: str
    version: int
    text_column: str
    model: str
    model_version: int
    chunk_size: int
    rows_total: int
    rows_done: int
    rows_failed: int
    rows_per_second: float | None
    eta_seconds: float | None
    # The new dataset version holding every row with prediction, confidence, model_version and error.
    result: ResultOut | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, view: BatchView) -> "BatchJobOut":
        result = None
        if view.result_dataset is not None:
            download = f"/api/v1/datasets/{view.result_dataset}/versions/{view.result_version}/download"
            result = ResultOut(
                dataset=view.result_dataset,
                version=view.result_version,
                download_csv=f"{download}?format=csv",
                download_parquet=f"{download}?format=parquet",
            )
        return cls(
            id=view.id,
            job_id=view.job_id,
            status=view.status,
            progress=view.progress,
            message=view.message,
            error=view.error,
            dataset=view.dataset,
            version=view.dataset_version,
            text_column=view.text_column,
            model=view.model,
            model_version=view.model_version,
            chunk_size=view.chunk_size,
            rows_total=view.rows_total,
            rows_done=view.rows_done,
            rows_failed=view.rows_failed,
            rows_per_second=view.rows_per_second,
            eta_seconds=view.eta_seconds,
            result=result,
            created_by=view.created_by,
            created_at=view.created_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
        )
