"""Every domain's tables, imported so that SQLModel.metadata is complete (Alembic, tests)."""

from sqlmodel import SQLModel

from app.auth.tables import ApiKey, User, UserSession
from app.jobs_board.tables import Job

metadata = SQLModel.metadata

__all__ = ["ApiKey", "Job", "User", "UserSession", "metadata"]
