from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class Webhook(SQLModel, table=True):
    """Where an admin wants alerts sent: a JSON POST (Slack-compatible `text`) signed with
    `secret` (HMAC-SHA256). The secret is kept as given because signing needs it; it is shown
    once, when the webhook is created, and never returned after."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True, index=True)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=200)
    enabled: bool = True
    # The alert kinds it receives (drift, accuracy, error_rate).
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=320)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """One message to one webhook (an opened alert, or an admin's test) and its fate. The worker's
    sweep (app/webhooks/deliveries.py) sends it when `next_attempt_at` is due and, after a failure,
    sets the next time with a growing delay, until it is delivered or out of attempts."""

    __tablename__ = "webhook_delivery"
    # The sweep reads the due deliveries: status "pending" by next_attempt_at.
    __table_args__ = (Index("ix_webhook_delivery_status_next_attempt_at", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(foreign_key="webhook.id", index=True, ondelete="CASCADE")
    alert_id: int | None = Field(default=None, foreign_key="alert.id", ondelete="SET NULL")
    # "alert.opened" or "test".
    event: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # pending (an attempt is due at next_attempt_at), delivered, failed (out of attempts).
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    max_attempts: int
    next_attempt_at: datetime | None = Field(default_factory=utcnow)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None


class WebhookAttempt(SQLModel, table=True):
    """One POST of a delivery: the receiver's status code, or why there was none."""

    __tablename__ = "webhook_attempt"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_delivery.id", index=True, ondelete="CASCADE")
    number: int
    at: datetime = Field(default_factory=utcnow)
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    duration_ms: float
