from dataclasses import dataclass
from datetime import datetime

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.errors import InvalidInput
from app.core.roles import Actor, Role
from app.core.time import utcnow
from app.datasets import service as datasets_service
from app.predict import registry
from app.schedules import cron, service
from app.schedules.tables import ScheduleAction

ACTIONS = [action.value for action in ScheduleAction]
# The form's fields that edit() may change, each a plain text the create handler reads.
FORM_FIELDS = (
    "form_name",
    "form_cron",
    "form_dataset",
    "form_text_column",
    "form_label_column",
    "form_model_name",
    "form_model",
    "form_model_version",
)
PREVIEW_RUNS = 3


def when(moment: datetime | None) -> str:
    return f"{moment:%a %Y-%m-%d %H:%M} UTC" if moment else ""


@dataclass
class ScheduleRow:
    id: int
    name: str
    action: str
    cron: str
    what: str  # the action's arguments, for people
    paused: bool
    next_run: str
    last_fired: str
    last_outcome: str
    last_job_id: str
    last_job_status: str
    jobs_link: str
    created_by: str


def _what(action: str, params: dict) -> str:
    if action == ScheduleAction.training:
        return (
            f"train {params['model_name']} on {params['dataset']} ({params['text_column']} → {params['label_column']},"
            f" holdout {params['holdout_fraction']}, seed {params['seed']})"
        )
    version = f" version {params['model_version']}" if params.get("model_version") else " (production)"
    return f"score {params['dataset']}.{params['text_column']} with {params['model']}{version}"


def _rows(*, db_session, actor: Actor) -> list[ScheduleRow]:
    rows = []
    for view in service.list_schedules(db_session=db_session, actor=actor):
        schedule = view.schedule
        rows.append(
            ScheduleRow(
                id=schedule.id,
                name=schedule.name,
                action=schedule.action,
                cron=schedule.cron,
                what=_what(schedule.action, schedule.params),
                paused=schedule.paused,
                next_run="paused" if schedule.paused else when(schedule.next_run_at),
                last_fired=when(schedule.last_fired_at) or "never",
                last_outcome=schedule.last_outcome or "",
                last_job_id=schedule.last_job_id or "",
                last_job_status=view.last_job_status or "",
                jobs_link=f"/jobs#job-{schedule.last_job_id}" if schedule.last_job_id else "",
                created_by=view.created_by_email or "(deleted user)",
            )
        )
    return rows


def _choices(*, db_session, actor: Actor) -> tuple[dict[str, list[str]], list[str]]:
    """Each dataset's newest version's columns, and the classifier models a batch job can use."""
    columns = {
        dataset.name: [column["name"] for column in versions[0].columns]
        for dataset, versions in datasets_service.list_datasets(db_session=db_session, actor=actor)
        if versions
    }
    models = [
        model.name for model in registry.list_models(db_session=db_session, actor=actor) if model.kind == "classifier"
    ]
    return columns, models


class SchedulesState(AuthState):
    schedules: list[ScheduleRow] = []
    dataset_columns: dict[str, list[str]] = {}
    model_names: list[str] = []
    form_action: str = ScheduleAction.batch.value
    form_name: str = ""
    form_cron: str = ""
    form_dataset: str = ""
    form_text_column: str = ""
    form_label_column: str = ""
    form_model_name: str = ""
    form_model: str = ""
    form_model_version: str = ""

    @rx.var
    def dataset_names(self) -> list[str]:
        return sorted(self.dataset_columns)

    @rx.var
    def columns(self) -> list[str]:
        return self.dataset_columns.get(self.form_dataset, [])

    @rx.var
    def cron_preview(self) -> str:
        """The next times the form's expression names (UTC), or what is wrong with it."""
        if not self.form_cron.strip():
            return "Five fields, in UTC: minute hour day-of-month month day-of-week, e.g. 0 3 * * mon."
        try:
            expression = cron.parse(self.form_cron)
        except InvalidInput as exc:
            return exc.message
        times, moment = [], utcnow()
        for _ in range(PREVIEW_RUNS):
            moment = expression.next_after(moment)
            times.append(when(moment))
        return "Next runs: " + "; ".join(times)

    async def _reload(self, user) -> None:
        self.schedules = await run_in_session(_rows, actor=user)
        self.dataset_columns, self.model_names = await run_in_session(_choices, actor=user)

    @rx.event
    @guarded(Role.staff)
    async def load(self):
        await self._reload(acting_user())

    @rx.event
    @guarded(Role.staff)
    async def edit(self, field: str, value: str):
        if field in FORM_FIELDS:
            setattr(self, field, str(value)[:300])
        if field == "form_dataset":
            self.form_text_column = self.form_label_column = ""

    @rx.event
    @guarded(Role.staff)
    async def choose_action(self, action: str):
        self.form_action = action if action in ACTIONS else ScheduleAction.batch.value

    def _params(self) -> dict:
        params = {"dataset": self.form_dataset, "text_column": self.form_text_column}
        if self.form_action == ScheduleAction.training:
            return {**params, "label_column": self.form_label_column, "model_name": self.form_model_name}
        version = self.form_model_version.strip()
        if version and not version.isdigit():
            raise InvalidInput(f"The model version is a whole number, or empty for production; got {version!r}.")
        return {**params, "model": self.form_model, "model_version": int(version) if version else None}

    @rx.event
    @guarded(Role.staff)
    async def create(self):
        user = acting_user()
        view = await run_in_session(
            service.create_schedule,
            actor=user,
            name=self.form_name,
            action=self.form_action,
            cron_expression=self.form_cron,
            params=self._params(),
        )
        for field in FORM_FIELDS:
            setattr(self, field, "")
        await self._reload(user)
        return rx.toast.success(f"Scheduled {view.schedule.name}: next run {when(view.schedule.next_run_at)}.")

    async def _change(self, change, schedule_id: int, done: str):
        user = acting_user()
        try:
            view = await run_in_session(change, actor=user, schedule_id=int(schedule_id))
        finally:
            # Someone else may have deleted or changed it meanwhile: show what is there now.
            await self._reload(user)
        return rx.toast.info(done.format(name=view.schedule.name, next=when(view.schedule.next_run_at)))

    @rx.event
    @guarded(Role.staff)
    async def pause(self, schedule_id: int):
        return await self._change(service.pause_schedule, schedule_id, "Paused {name}.")

    @rx.event
    @guarded(Role.staff)
    async def resume(self, schedule_id: int):
        return await self._change(service.resume_schedule, schedule_id, "Resumed {name}: next run {next}.")

    @rx.event
    @guarded(Role.staff)
    async def delete(self, schedule_id: int):
        user = acting_user()
        try:
            await run_in_session(service.delete_schedule, actor=user, schedule_id=int(schedule_id))
        finally:
            await self._reload(user)
        return rx.toast.info("Deleted the schedule.")
