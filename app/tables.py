"""Every domain's tables, imported so that SQLModel.metadata is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.ask.tables import Conversation, Message
from app.auth.tables import ApiKey, ApiKeyRateLimit, User, UserSession
from app.datasets.tables import Dataset, DatasetLineage, DatasetVersion
from app.knowledge.tables import Chunk, Document, KnowledgeBase
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel, RegistryChange
from jobs.tables import Job

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "ApiKeyRateLimit",
    "Chunk",
    "Conversation",
    "Dataset",
    "DatasetLineage",
    "DatasetVersion",
    "Document",
    "Job",
    "KnowledgeBase",
    "Message",
    "ModelVersion",
    "PredictionLog",
    "RegisteredModel",
    "RegistryChange",
    "User",
    "UserSession",
    "metadata",
]
