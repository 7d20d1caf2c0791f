"""Every domain's tables, imported so that SQLModel.metadata is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.alerts.tables import Alert, AlertThresholds
from app.ask.tables import Conversation, Message
from app.audit.tables import AuditEntry
from app.auth.tables import ApiKey, ApiKeyRateLimit, User, UserSession
from app.batch.tables import BatchChunk, BatchRun
from app.datasets.tables import Dataset, DatasetLineage, DatasetVersion
from app.knowledge.tables import Chunk, Document, KnowledgeBase
from app.monitoring.rollup_tables import PredictionRollup, RollupProgress
from app.monitoring.tables import DriftConfig, DriftReference, DriftResult
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel, RegistryChange
from app.schedules.tables import Schedule
from app.training.tables import TrainingRun
from app.usage.tables import UsageEvent
from app.webhooks.tables import Webhook, WebhookAttempt, WebhookDelivery
from jobs.tables import Job

metadata = SQLModel.metadata

__all__ = [
    "Alert",
    "AlertThresholds",
    "ApiKey",
    "ApiKeyRateLimit",
    "AuditEntry",
    "BatchChunk",
    "BatchRun",
    "Chunk",
    "Conversation",
    "Dataset",
    "DatasetLineage",
    "DatasetVersion",
    "Document",
    "DriftConfig",
    "DriftReference",
    "DriftResult",
    "Job",
    "KnowledgeBase",
    "Message",
    "ModelVersion",
    "PredictionLog",
    "PredictionRollup",
    "RegisteredModel",
    "RegistryChange",
    "RollupProgress",
    "Schedule",
    "TrainingRun",
    "UsageEvent",
    "User",
    "UserSession",
    "Webhook",
    "WebhookAttempt",
    "WebhookDelivery",
    "metadata",
]
