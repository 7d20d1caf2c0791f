"""What the alerts domain hands to the pages and the API: alerts and a model's thresholds."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

AlertKind = Literal["drift", "accuracy", "error_rate"]


class AlertOut(BaseModel):
    id: int
    model: str
    # The version whose figures crossed the threshold, when one did (drift is per version).
    version: int | None
    kind: str
    # Which figure: the drift statistic (psi, ks, ...), "accuracy" or "error_rate".
    statistic: str
    value: float
    threshold: float
    message: str
    open: bool
    opened_at: datetime
    # The latest crossing while it was open.
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AlertThresholdsIn(BaseModel):
    # Lowest live accuracy against feedback before an alert opens; null: no accuracy alerts.
    min_accuracy: float | None = Field(ge=0, le=1)
    # Feedback rows the window needs before its accuracy counts.
    min_feedback: int = Field(ge=1, le=1_000_000)
    # Highest share of failed predictions before an alert opens; null: no error-rate alerts.
    max_error_rate: float | None = Field(ge=0, le=1)
    # Logged predictions the window needs before its error rate counts.
    min_predictions: int = Field(ge=1, le=10_000_000)
    # The figures are those of the last window_minutes (at most 30 days).
    window_minutes: int = Field(ge=5, le=43_200)


class AlertThresholdsOut(AlertThresholdsIn):
    model: str
    # False while the model uses the defaults.
    customised: bool
    updated_by: str | None
    updated_at: datetime | None
