from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.training.service import MAX_PAGE_SIZE, MAX_SEED, Comparison, RunPage, RunView


class TrainingRunIn(BaseModel):
    dataset: str = Field(min_length=1, max_length=100)
    # The newest version when left out.
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    text_column: str = Field(min_length=1, max_length=300)
    label_column: str = Field(min_length=1, max_length=300)
    # The model the winner becomes a staging version of (created as a classifier if new).
    model_name: str = Field(min_length=1, max_length=100)
    # The service accepts 0.05 to 0.5 and says so; this only keeps out what is not a fraction.
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)


class RegisteredVersionOut(BaseModel):
    model: str
    version: int
    stage: str


class TrainingRunSummary(BaseModel):
    id: int
    job_id: str
    status: str  # the job's: queued, running, succeeded, failed or cancelled
    progress: float
    message: str
    dataset: str | None  # None once the dataset version was deleted
    dataset_version: int | None
    text_column: str
    label_column: str
    model_name: str
    holdout_fraction: float
    seed: int
    chosen: str | None
    accuracy: float | None
    macro_f1: float | None
    duration_seconds: float | None
    model_version: RegisteredVersionOut | None
    started_by: str | None
    created_at: datetime
    error: str | None

    @classmethod
    def of(cls, view: RunView) -> "TrainingRunSummary":
        run = view.run
        return cls(
            id=run.id,
            job_id=run.job_id,
            status=view.status,
            progress=view.progress,
            message=view.message,
            dataset=view.dataset,
            dataset_version=view.dataset_version,
            text_column=run.text_column,
            label_column=run.label_column,
            model_name=run.model_name,
            holdout_fraction=run.holdout_fraction,
            seed=run.seed,
            chosen=run.chosen,
            accuracy=run.accuracy,
            macro_f1=run.macro_f1,
            duration_seconds=run.duration_seconds,
            model_version=(
                RegisteredVersionOut(model=run.model_name, version=view.model_version, stage=view.model_stage)
                if view.model_version is not None
                else None
            ),
            started_by=view.started_by,
            created_at=run.created_at,
            error=view.error,
        )


class TrainingRunOut(TrainingRunSummary):
    """A run in full. `per_class` and `confusion_matrix` are the chosen candidate's on the
    holdout (matrix rows: true label, columns: predicted, both in the order of `labels`)."""

    labels: list[str]
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    candidates: list[dict[str, Any]]  # every candidate's cross-validated and holdout scores
    baseline: dict[str, Any] | None  # scikit-learn's default TF-IDF + LR on the same split
    parity: dict[str, Any] | None  # the ONNX export against the trained model on the holdout
    split: dict[str, Any] | None
    rows: dict[str, Any] | None  # rows read and used; those without a text or a label are left out

    @classmethod
    def full(cls, view: RunView) -> "TrainingRunOut":
        report = view.run.report or {}
        metrics = report.get("metrics") or {}
        return cls(
            **TrainingRunSummary.of(view).model_dump(),
            labels=report.get("labels") or [],
            per_class=metrics.get("per_class") or {},
            confusion_matrix=metrics.get("confusion_matrix") or [],
            candidates=report.get("candidates") or [],
            baseline=report.get("baseline"),
            parity=report.get("parity"),
            split=report.get("split"),
            rows=report.get("rows"),
        )


class TrainingRunPage(BaseModel):
    total: int
    page: int
    page_size: int
    max_page_size: int = MAX_PAGE_SIZE
    runs: list[TrainingRunSummary]

    @classmethod
    def of(cls, page: RunPage) -> "TrainingRunPage":
        return cls(
            total=page.total,
            page=page.page,
            page_size=page.page_size,
            runs=[TrainingRunSummary.of(view) for view in page.runs],
        )


class DifferenceOut(BaseModel):
    section: str  # params, metrics or per_class
    field: str
    a: Any
    b: Any


class ComparisonOut(BaseModel):
    a: TrainingRunSummary
    b: TrainingRunSummary
    differences: list[DifferenceOut]

    @classmethod
    def of(cls, comparison: Comparison) -> "ComparisonOut":
        return cls(
            a=TrainingRunSummary.of(comparison.a),
            b=TrainingRunSummary.of(comparison.b),
            differences=[DifferenceOut(**vars(item)) for item in comparison.differences],
        )
