"""What retrieval hands to the rest of Strata: ranked passages with where they came from."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Passage(BaseModel):
    chunk_id: str
    knowledge_base_id: int
    knowledge_base_name: str
    document_id: int
    document_name: str
    page: int | None = None
    heading: str | None = None
    text: str
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None


class KnowledgeBaseIn(BaseModel):
    name: str
    description: str = ""
    reader_roles: list[str] = ["viewer", "staff"]


class KnowledgeBaseUpdate(BaseModel):
    name: str | None = None
    description: str | None = None
    reader_roles: list[str] | None = None


class KnowledgeBaseOut(BaseModel):
    id: int
    name: str
    description: str
    reader_roles: list[str]
    created_at: datetime

    @classmethod
    def of(cls, knowledge_base) -> "KnowledgeBaseOut":
        return cls.model_validate(knowledge_base, from_attributes=True)


class DocumentOut(BaseModel):
    id: int
    knowledge_base_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    status: str
    error: str | None
    page_count: int | None
    chunk_count: int
    job_id: str | None
    created_at: datetime
    ready_at: datetime | None

    @classmethod
    def of(cls, document) -> "DocumentOut":
        return cls.model_validate(document, from_attributes=True)


class SearchIn(BaseModel):
    query: str = Field(max_length=4000)
    # Every knowledge base the caller may read when omitted.
    knowledge_base_ids: list[int] | None = Field(default=None, max_length=100)
    top_k: int | None = Field(default=None, ge=1, le=100)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
