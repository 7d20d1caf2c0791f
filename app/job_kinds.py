"""Every domain's job kinds, imported so that the web and the worker both know them."""

from app.knowledge.jobs import ingest_document
from app.system.jobs import verify_models

__all__ = ["ingest_document", "verify_models"]
