"""What the monitoring domain hands to the Monitoring page and the API: a model's figures over
a period, bucketed by time, and the answer to a prediction's feedback."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Period = Literal["hour", "day", "week"]


class TimeBucket(BaseModel):
    start: datetime
    predictions: int
    errors: int
    cache_hits: int
    cache_hit_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    # Predictions in this bucket that got feedback, and how many of them were right.
    feedback: int
    correct: int
    accuracy: float | None
    # Predictions per label in this bucket.
    labels: dict[str, int]


class ConfidenceBin(BaseModel):
    low: float
    high: float
    count: int


class Totals(BaseModel):
    predictions: int
    errors: int
    cache_hits: int
    cache_hit_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    feedback: int
    correct: int
    accuracy: float | None
    labels: dict[str, int]


class MonitoringFigures(BaseModel):
    model: str
    # None: every version of the model.
    version: int | None
    since: datetime
    until: datetime
    bucket_seconds: int
    # The log is a sample: counts are of logged predictions (multiply by 1 / sample_rate).
    sample_rate: float
    totals: Totals
    buckets: list[TimeBucket]
    confidence: list[ConfidenceBin]


class FeedbackRequest(BaseModel):
    label: str = Field(max_length=100, description="The correct label: one of the model version's labels")


class FeedbackResult(BaseModel):
    prediction_id: str
    model: str
    version: int
    predicted_label: str | None
    label: str
    correct: bool
