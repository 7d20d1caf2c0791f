"""Every domain's tables, imported so that SQLModel.metadata is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.auth.tables import ApiKey, User, UserSession
from app.jobs_board.tables import Job
from app.predict.tables import ApiKeyRateLimit, ModelVersion, PredictionLog, RegisteredModel, RegistryChange

metadata = SQLModel.metadata

__all__ = [
    "ApiKey",
    "ApiKeyRateLimit",
    "Job",
    "ModelVersion",
    "PredictionLog",
    "RegisteredModel",
    "RegistryChange",
    "User",
    "UserSession",
    "metadata",
]
