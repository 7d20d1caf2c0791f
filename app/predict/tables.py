from datetime import datetime

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "registered_model"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    kind: str = Field(max_length=16)
    description: str = Field(default="", max_length=500)
    # The staging version that takes a share of live traffic, if any. No foreign key (nor on
    # replaced_version_id below): model_version already points here, and a cycle of keys
    # would make deleting a model and migrating both tables harder for nothing the
    # service does not already check.
    canary_version_id: int | None = Field(default=None)
    canary_percent: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_model.id", index=True, ondelete="CASCADE")
    number: int
    stage: str = Field(default="staging", max_length=16)
    # Absolute path of the artifact: a file (classifier label set) or a folder (embedder).
    artifact: str = Field(max_length=1000)
    sha256: str = Field(max_length=64)
    size_bytes: int
    source: str = Field(max_length=16)
    metrics: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    labels: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    # Kept as text so the record survives the user's deletion; "system" for built-ins.
    created_by: str = Field(max_length=320)
    created_at: datetime = Field(default_factory=utcnow)
    # The production version this one replaced when promoted: where a rollback returns to.
    replaced_version_id: int | None = Field(default=None)


class RegistryChange(SQLModel, table=True):
    __tablename__ = "registry_change"

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_model.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    user: str = Field(max_length=320)
    action: str = Field(max_length=32)
    version_number: int | None = None
    detail: str = Field(default="", max_length=500)


class PredictionLog(SQLModel, table=True):
    """A sample of predictions, for monitoring (rate: STRATA_PREDICTION_LOG_SAMPLE_RATE), with
    failed predictions (`error`) and the correct label a user gave afterwards (`feedback_label`)."""

    __tablename__ = "prediction_log"
    # Monitoring reads one model's versions over a period: (version_id, at) serves every figure.
    __table_args__ = (Index("ix_prediction_log_version_id_at", "version_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    version_id: int = Field(foreign_key="model_version.id", index=True, ondelete="CASCADE")
    caller: str = Field(max_length=64)
    latency_ms: float
    label: str | None = Field(default=None, max_length=100)
    confidence: float | None = None
    input_sha256: str = Field(max_length=64)
    cached: bool = False
    # The id the caller gets back to send feedback with: rows are written a second later, in
    # bulk, so the database id is not known when the prediction is answered.
    prediction_id: str | None = Field(default=None, max_length=32, unique=True, index=True)
    # The exception's class name when the prediction failed after its version was chosen.
    error: str | None = Field(default=None, max_length=100)
    feedback_label: str | None = Field(default=None, max_length=100)
    feedback_at: datetime | None = None
    # Kept as text (like created_by) so the feedback survives the user's deletion.
    feedback_by: str | None = Field(default=None, max_length=320)
    # The input's sketch for drift detection (models.sketch), computed when the row is written,
    # off the request path: length in characters, share of out-of-vocabulary words, and the
    # sentence embedding projected to 16 float16 numbers. None on failed predictions.
    input_length: int | None = None
    input_oov_share: float | None = None
    input_sketch: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # The raw input, only with STRATA_PREDICTION_LOG_INPUTS=true (off by default, for privacy).
    input_text: str | None = Field(default=None, sa_column=Column(Text))
