"""Answer quality: the grounding check of every answer, and quality per generator over time.

A complete answer is checked sentence by sentence against the passages it was given
(models.grounding: embedding similarity and content-word overlap, thresholds from the
settings). An answer below the answer threshold is flagged. The built-in model's flagged
answer is replaced by the extractive answer (the passages' own sentences), since a 135M
model's unsupported sentences are mostly invented; an external server's is kept, flagged,
with its unsupported sentences marked, as its operator chose that model.

The Message keeps the verdict as JSON (spans over the generator's own answer: when replaced,
that text is kept beside it as `replaced_answer`) and its support and flag in columns, which
answer_quality_by_hour aggregates per generator and hour in SQL."""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, case, func, literal_column, type_coerce
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from app.ask.tables import Message
from app.auth.tables import User
from app.core import ml
from app.core.errors import InvalidInput
from app.core.roles import Role, require_role
from app.core.settings import get_settings
from app.generation import service as generation
from app.generation.schemas import GeneratorInfo
from app.knowledge.schemas import Passage
from models.grounding import check_grounding

FALLBACK_NOTICE = "The model's answer was not supported by the passages; showing the passages' own sentences instead."
FLAGGED_NOTICE = (
    "This answer is not well supported by the passages: the marked sentences are not found in them; check before use."
)
UNSUPPORTED_TOOLTIP = "Not supported by the passages"
FALLBACK_PREFIX = "From the passages: "
FALLBACK_GENERATOR = "extractive"
MAX_QUALITY_HOURS = 24 * 92


@dataclass(frozen=True)
class Verdict:
    """The grounding of one answer: `record` for the Message and the API, and the text that
    replaces the answer when it fell back (else None)."""

    record: dict[str, Any]
    replacement: str | None

    @property
    def notice(self) -> str:
        if self.replacement is not None:
            return FALLBACK_NOTICE
        return FLAGGED_NOTICE if self.record["flagged"] else ""


def ground_answer(*, question: str, answer: str, passages: list[Passage], generator: GeneratorInfo) -> Verdict:
    """Checks `answer` against `passages` (blocking: embeds; run it in a worker thread)."""
    settings = get_settings()
    # The extractive generator's preface says why it quotes; it is no claim to check.
    extractive = answer.startswith(generation.EXTRACTIVE_PREFIX)
    report = check_grounding(
        answer,
        [passage.text for passage in passages],
        ml.embed,
        sentence_threshold=settings.grounding_sentence_threshold,
        answer_threshold=settings.grounding_answer_threshold,
        start=len(generation.EXTRACTIVE_PREFIX) if extractive else 0,
    )
    record: dict[str, Any] = {
        "support": report.support,
        "flagged": report.flagged,
        "sentence_threshold": settings.grounding_sentence_threshold,
        "answer_threshold": settings.grounding_answer_threshold,
        "sentences": [asdict(sentence) for sentence in report.sentences],
        "fallback": None,
        "replaced_answer": None,
    }
    if not (report.flagged and generator.kind == "local" and not extractive):
        return Verdict(record=record, replacement=None)
    replacement = generation.extractive_answer(question, passages, prefix=FALLBACK_PREFIX)
    record.update(fallback=FALLBACK_GENERATOR, replaced_answer=answer)
    return Verdict(record=record, replacement=replacement)


def grounding_notice(record: dict[str, Any] | None) -> str:
    """What a saved answer's grounding tells its reader ("" when nothing)."""
    if not record:
        return ""
    if record.get("fallback"):
        return FALLBACK_NOTICE
    return FLAGGED_NOTICE if record.get("flagged") else ""


def unsupported_spans(record: dict[str, Any] | None) -> list[tuple[int, int]]:
    """Character spans of the unsupported sentences in the generator's answer: the saved
    answer, or its `replaced_answer` when it fell back."""
    if not record:
        return []
    return [(item["start"], item["end"]) for item in record.get("sentences", []) if not item["supported"]]


@dataclass(frozen=True)
class QualityHour:
    """Answers of one generator in one hour (UTC): how many were checked and flagged, their
    mean support, and how many were rated and rated thumbs up."""

    hour: datetime
    generator: str
    answers: int
    checked: int
    flagged: int
    mean_support: float | None
    rated: int
    thumbs_up: int

    @property
    def grounded_rate(self) -> float | None:
        return (self.checked - self.flagged) / self.checked if self.checked else None

    @property
    def thumbs_up_rate(self) -> float | None:
        return self.thumbs_up / self.rated if self.rated else None


def _hour(db_session: Session):
    """Message.created_at truncated to the hour, in UTC, by the database."""
    # Literal arguments, not bound ones: PostgreSQL must see GROUP BY's expression as the SELECT's.
    if db_session.get_bind().dialect.name == "postgresql":
        bucket = func.date_trunc(
            literal_column("'hour'"), func.timezone(literal_column("'UTC'"), col(Message.created_at))
        )
    else:  # SQLite keeps UTC text
        bucket = func.strftime(literal_column("'%Y-%m-%d %H:00:00'"), col(Message.created_at))
    return type_coerce(bucket, UTCDateTime())


def answer_quality_by_hour(*, db_session: Session, actor: User, since: datetime, until: datetime) -> list[QualityHour]:
    """Per generator and hour in [since, until): answers, grounding and thumbs up, aggregated
    in the database. Staff only (it spans every user's answers)."""
    require_role(actor, Role.staff)
    if until <= since:
        raise InvalidInput("The period's end must come after its start.")
    if (until - since).total_seconds() > MAX_QUALITY_HOURS * 3600:
        raise InvalidInput(f"Choose a period of at most {MAX_QUALITY_HOURS // 24} days.")
    hour = _hour(db_session).label("hour")
    statement = (
        select(
            hour,
            Message.generator,
            func.count(),
            func.count(col(Message.grounding_flagged)),
            func.sum(case((col(Message.grounding_flagged).is_(True), 1), else_=0)),
            func.avg(type_coerce(col(Message.grounding_support), Float)),
            func.count(col(Message.rating)),
            func.sum(case((col(Message.rating) == 1, 1), else_=0)),
        )
        .where(
            Message.role == "assistant",
            col(Message.generator) != "",
            col(Message.created_at) >= since,
            col(Message.created_at) < until,
        )
        .group_by(hour, Message.generator)
        .order_by(hour, Message.generator)
    )
    return [
        QualityHour(
            hour=row[0],
            generator=row[1],
            answers=row[2],
            checked=row[3],
            flagged=row[4] or 0,
            mean_support=round(float(row[5]), 4) if row[5] is not None else None,
            rated=row[6],
            thumbs_up=row[7] or 0,
        )
        for row in db_session.exec(statement)
    ]
