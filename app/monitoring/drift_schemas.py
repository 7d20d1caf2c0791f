"""What drift detection hands to the API and the Monitoring page's drift panel."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

DriftStatus = Literal["ok", "drift", "not_enough_data"]


class DriftReferenceRequest(BaseModel):
    since: datetime = Field(description="Start of the reference window (ISO 8601; UTC when no zone is given)")
    until: datetime = Field(description="End of the reference window, in the past")


class DriftThresholdsRequest(BaseModel):
    thresholds: dict[str, float | None] = Field(
        description="{statistic: threshold}; null puts a statistic back to its default. Statistics: label_psi, "
        "label_js, confidence_ks, confidence_wasserstein, length_ks, length_wasserstein, oov_psi, "
        "embedding_shift, embedding_auc"
    )


class DriftComputeRequest(BaseModel):
    version: int | None = Field(default=None, description="Version number; default the production version")
    since: datetime | None = Field(
        default=None, description="Start of the current window; default STRATA_DRIFT_WINDOW_HOURS before until"
    )
    until: datetime | None = Field(default=None, description="End of the current window; default now")


class DriftConfigOut(BaseModel):
    model: str
    reference_since: datetime | None
    reference_until: datetime | None
    # The thresholds in force (defaults with the model's own on top), the defaults, and which differ.
    thresholds: dict[str, float]
    defaults: dict[str, float]
    overridden: list[str]
    min_samples: int
    window_hours: float
    interval_minutes: int


class DriftReport(BaseModel):
    id: int
    model: str
    version: int
    computed_at: datetime
    window_since: datetime
    window_until: datetime
    reference: str
    reference_rows: int
    current_rows: int
    status: DriftStatus
    message: str
    scores: dict[str, float]
    thresholds: dict[str, float]
    crossed: list[str]
    details: dict[str, Any]
    triggered_by: str


class DriftOverview(BaseModel):
    config: DriftConfigOut
    # Newest first.
    results: list[DriftReport]
