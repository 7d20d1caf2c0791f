"""What the predict domain hands to the UI, the API and the jobs: models, versions,
registry events and predictions."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ModelKind = Literal["classifier", "embedder"]
Stage = Literal["staging", "production", "archived"]


class LabelSpec(BaseModel):
    name: str
    description: str


class ModelSummary(BaseModel):
    name: str
    kind: ModelKind
    description: str
    production_version: int | None
    canary_version: int | None
    canary_percent: int


class VersionSummary(BaseModel):
    id: int
    model_name: str
    number: int
    stage: Stage
    sha256: str
    size_bytes: int
    # "built-in" (installed with Strata), "imported" (an admin supplied it, e.g. a label set) or "trained".
    source: str
    metrics: dict[str, float]
    labels: list[LabelSpec]
    created_by: str
    created_at: datetime
    # Share of live traffic this version answers now (production gets what the canary leaves).
    traffic_percent: int
    served: int


class LabelScore(BaseModel):
    label: str
    probability: float


class PredictionResult(BaseModel):
    input_index: int
    # Set when this prediction was logged (sampled): the id to send feedback with.
    prediction_id: str | None = None
    label: str | None
    confidence: float | None
    scores: list[LabelScore]
    embedding: list[float] | None


class PredictionResponse(BaseModel):
    model: str
    version: int
    latency_ms: float
    cached: int
    results: list[PredictionResult]


class RegistryEvent(BaseModel):
    at: datetime
    user: str
    action: str
    model_name: str
    version: int | None
    detail: str


# API request bodies


class PredictRequest(BaseModel):
    inputs: list[str] | str = Field(description="One text or a list of texts")
    version: int | None = Field(default=None, description="Pin a version number instead of the routed one")

    def input_list(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else self.inputs


class CanaryRequest(BaseModel):
    percent: int


class LabelSetRequest(BaseModel):
    labels: list[LabelSpec]


class ImportRequest(BaseModel):
    path: str = Field(
        max_length=1000,
        description="A built ONNX model folder (manifest.json, model, tokenizer.json) in the model import folder "
        "(STRATA_MODEL_IMPORT_DIR), named relative to it",
    )
