"""The Experiments page: training runs listed, filtered, sorted and paged on the server; one
run in detail (per-class scores and confusion matrix as charts); two runs compared; and, for
staff, the form that starts a run. Running runs refresh while the page is open."""

import math
from dataclasses import dataclass
from typing import Any

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.roles import Role, has_role
from app.datasets import service as datasets_service
from app.training import service
from app.ui.live import refresh_while_open

REFRESH_SECONDS = 2.0
PAGE_SIZE = 20
# rx.select cannot offer an empty value: this one stands for "any".
ALL = "(all)"
SORT_LABELS = {"created_at": "Started", "macro_f1": "Macro-F1", "accuracy": "Accuracy", "duration": "Duration"}


@dataclass
class Option:
    value: str
    label: str


@dataclass
class RunRow:
    id: int
    dataset: str
    columns: str
    model_name: str
    params: str
    chosen: str
    accuracy: str
    macro_f1: str
    duration: str
    started_by: str
    created: str
    status: str
    percent: int
    message: str
    active: bool


@dataclass
class CandidateRow:
    name: str
    cv_macro_f1: str
    holdout_macro_f1: str
    holdout_accuracy: str
    chosen: bool
    note: str


@dataclass
class MatrixCell:
    count: int
    background: str
    color: str


@dataclass
class MatrixRow:
    label: str
    cells: list[MatrixCell]


@dataclass
class DifferenceRow:
    section: str
    field: str
    a: str
    b: str


@dataclass
class VersionChoice:
    """A dataset version the new-run form offers, with its columns."""

    dataset: str
    number: int
    text_columns: list[str]
    columns: list[str]


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _dataset(view: service.RunView) -> str:
    return f"{view.dataset} v{view.dataset_version}" if view.dataset else "(deleted version)"


def _row(view: service.RunView) -> RunRow:
    run = view.run
    return RunRow(
        id=run.id,
        dataset=_dataset(view),
        columns=f"{run.text_column} → {run.label_column}",
        model_name=run.model_name,
        params=f"holdout {run.holdout_fraction:g} · seed {run.seed}",
        chosen=run.chosen or "—",
        accuracy=_score(run.accuracy),
        macro_f1=_score(run.macro_f1),
        duration=_duration(run.duration_seconds),
        started_by=view.started_by or "—",
        created=f"{run.created_at:%Y-%m-%d %H:%M}",
        status=view.status,
        percent=round(view.progress * 100),
        message=view.message,
        active=view.active,
    )


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1 or not value.is_integer() else f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _heat(count: int, row_total: int) -> MatrixCell:
    """A cell shaded by its share of the true label's rows: the diagonal reads as recall."""
    share = count / row_total if row_total else 0.0
    return MatrixCell(
        count=count,
        background=f"rgba(62, 99, 221, {0.08 + 0.85 * share:.3f})" if count else "transparent",
        color="white" if share > 0.5 else "inherit",
    )


def _candidate(candidate: dict, chosen: str | None) -> CandidateRow:
    holdout = candidate.get("holdout") or {}
    return CandidateRow(
        name=candidate["name"],
        cv_macro_f1=_score(candidate.get("cv_macro_f1")),
        holdout_macro_f1=_score(holdout.get("macro_f1")),
        holdout_accuracy=_score(holdout.get("accuracy")),
        chosen=candidate["name"] == chosen,
        note=candidate.get("skipped", ""),
    )


def _version_choices(*, db_session, actor) -> list[VersionChoice]:
    return [
        VersionChoice(
            dataset=dataset.name,
            number=version.number,
            text_columns=[column["name"] for column in version.columns if column["type"] == "text"],
            columns=[column["name"] for column in version.columns],
        )
        for dataset, versions in datasets_service.list_datasets(db_session=db_session, actor=actor)
        for version in versions
    ]


