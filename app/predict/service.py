"""Model registry and predictions: the one place their rules live (UI, API and jobs call these).

Interface first: bodies are being completed; signatures stay as they are."""

from sqlmodel import Session

from app.auth.tables import User
from app.core.errors import NotFound
from app.predict.schemas import (
    LabelSpec,
    ModelSummary,
    PredictionResponse,
    RegistryEvent,
    VersionSummary,
)

MAX_INPUTS_PER_REQUEST = 64
MAX_INPUT_CHARS = 10_000


def list_models(*, db_session: Session) -> list[ModelSummary]:
    return []


def list_versions(*, db_session: Session, model_name: str) -> list[VersionSummary]:
    """Newest first; `served` counts predictions per version."""
    raise NotFound(f"No model named {model_name!r}.")


def registry_events(*, db_session: Session, model_name: str, limit: int = 20) -> list[RegistryEvent]:
    """Newest first."""
    return []


def create_classifier_version(
    *, db_session: Session, actor: User, model_name: str, labels: list[LabelSpec]
) -> VersionSummary:
    """A new staging version of a zero-shot classifier with this label set (staff)."""
    raise NotFound(f"No model named {model_name!r}.")


def set_canary(*, db_session: Session, actor: User, model_name: str, version_number: int, percent: int) -> None:
    """Sends `percent` (0-100) of the model's traffic to this staging version (staff)."""
    raise NotFound(f"No model named {model_name!r}.")


def promote(*, db_session: Session, actor: User, model_name: str, version_number: int) -> None:
    """Makes this version production; the old production is archived and remembered for rollback (staff)."""
    raise NotFound(f"No model named {model_name!r}.")


def rollback(*, db_session: Session, actor: User, model_name: str) -> None:
    """Brings the previous production version back; the current one is archived (staff)."""
    raise NotFound(f"No model named {model_name!r}.")


async def predict(
    *, model_name: str, inputs: list[str], caller: str, version_number: int | None = None
) -> PredictionResponse:
    """Routes to production or canary (sticky per caller) unless a version is pinned.
    `caller` is "user:<id>" or "key:<id>". Raises InvalidInput, NotFound."""
    raise NotFound(f"No model named {model_name!r}.")
