"""Every domain's job kinds, imported so that the web and the worker both know them."""

from app.backup.jobs import back_up
from app.batch.jobs import score_dataset
from app.knowledge.jobs import ingest_document
from app.system.jobs import verify_models
from app.training.jobs import train_classifier

__all__ = ["back_up", "ingest_document", "score_dataset", "train_classifier", "verify_models"]