class ExperimentsState(AuthState):
    # The list: one page, as the server filtered and sorted it.
    runs: list[RunRow] = []
    total: int = 0
    page: int = 1
    page_count: int = 1
    filter_dataset: str = ALL
    filter_model: str = ALL
    filter_status: str = ALL
    filter_chosen: str = ALL
    filter_started_by: str = ALL  # a user id
    sort: str = "created_at"
    descending: bool = True
    dataset_options: list[str] = [ALL]
    model_options: list[str] = [ALL]
    starter_options: list[Option] = [Option(ALL, "Anyone")]
    status_options: list[str] = [ALL, *service.STATUSES]
    chosen_options: list[str] = [ALL, *service.CANDIDATES]
    sort_options: list[Option] = [Option(key, label) for key, label in SORT_LABELS.items()]

    # Comparison of two runs: only what differs.
    compare_ids: list[int] = []
    compare_a: int = 0
    compare_b: int = 0
    differences: list[DifferenceRow] = []

    # The open run.
    selected_id: int = 0
    detail_status: str = ""
    detail_percent: int = 0
    detail_message: str = ""
    detail_error: str = ""
    detail_active: bool = False
    detail_title: str = ""
    detail_params: str = ""
    detail_chosen: str = ""
    detail_accuracy: str = ""
    detail_macro_f1: str = ""
    detail_baseline: str = ""
    detail_duration: str = ""
    detail_rows: str = ""
    detail_parity: str = ""
    detail_model_version: str = ""
    candidates: list[CandidateRow] = []
    class_scores: list[dict[str, Any]] = []
    matrix_labels: list[str] = []
    matrix_rows: list[MatrixRow] = []

    # The new-run form (staff).
    form_datasets: list[str] = []
    form_dataset: str = ""
    form_versions: list[str] = []
    form_version: str = ""
    form_text_columns: list[str] = []
    form_label_columns: list[str] = []
    form_text_column: str = ""
    form_label_column: str = ""
    form_model_name: str = ""
    form_holdout: str = "0.2"
    form_seed: str = "0"
    _choices: list[VersionChoice] = []

    watching: bool = False

    # ------------------------------------------------------------------ list

    def _query(self) -> dict:
        """The list's filters, sort and page as list_runs takes them."""
        return {
            "dataset": None if self.filter_dataset == ALL else self.filter_dataset,
            "model_name": None if self.filter_model == ALL else self.filter_model,
            "status": None if self.filter_status == ALL else self.filter_status,
            "chosen": None if self.filter_chosen == ALL else self.filter_chosen,
            "created_by": None if self.filter_started_by == ALL else int(self.filter_started_by),
            "sort": self.sort,
            "descending": self.descending,
            "page": self.page,
            "page_size": PAGE_SIZE,
        }

    async def _reload_list(self) -> None:
        listing = await run_in_session(service.list_runs, actor=acting_user(), **self._query())
        if not listing.runs and listing.total and self.page > 1:  # fewer runs than before: the last page
            self.page = math.ceil(listing.total / PAGE_SIZE)
            listing = await run_in_session(service.list_runs, actor=acting_user(), **self._query())
        self._show_list(listing)

    def _show_list(self, listing: service.RunPage) -> None:
        self.total = listing.total
        self.page_count = max(1, math.ceil(listing.total / PAGE_SIZE))
        self.page = min(listing.page, self.page_count)
        self.runs = [_row(view) for view in listing.runs]

    async def _reload_choices(self) -> None:
        choices = await run_in_session(service.filter_choices, actor=acting_user())
        self.dataset_options = [ALL, *choices.datasets]
        self.model_options = [ALL, *choices.model_names]
        self.starter_options = [Option(ALL, "Anyone"), *(Option(str(uid), email) for uid, email in choices.starters)]

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        await self._reload_choices()
        await self._reload_list()
        if has_role(acting_user(), Role.staff):
            self._choices = await run_in_session(_version_choices, actor=acting_user())
            self.form_datasets = sorted({choice.dataset for choice in self._choices})
            if self.form_dataset not in self.form_datasets:
                self._pick_dataset(self.form_datasets[0] if self.form_datasets else "")
        if self.selected_id:
            await self._show_run(self.selected_id)

    @rx.event
    @guarded(Role.viewer)
    async def filter_runs(self, field: str, value: str):
        """Sets one filter (dataset, model, status, chosen or started_by) and goes to the first page."""
        options = {
            "dataset": self.dataset_options,
            "model": self.model_options,
            "status": self.status_options,
            "chosen": self.chosen_options,
            "started_by": [option.value for option in self.starter_options],
        }
        if field not in options or value not in options[field]:
            return
        setattr(self, f"filter_{field}", value)
        self.page = 1
        await self._reload_list()

    @rx.event
    @guarded(Role.viewer)
    async def sort_runs(self, key: str):
        if key in SORT_LABELS:
            self.sort, self.page = key, 1
            await self._reload_list()

    @rx.event
    @guarded(Role.viewer)
    async def flip_order(self):
        self.descending, self.page = not self.descending, 1
        await self._reload_list()

    @rx.event
    @guarded(Role.viewer)
    async def previous_page(self):
        self.page = max(1, self.page - 1)
        await self._reload_list()

    @rx.event
    @guarded(Role.viewer)
    async def next_page(self):
        self.page = min(self.page_count, self.page + 1)
        await self._reload_list()

    # --------------------------------------------------------------- compare

    @rx.event
    @guarded(Role.viewer)
    async def mark_for_compare(self, run_id: int, checked: bool):
        """Two runs at most: marking a third replaces the older mark."""
        run_id = int(run_id)
        marked = [other for other in self.compare_ids if other != run_id]
        if checked:
            marked = [*marked[-1:], run_id]
        self.compare_ids = marked

    @rx.event
    @guarded(Role.viewer)
    async def compare(self):
        if len(self.compare_ids) != 2:
            return rx.toast.info("Tick two runs to compare them.")
        a, b = self.compare_ids
        comparison = await run_in_session(service.compare_runs, actor=acting_user(), a=a, b=b)
        self.compare_a, self.compare_b = a, b
        self.differences = [
            DifferenceRow(section=item.section.replace("_", " "), field=item.field, a=_shown(item.a), b=_shown(item.b))
            for item in comparison.differences
        ]
        if not self.differences:
            return rx.toast.info(f"Runs {a} and {b} do not differ.")

    @rx.event
    @guarded(Role.viewer)
    async def close_comparison(self):
        self.compare_a = self.compare_b = 0
        self.differences = []

    # ---------------------------------------------------------------- detail

    @rx.event
    @guarded(Role.viewer)
    async def open_run(self, run_id: int):
        await self._show_run(int(run_id))

    @rx.event
    @guarded(Role.viewer)
    async def close_run(self):
        self.selected_id = 0

    async def _show_run(self, run_id: int) -> None:
        self._show_detail(await run_in_session(service.get_run, actor=acting_user(), run_id=run_id))

    def _show_detail(self, view: service.RunView) -> None:
        run, report = view.run, view.run.report or {}
        metrics = report.get("metrics") or {}
        self.selected_id = run.id
        self.detail_status = view.status
        self.detail_percent = round(view.progress * 100)
        self.detail_message = view.message
        self.detail_error = view.error or ""
        self.detail_active = view.active
        self.detail_title = f"Run {run.id} · {_dataset(view)} · {run.text_column} → {run.label_column}"
        self.detail_params = f"model {run.model_name} · holdout {run.holdout_fraction:g} · seed {run.seed}"
        self.detail_chosen = run.chosen or ""
        self.detail_accuracy = _score(run.accuracy)
        self.detail_macro_f1 = _score(run.macro_f1)
        baseline = ((report.get("baseline") or {}).get("holdout") or {}).get("macro_f1")
        self.detail_baseline = _score(baseline)
        self.detail_duration = _duration(run.duration_seconds)
        rows, split = report.get("rows"), report.get("split")
        self.detail_rows = (
            f"{rows['used']} of {rows['read']} rows used ({rows['without_text']} without a text,"
            f" {rows['without_label']} without a label)"
            + (f"; {split['train_rows']} for training, {split['holdout_rows']} held out" if split else "")
            if rows
            else ""
        )
        parity = report.get("parity")
        self.detail_parity = (
            f"ONNX export: {parity['label_disagreements']} of {parity['rows']} holdout labels differ, largest"
            f" probability difference {parity['max_abs_probability_difference']:.1e}"
            f" (tolerance {parity['tolerance']:g})"
            if parity
            else ""
        )
        self.detail_model_version = (
            f"{run.model_name} version {view.model_version} ({view.model_stage})" if view.model_version else ""
        )
        self.candidates = [_candidate(candidate, run.chosen) for candidate in report.get("candidates", [])]
        self.class_scores = [
            {"label": label, "precision": round(s["precision"] * 100, 1), "recall": round(s["recall"] * 100, 1)}
            for label, s in (metrics.get("per_class") or {}).items()
        ]
        labels = report.get("labels") or []
        self.matrix_labels = labels
        self.matrix_rows = [
            MatrixRow(label=label, cells=[_heat(count, sum(counts)) for count in counts])
            for label, counts in zip(labels, metrics.get("confusion_matrix") or [], strict=False)
        ]

    @rx.event
    @guarded(Role.staff)
    async def cancel_run(self):
        view = await run_in_session(service.cancel_run, actor=acting_user(), run_id=self.selected_id)
        self._show_detail(view)
        await self._reload_list()
        return rx.toast.info(f"Run {view.run.id} is being cancelled.")

    # ------------------------------------------------------------- new run

    def _pick_dataset(self, name: str) -> None:
        self.form_dataset = name
        self.form_versions = [str(c.number) for c in self._choices if c.dataset == name]
        self._pick_version(self.form_versions[0] if self.form_versions else "")

    def _pick_version(self, number: str) -> None:
        self.form_version = number
        chosen = next((c for c in self._choices if c.dataset == self.form_dataset and str(c.number) == number), None)
        self.form_text_columns = chosen.text_columns if chosen else []
        self.form_label_columns = chosen.columns if chosen else []
        if self.form_text_column not in self.form_text_columns:
            self.form_text_column = self.form_text_columns[0] if self.form_text_columns else ""
        if self.form_label_column not in self.form_label_columns:
            others = [name for name in self.form_label_columns if name != self.form_text_column]
            self.form_label_column = others[0] if others else ""

    @rx.event
    @guarded(Role.staff)
    async def pick_dataset(self, name: str):
        if name in self.form_datasets:
            self._pick_dataset(name)

    @rx.event
    @guarded(Role.staff)
    async def pick_version(self, number: str):
        if number in self.form_versions:
            self._pick_version(number)

    @rx.event
    @guarded(Role.staff)
    async def pick_text_column(self, name: str):
        if name in self.form_text_columns:
            self.form_text_column = name

    @rx.event
    @guarded(Role.staff)
    async def pick_label_column(self, name: str):
        if name in self.form_label_columns:
            self.form_label_column = name

    @rx.event
    @guarded(Role.staff)
    async def name_model(self, name: str):
        self.form_model_name = name[:100]

    @rx.event
    @guarded(Role.staff)
    async def choose_holdout(self, value: str):
        self.form_holdout = value[:20]

    @rx.event
    @guarded(Role.staff)
    async def choose_seed(self, value: str):
        self.form_seed = value[:20]

    @rx.event
    @guarded(Role.staff)
    async def start_run(self):
        try:
            holdout = float(self.form_holdout)
        except ValueError:
            return rx.toast.error(f"The holdout fraction must be a number like 0.2; got {self.form_holdout!r}.")
        if not self.form_seed.strip().isdigit():
            return rx.toast.error(f"The seed must be a whole number like 0; got {self.form_seed!r}.")
        if not self.form_dataset or not self.form_version:
            return rx.toast.error("Upload a dataset on the Datasets page first, then choose it here.")
        run = await service.start_run(
            actor=acting_user(),
            dataset=self.form_dataset,
            version=int(self.form_version),
            text_column=self.form_text_column,
            label_column=self.form_label_column,
            model_name=self.form_model_name,
            holdout_fraction=holdout,
            seed=int(self.form_seed),
        )
        self.page = 1
        await self._reload_choices()
        await self._reload_list()
        await self._show_run(run.id)
        return rx.toast.success(f"Training run {run.id} queued.")

    # ------------------------------------------------------------------ live

    @rx.event(background=True)
    async def watch(self):
        await refresh_while_open(self, Role.viewer, self._refresh, REFRESH_SECONDS)

    @rx.event
    def stop_watching(self):
        self.watching = False

    async def _refresh(self) -> None:
        """The page of runs as the server has it now, and the open run while it is not finished
        (and once more when it finishes, for its metrics and charts)."""
        async with self:
            query = self._query()
            selected, was_active = self.selected_id, self.detail_active
        listing = await run_in_session(service.list_runs, actor=acting_user(), **query)
        view = await run_in_session(service.get_run, actor=acting_user(), run_id=selected) if was_active else None
        async with self:
            self._show_list(listing)
            if view is not None and self.selected_id == selected:
                self._show_detail(view)
