from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class KnowledgeBase(SQLModel, table=True):
    __tablename__ = "knowledge_base"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    description: str = Field(default="", max_length=2000)
    # Roles besides admin (who always reads) that may read and search it.
    reader_roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The Chroma collection holding its vectors (Chroma wants at least 3 characters).
    collection: str = Field(max_length=64, unique=True)
    created_by: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class DocumentStatus(StrEnum):
    queued = "queued"
    ingesting = "ingesting"
    ready = "ready"
    failed = "failed"


class Document(SQLModel, table=True):
    __tablename__ = "knowledge_document"
    # The same content is ingested once per knowledge base.
    __table_args__ = (UniqueConstraint("knowledge_base_id", "sha256", name="uq_knowledge_document_content"),)

    id: int | None = Field(default=None, primary_key=True)
    knowledge_base_id: int = Field(foreign_key="knowledge_base.id", index=True, ondelete="CASCADE")
    filename: str = Field(max_length=255)
    # What the content is (sniffed from its bytes at ingestion), e.g. "pdf"; empty until known.
    content_type: str = Field(default="", max_length=32)
    size_bytes: int
    sha256: str = Field(max_length=64)
    status: str = Field(default=DocumentStatus.queued.value, max_length=16, index=True)
    error: str | None = Field(default=None, sa_column=Column(Text))
    page_count: int | None = None
    chunk_count: int = 0
    job_id: str | None = Field(default=None, max_length=32)
    # The original file, relative to the data directory.
    stored_path: str = Field(max_length=500)
    created_by: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    ready_at: datetime | None = None


class Chunk(SQLModel, table=True):
    """A passage of a ready document. Its vector lives in Chroma under the same id; the
    text is kept here too for the lexical index and for citing."""

    __tablename__ = "knowledge_chunk"

    id: str = Field(primary_key=True, max_length=40)
    document_id: int = Field(foreign_key="knowledge_document.id", index=True, ondelete="CASCADE")
    knowledge_base_id: int = Field(foreign_key="knowledge_base.id", index=True, ondelete="CASCADE")
    ordinal: int
    page: int | None = None
    heading: str | None = Field(default=None, max_length=500)
    text: str = Field(sa_column=Column(Text, nullable=False))
