from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow

# What an alert is about: drift (a statistic of the inputs or outputs against the reference),
# live accuracy against feedback, or the share of failed predictions.
ALERT_KINDS = ("drift", "accuracy", "error_rate")


class Alert(SQLModel, table=True):
    """A threshold a model crossed: drift (app/monitoring's drift check), live accuracy against
    feedback or error rate (app/alerts/checks.py). Open until someone acknowledges it; while open,
    each new crossing updates `value` and `last_seen_at` instead of opening another.

    `open_key` ("<model id>:<kind>:<statistic>") is set while the alert is open and cleared on
    acknowledgement: its unique index lets only one alert of a model, kind and statistic be open
    at a time, also when two processes cross the same threshold at once (NULLs never collide)."""

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="registered_model.id", index=True, ondelete="CASCADE")
    version_id: int | None = Field(default=None, foreign_key="model_version.id", ondelete="SET NULL")
    kind: str = Field(max_length=16, index=True)
    statistic: str = Field(max_length=32)
    value: float
    threshold: float
    message: str = Field(sa_column=Column(Text, nullable=False))
    open_key: str | None = Field(default=None, max_length=80, unique=True)
    opened_at: datetime = Field(default_factory=utcnow, index=True)
    last_seen_at: datetime = Field(default_factory=utcnow)
    acknowledged_at: datetime | None = None
    acknowledged_by_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    # Kept as text so the record survives the user's deletion.
    acknowledged_by: str | None = Field(default=None, max_length=320)


class AlertThresholds(SQLModel, table=True):
    """A model's accuracy and error-rate thresholds, when staff changed them from the defaults
    (app/alerts/thresholds.py). None switches that check off for the model."""

    __tablename__ = "alert_thresholds"

    model_id: int = Field(foreign_key="registered_model.id", primary_key=True, ondelete="CASCADE")
    min_accuracy: float | None = None
    min_feedback: int
    max_error_rate: float | None = None
    min_predictions: int
    window_minutes: int
    updated_by: str = Field(max_length=320)
    updated_at: datetime = Field(default_factory=utcnow)
