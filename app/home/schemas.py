"""What the Home page shows a user: one summary of what they may see across the domains."""

from datetime import datetime

from pydantic import BaseModel


class RecentConversation(BaseModel):
    id: int
    title: str
    updated_at: datetime


class AskableKnowledgeBase(BaseModel):
    id: int
    name: str
    # Documents queued or being ingested: not searchable yet.
    ingesting: int


class IngestingDocument(BaseModel):
    id: int
    filename: str
    knowledge_base: str
    status: str


class ProductionModel(BaseModel):
    name: str
    kind: str
    production_version: int | None
    canary_version: int | None
    canary_percent: int
    # Served predictions the log holds since `HomeSummary.traffic_since` (a sample, see there).
    logged_today: int


class JobLine(BaseModel):
    id: str
    title: str
    status: str
    progress: float
    message: str
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class OpenAlert(BaseModel):
    id: int
    model: str
    version: int | None
    kind: str
    message: str
    opened_at: datetime


class HomeSummary(BaseModel):
    user_name: str
    role: str
    conversations: list[RecentConversation]
    knowledge_bases: list[AskableKnowledgeBase]
    # The first of the documents still ingesting (`ingesting_total` of them in all).
    ingesting: list[IngestingDocument]
    ingesting_total: int
    models: list[ProductionModel]
    # Today's traffic counts the prediction log from this moment (UTC midnight). The log keeps
    # a sample of API predictions (this rate) and every prediction of the Predict page.
    traffic_since: datetime
    sample_rate: float
    # None for viewers: the job sections are for staff (queued jobs count as running).
    running_jobs: list[JobLine] | None
    failed_jobs: list[JobLine] | None
    # Open alerts: everyone signed in sees them; staff acknowledge them on the Monitoring page.
    alerts: list[OpenAlert]
