"""The usage log: one row per served request of interest (predictions, asks, chat completions,
embeddings), from the pages and the API alike."""

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class UsageEvent(SQLModel, table=True):
    """Who asked (user, API key or none for pages and session cookies), through which channel,
    for which kind of request and model, how it ended and how long it took, and the tokens a
    generator read and wrote. No foreign keys: usage outlives deleted users and revoked keys,
    and the user's email is kept as text for the figures."""

    __tablename__ = "usage_event"
    # The figures read a period, optionally narrowed to one user, key or model: each filter's
    # column leads an index with `at` (the period alone uses ix_usage_event_at).
    __table_args__ = (
        Index("ix_usage_event_user_id_at", "user_id", "at"),
        Index("ix_usage_event_api_key_id_at", "api_key_id", "at"),
        Index("ix_usage_event_model_at", "model", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    user_id: int
    user_email: str = Field(max_length=320)
    # None for the pages and for API calls with a session cookie.
    api_key_id: int | None = None
    # "api" or "ui" (a page's event handler).
    channel: str = Field(max_length=8)
    # predict, ask, chat or embeddings.
    endpoint: str = Field(max_length=16)
    model: str = Field(max_length=100)
    # The HTTP status the request got (a page's handler: the one the API would have answered).
    status_code: int
    latency_ms: float
    # Tokens of the generator's prompt and answer; None where no generator ran or it reported none.
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
