"""Predict and Models pages: run a model on text; watch and steer the model registry
(canary share, promote, roll back, new label sets). Registry changes need staff."""

from dataclasses import dataclass, field
from typing import Any

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.errors import StrataError
from app.core.roles import Role
from app.monitoring import service as monitoring_service
from app.predict import registry, service
from app.predict.schemas import LabelSpec, ModelSummary, PredictionResponse, VersionSummary
from app.ui.live import refresh_while_open

# Served counts and traffic shares move while the Models page is open.
REFRESH_SECONDS = 2.0


@dataclass
class ModelOption:
    name: str
    kind: str
    description: str


@dataclass
class ResultRow:
    index: int
    text: str
    label: str
    confidence: str
    # Chart rows {"label": ..., "percent": ...}, the shape the bar chart reads.
    scores: list[dict[str, Any]]
    chart_height: int
    # Embedders answer with a vector, not a label.
    embedding: str
    # The logged prediction that feedback names ("" when not logged), the labels the user may
    # choose as the correct one, and what was saved.
    prediction_id: str = ""
    label_choices: list[str] = field(default_factory=list)
    feedback: str = ""


def _options(models: list[ModelSummary]) -> list[ModelOption]:
    return [ModelOption(m.name, m.kind, m.description) for m in models]


def _result_rows(inputs: list[str], response: PredictionResponse) -> list[ResultRow]:
    rows = []
    for result in response.results:
        scores = [{"label": s.label, "percent": round(s.probability * 100, 1)} for s in result.scores]
        embedding = ""
        if result.embedding is not None:
            head = ", ".join(f"{value:.3f}" for value in result.embedding[:6])
            embedding = f"{len(result.embedding)} dimensions: [{head}, …]"
        rows.append(
            ResultRow(
                index=result.input_index,
                text=inputs[result.input_index],
                label=result.label or "",
                confidence=f"{result.confidence:.1%}" if result.confidence is not None else "",
                scores=scores,
                chart_height=28 * len(scores) + 20,
                embedding=embedding,
                prediction_id=result.prediction_id or "",
                label_choices=sorted(score.label for score in result.scores),
            )
        )
    return rows


class PredictState(AuthState):
    models: list[ModelOption] = []
    model_name: str = ""
    results: list[ResultRow] = []
    version: int = 0
    latency: str = ""
    cached: int = 0
    # Why the last prediction failed (rate limit, Redis down, bad input), shown as a callout.
    error: str = ""

    @rx.var
    def model_description(self) -> str:
        return next((m.description for m in self.models if m.name == self.model_name), "")

    @rx.var
    def is_embedder(self) -> bool:
        return any(m.kind == "embedder" for m in self.models if m.name == self.model_name)

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        models = await run_in_session(registry.list_models, actor=acting_user())
        self.models = _options(models)
        model = registry.pick_model(models, self.model_name)
        self.model_name = model.name if model else ""

    @rx.event
    @guarded(Role.viewer)
    async def choose_model(self, name: str):
        self.model_name = name
        self.results, self.error = [], ""

    @rx.event
    @guarded(Role.viewer)
    async def predict(self, form: dict):
        inputs = [line.strip() for line in str(form.get("inputs", "")).splitlines() if line.strip()]
        self.error = ""
        if not inputs:
            self.error = "Type or paste some text: one input per line."
            return
        try:
            # Logged every time (not sampled): a person here may say what the right label was.
            response = await service.predict(
                actor=acting_user(), model_name=self.model_name, inputs=inputs, log_always=True
            )
        except StrataError as exc:
            self.error = exc.message
            self.results = []
            return
        self.results = _result_rows(inputs, response)
        self.version = response.version
        self.latency = f"{response.latency_ms:.1f} ms"
        self.cached = response.cached

    @rx.event
    @guarded(Role.viewer)
    async def give_feedback(self, form: dict):
        """The correct label of one result (its prediction id and label come from the form)."""
        prediction_id, label = str(form.get("prediction_id", "")), str(form.get("label", ""))
        row = next((row for row in self.results if row.prediction_id and row.prediction_id == prediction_id), None)
        if row is None:
            return rx.toast.error("That prediction is no longer on the page.")
        if not label:
            return rx.toast.error("Choose the correct label first.")
        saved = await monitoring_service.give_feedback(actor=acting_user(), prediction_id=prediction_id, label=label)
        row.feedback = f"Saved: {saved.label}" + (" (the model was right)" if saved.correct else "")
        self.results = list(self.results)


@dataclass
class VersionRow:
    number: int
    stage: str
    source: str
    metrics: str
    labels: str
    created_by: str
    created_at: str
    traffic_percent: int
    served: int


@dataclass
class EventRow:
    at: str
    user: str
    action: str
    version: str
    detail: str


