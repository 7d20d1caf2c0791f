"""The Batch page: staff score a dataset version with a classifier; everyone watches the runs
(progress, rows/s, ETA) and downloads their results as CSV or Parquet."""

from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.batch import service
from app.batch.scoring import format_eta
from app.core.db import run_in_session
from app.core.roles import Actor, Role
from app.ui.live import refresh_while_open

REFRESH_SECONDS = 1.0
# rx.select cannot offer an empty value: these stand for "the newest version" and "production".
NEWEST = "newest"
PRODUCTION = "production"
FORM_FIELDS = ("form_dataset", "form_version", "form_text_column", "form_model", "form_model_version")


@dataclass
class RunRow:
    id: int
    dataset: str
    model: str
    text_column: str
    status: str
    percent: int
    message: str
    error: str
    rows: str
    failed: int
    rate: str
    eta: str
    active: bool
    result: str
    csv_url: str
    parquet_url: str
    started_by: str
    created: str


@dataclass
class DatasetChoice:
    name: str
    # Version numbers as the select offers them, newest first.
    versions: list[str]


@dataclass
class ModelChoice:
    name: str
    production: str
    versions: list[str]


def _row(view: service.BatchView) -> RunRow:
    download = (
        f"/api/v1/datasets/{view.result_dataset}/versions/{view.result_version}/download" if view.result_dataset else ""
    )
    return RunRow(
        id=view.id,
        dataset=f"{view.dataset} v{view.dataset_version}",
        model=f"{view.model} v{view.model_version}",
        text_column=view.text_column,
        status=view.status,
        percent=round(view.progress * 100),
        message=view.message,
        error=view.error or "",
        rows=f"{view.rows_done:,} / {view.rows_total:,}",
        failed=view.rows_failed,
        rate=f"{view.rows_per_second:,.0f} rows/s" if view.rows_per_second else "",
        eta=format_eta(view.eta_seconds) if view.eta_seconds is not None else "",
        active=view.status in ("queued", "running"),
        result=f"{view.result_dataset} v{view.result_version}" if view.result_dataset else "",
        csv_url=f"{download}?format=csv" if download else "",
        parquet_url=f"{download}?format=parquet" if download else "",
        started_by=view.created_by or "—",
        created=f"{view.created_at:%Y-%m-%d %H:%M:%S}",
    )


def _rows(*, db_session, actor: Actor) -> list[RunRow]:
    return [_row(view) for view in service.list_batches(db_session=db_session, actor=actor)]


def _choices(*, db_session, actor: Actor) -> tuple[list[DatasetChoice], dict[str, list[str]], list[ModelChoice]]:
    choices = service.choices(db_session=db_session, actor=actor)
    datasets: dict[str, list[str]] = {}
    columns: dict[str, list[str]] = {}
    for name, number, text_columns in choices.versions:
        datasets.setdefault(name, []).append(str(number))
        columns[f"{name}/{number}"] = text_columns
    models = [
        ModelChoice(name, str(production) if production else "", [str(n) for n in numbers])
        for name, production, numbers in choices.classifiers
    ]
    return [DatasetChoice(name, versions) for name, versions in datasets.items()], columns, models


class BatchState(AuthState):
    runs: list[RunRow] = []
    datasets: list[DatasetChoice] = []
    # "<dataset>/<number>" -> the version's text columns.
    text_columns: dict[str, list[str]] = {}
    models: list[ModelChoice] = []
    form_dataset: str = ""
    form_version: str = NEWEST
    form_text_column: str = ""
    form_model: str = ""
    form_model_version: str = PRODUCTION
    watching: bool = False

    @rx.var
    def dataset_names(self) -> list[str]:
        return [choice.name for choice in self.datasets]

    @rx.var
    def version_choices(self) -> list[str]:
        versions = next((c.versions for c in self.datasets if c.name == self.form_dataset), [])
        return [NEWEST, *versions]

    @rx.var
    def column_choices(self) -> list[str]:
        versions = next((c.versions for c in self.datasets if c.name == self.form_dataset), [])
        number = versions[0] if self.form_version == NEWEST and versions else self.form_version
        return self.text_columns.get(f"{self.form_dataset}/{number}", [])

    @rx.var
    def model_names(self) -> list[str]:
        return [choice.name for choice in self.models]

    @rx.var
    def model_version_choices(self) -> list[str]:
        versions = next((c.versions for c in self.models if c.name == self.form_model), [])
        return [PRODUCTION, *versions]

    @rx.var
    def can_start(self) -> bool:
        return bool(self.form_dataset and self.form_text_column and self.form_model)

    async def _reload(self, user) -> None:
        self.runs = await run_in_session(_rows, actor=user)
        self.datasets, self.text_columns, self.models = await run_in_session(_choices, actor=user)

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        await self._reload(acting_user())

    @rx.event
    @guarded(Role.staff)
    async def edit(self, field: str, value: str):
        """One form field; choosing another dataset or model resets what depends on it."""
        if field not in FORM_FIELDS:
            return
        setattr(self, field, str(value)[:300])
        if field == "form_dataset":
            self.form_version = NEWEST
        if field in ("form_dataset", "form_version"):
            columns = self.column_choices
            self.form_text_column = "text" if "text" in columns else (columns[0] if len(columns) == 1 else "")
        if field == "form_model":
            self.form_model_version = PRODUCTION

    @rx.event
    @guarded(Role.staff)
    async def start(self):
        user = acting_user()
        run = await service.start_batch(
            actor=user,
            dataset=self.form_dataset,
            version=None if self.form_version == NEWEST else int(self.form_version),
            text_column=self.form_text_column,
            model=self.form_model,
            model_version=None if self.form_model_version == PRODUCTION else int(self.form_model_version),
        )
        self.runs = await run_in_session(_rows, actor=user)
        return rx.toast.success(
            f"Batch job {run.id} queued: {run.dataset_name} version {run.dataset_version_number} with"
            f" {run.model_name} version {run.model_version_number}."
        )

    @rx.event
    @guarded(Role.staff)
    async def cancel(self, batch_id: int):
        await run_in_session(service.cancel_batch, actor=acting_user(), batch_id=int(batch_id))
        self.runs = await run_in_session(_rows, actor=acting_user())

    @rx.event(background=True)
    async def watch(self):
        await refresh_while_open(self, Role.viewer, self._refresh, REFRESH_SECONDS)

    async def _refresh(self) -> None:
        rows = await run_in_session(_rows, actor=acting_user())
        async with self:
            self.runs = rows

    @rx.event
    def stop_watching(self):
        self.watching = False
