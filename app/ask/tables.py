from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class AnswerStatus(StrEnum):
    complete = "complete"
    stopped = "stopped"
    failed = "failed"


class Conversation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    title: str = Field(max_length=200)
    knowledge_base_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Message(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True, ondelete="CASCADE")
    role: str = Field(max_length=16)  # "user" or "assistant"
    content: str = Field(sa_column=Column(Text, nullable=False))
    # The passages the answer was given, numbered as the answer cites them ([1] is the first).
    passages: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=AnswerStatus.complete.value, max_length=16)
    generator: str = Field(default="", max_length=200)
    rating: int | None = None  # +1 thumbs up, -1 thumbs down
    feedback_comment: str | None = Field(default=None, sa_column=Column(Text))
    rated_at: datetime | None = None
    # The grounding check of a complete answer (app/ask/grounding.py): its sentences' spans and
    # scores, the support, whether it was flagged and what replaced it. None: not checked (a
    # question, nothing found, a stopped or failed answer). Support and flag also have columns
    # of their own, so that quality per generator over time is aggregated in SQL.
    grounding: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    grounding_support: float | None = None
    grounding_flagged: bool | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