def _version_row(version: VersionSummary) -> VersionRow:
    return VersionRow(
        number=version.number,
        stage=version.stage,
        source=version.source,
        metrics=" · ".join(f"{name} {value:.3g}" for name, value in version.metrics.items()) or "—",
        labels=", ".join(label.name for label in version.labels),
        created_by=version.created_by,
        created_at=f"{version.created_at:%Y-%m-%d %H:%M}",
        traffic_percent=version.traffic_percent,
        served=version.served,
    )


def _labels_text(labels: list[LabelSpec]) -> str:
    return "\n".join(f"{label.name}: {label.description}" if label.description else label.name for label in labels)


def _parse_labels(text: str) -> list[LabelSpec]:
    """One label a line, `name: description` or just `name`."""
    labels = []
    for line in text.splitlines():
        name, _, description = line.partition(":")
        if name.strip():
            labels.append(LabelSpec(name=name.strip(), description=description.strip()))
    return labels


class ModelsState(AuthState):
    models: list[ModelOption] = []
    model_name: str = ""
    model_kind: str = ""
    production_version: int = 0
    canary_version: int = 0
    canary_percent: int = 0
    versions: list[VersionRow] = []
    events: list[EventRow] = []
    # The production labels, to start the label-set editor from.
    labels_text: str = ""
    # The canary share the staff member is choosing, applied with apply_canary.
    canary_draft: int = 0
    watching: bool = False

    @rx.var
    def canary_target(self) -> int:
        """The version the canary slider steers: the running canary, else the newest staging version."""
        if self.canary_version:
            return self.canary_version
        return next((v.number for v in self.versions if v.stage == "staging"), 0)

    @rx.var
    def slider_key(self) -> str:
        """Remounts the slider (at the server's share) when the model, target or applied share changes."""
        return f"{self.model_name}-{self.canary_target}-{self.canary_percent}"

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        await self._reload(self.model_name)

    @rx.event
    @guarded(Role.viewer)
    async def choose_model(self, name: str):
        await self._reload(name)

    @rx.event
    @guarded(Role.staff)
    async def move_canary(self, value: list[int | float]):
        self.canary_draft = int(value[0])

    @rx.event
    @guarded(Role.staff)
    async def apply_canary(self):
        target, percent = self.canary_target, self.canary_draft
        if not target:
            return rx.toast.error("Create a staging version first; the canary sends traffic to it.")
        await run_in_session(
            registry.set_canary, actor=acting_user(), model_name=self.model_name, version_number=target, percent=percent
        )
        await self._reload(self.model_name)
        return rx.toast.success(f"Version {target} now answers {percent}% of {self.model_name}'s traffic.")

    @rx.event
    @guarded(Role.staff)
    async def promote(self, version_number: int):
        await run_in_session(
            registry.promote, actor=acting_user(), model_name=self.model_name, version_number=version_number
        )
        await self._reload(self.model_name)
        return rx.toast.success(f"Version {version_number} is production.")

    @rx.event
    @guarded(Role.staff)
    async def rollback(self):
        await run_in_session(registry.rollback, actor=acting_user(), model_name=self.model_name)
        await self._reload(self.model_name)
        return rx.toast.success(f"Rolled back: version {self.production_version} is production again.")

    @rx.event
    @guarded(Role.staff)
    async def create_version(self, form: dict):
        labels = _parse_labels(str(form.get("labels", "")))
        version = await run_in_session(
            registry.create_classifier_version, actor=acting_user(), model_name=self.model_name, labels=labels
        )
        await self._reload(self.model_name)
        return rx.toast.success(f"Version {version.number} created in staging with {len(labels)} labels.")

    @rx.event(background=True)
    async def watch(self):
        await refresh_while_open(self, Role.viewer, self._refresh, REFRESH_SECONDS)

    @rx.event
    def stop_watching(self):
        self.watching = False

    async def _refresh(self) -> None:
        async with self:
            model_name = self.model_name
        overview = await run_in_session(registry.overview, actor=acting_user(), model_name=model_name)
        async with self:
            if self.model_name == model_name:
                self._show(overview)

    async def _reload(self, model_name: str) -> None:
        self._show(await run_in_session(registry.overview, actor=acting_user(), model_name=model_name))
        self.canary_draft = self.canary_percent

    def _show(self, overview: registry.Overview) -> None:
        model = overview.model
        self.models = _options(overview.models)
        self.model_name = model.name if model else ""
        self.model_kind = model.kind if model else ""
        self.production_version = (model.production_version or 0) if model else 0
        self.canary_version = (model.canary_version or 0) if model else 0
        self.canary_percent = model.canary_percent if model else 0
        self.versions = [_version_row(v) for v in overview.versions]
        self.events = [
            EventRow(f"{e.at:%Y-%m-%d %H:%M:%S}", e.user, e.action, str(e.version or ""), e.detail)
            for e in overview.events
        ]
        production = next((v for v in overview.versions if v.stage == "production"), None)
        self.labels_text = _labels_text(production.labels) if production else ""
