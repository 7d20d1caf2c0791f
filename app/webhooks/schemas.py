"""What the webhooks domain hands to the admin page and the API."""

from datetime import datetime

from pydantic import BaseModel, Field

from app.alerts.schemas import AlertKind


class WebhookIn(BaseModel):
    name: str = Field(max_length=100)
    # http:// or https:// only. Redirects are not followed.
    url: str = Field(max_length=2000)
    # Signs every POST (X-Strata-Signature); omitted: Strata generates one. Shown only in the
    # answer to this request.
    secret: str | None = Field(default=None, max_length=200)
    enabled: bool = True
    # The alert kinds it receives; default all.
    kinds: list[AlertKind] = Field(default_factory=lambda: ["drift", "accuracy", "error_rate"])


class WebhookUpdate(BaseModel):
    """The fields to change; a new secret replaces the old one (and is not shown again)."""

    name: str | None = Field(default=None, max_length=100)
    url: str | None = Field(default=None, max_length=2000)
    secret: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None
    kinds: list[AlertKind] | None = None


class WebhookOut(BaseModel):
    id: int
    name: str
    url: str
    enabled: bool
    kinds: list[str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    # Deliveries that failed for good, and the status of the newest one.
    failed_deliveries: int
    last_delivery_status: str | None


class WebhookCreated(WebhookOut):
    # The signing secret, this once: store it in the receiver.
    secret: str


class AttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    webhook: str
    alert_id: int | None
    # "alert.opened" or "test".
    event: str
    text: str
    # pending (an attempt is due at next_attempt_at), delivered or failed (out of attempts).
    status: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: list[AttemptOut]
