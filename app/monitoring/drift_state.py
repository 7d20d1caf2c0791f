"""The Monitoring page's drift panel: the chosen model's latest drift scores against their
thresholds (crossed ones flagged), its recent results, its reference window and thresholds, and
"Compute drift now". A substate of MonitoringState: it follows the page's model select. Staff
only, like the page and the drift routes."""

from dataclasses import dataclass

import reflex as rx

from app.auth.state import acting_user, guarded
from app.core.db import run_in_session
from app.core.roles import Role
from app.monitoring import drift
from app.monitoring.drift_schemas import DriftOverview, DriftReport
from app.monitoring.drift_stats import DEFAULT_THRESHOLDS
from app.monitoring.state import MonitoringState, _parse_moment

STATISTICS = list(DEFAULT_THRESHOLDS)
MOMENT_FORMAT = "%Y-%m-%d %H:%M"


@dataclass
class ScoreRow:
    statistic: str
    score: str
    threshold: str
    crossed: bool


@dataclass
class HistoryRow:
    computed_at: str
    version: int
    status: str
    crossed: str
    triggered_by: str


class DriftState(MonitoringState):
    drift_model: str = ""
    drift_status: str = ""
    drift_message: str = ""
    drift_window: str = ""
    drift_reference: str = ""
    scores: list[ScoreRow] = []
    history: list[HistoryRow] = []
    reference_window: str = "not set"
    threshold_statistics: list[str] = STATISTICS

    def _show(self, overview: DriftOverview) -> None:
        config = overview.config
        self.drift_model = config.model
        self.reference_window = (
            f"{config.reference_since:{MOMENT_FORMAT}} to {config.reference_until:{MOMENT_FORMAT}} UTC"
            if config.reference_since and config.reference_until
            else "not set"
        )
        latest = overview.results[0] if overview.results else None
        self._show_latest(latest, config.thresholds)
        self.history = [
            HistoryRow(
                computed_at=f"{result.computed_at:{MOMENT_FORMAT}}",
                version=result.version,
                status=result.status,
                crossed=", ".join(result.crossed) or "—",
                triggered_by=result.triggered_by,
            )
            for result in overview.results
        ]

    def _show_latest(self, latest: DriftReport | None, thresholds: dict[str, float]) -> None:
        scores = latest.scores if latest else {}
        self.drift_status = latest.status if latest else "none yet"
        self.drift_message = latest.message if latest else "No drift computed yet for this model."
        self.drift_window = (
            f"{latest.window_since:{MOMENT_FORMAT}} to {latest.window_until:{MOMENT_FORMAT}} UTC, "
            f"{latest.current_rows} predictions"
            if latest
            else ""
        )
        self.drift_reference = f"{latest.reference}, {latest.reference_rows} rows" if latest else ""
        self.scores = [
            ScoreRow(
                statistic=name,
                score=f"{scores[name]:.4f}" if name in scores else "—",
                threshold=f"{thresholds[name]:g}",
                crossed=bool(latest) and name in latest.crossed,
            )
            for name in STATISTICS
        ]

    async def _load_drift(self) -> None:
        if not self.model_name:
            return
        overview = await run_in_session(drift.overview, actor=acting_user(), model_name=self.model_name)
        self._show(overview)

    @rx.event
    @guarded(Role.staff)
    async def load_drift(self):
        await self._load_drift()

    @rx.event
    @guarded(Role.staff)
    async def compute_now(self):
        await drift.compute_drift_now(actor=acting_user(), model_name=self.model_name)
        await self._load_drift()

    @rx.event
    @guarded(Role.staff)
    async def save_reference_window(self, form: dict):
        """From and until (datetime-local inputs, UTC) of the reference window."""
        await run_in_session(
            drift.set_reference_window,
            actor=acting_user(),
            model_name=self.model_name,
            since=_parse_moment(str(form.get("since", "")), "Reference from"),
            until=_parse_moment(str(form.get("until", "")), "Reference until"),
        )
        await self._load_drift()

    @rx.event
    @guarded(Role.staff)
    async def save_threshold(self, form: dict):
        """One statistic's threshold; an empty value puts it back to its default."""
        text = str(form.get("value", "")).strip()
        try:
            value = float(text) if text else None
        except ValueError:
            return rx.toast.error(f"A threshold is a number; got {text!r}.")
        await run_in_session(
            drift.set_thresholds,
            actor=acting_user(),
            model_name=self.model_name,
            thresholds={str(form.get("statistic", "")): value},
        )
        await self._load_drift()
