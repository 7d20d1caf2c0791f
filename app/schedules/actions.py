"""What a schedule can start, with the arguments each takes: a batch job (app.batch) or a
training run (app.training), always on the newest version of the dataset. The checks of the
arguments against the dataset and the models are those domains' own."""

import math
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from app.batch import service as batch_service
from app.core.errors import InvalidInput, NotFound
from app.core.roles import Actor
from app.schedules.tables import ScheduleAction
from app.training import service as training_service

MAX_TEXT_LENGTH = 300
# What the database's integer columns hold (model version numbers, seeds).
MAX_WHOLE_NUMBER = 2**31 - 1


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    required: bool = True
    default: Any = None


PARAMS: dict[ScheduleAction, tuple[Param, ...]] = {
    ScheduleAction.batch: (
        Param("dataset", str),
        Param("text_column", str),
        Param("model", str),
        # None: the model's production version when the job starts.
        Param("model_version", int, required=False),
    ),
    ScheduleAction.training: (
        Param("dataset", str),
        Param("text_column", str),
        Param("label_column", str),
        Param("model_name", str),
        Param("holdout_fraction", float, required=False, default=0.2),
        Param("seed", int, required=False, default=0),
    ),
}


def _value(param: Param, value: Any) -> Any:
    if value is None and not param.required:
        return param.default
    if param.kind is str:
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_LENGTH or not value.isprintable():
            raise InvalidInput(
                f"The parameter {param.name!r} is a text of 1 to {MAX_TEXT_LENGTH} printable characters."
            )
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"The parameter {param.name!r} is a number; got {str(value)[:50]!r}.")
    if param.kind is int:
        if value != int(value) or not 0 <= value <= MAX_WHOLE_NUMBER:
            raise InvalidInput(
                f"The parameter {param.name!r} is a whole number from 0 to {MAX_WHOLE_NUMBER}; got {value}."
            )
        return int(value)
    return float(value)


def shaped_params(action: ScheduleAction, params: dict[str, Any]) -> dict[str, Any]:
    """The action's arguments with their defaults, refusing unknown, missing or mistyped ones."""
    if not isinstance(params, dict):
        raise InvalidInput("A schedule's params are an object of the action's arguments.")
    allowed = PARAMS[action]
    names = [param.name for param in allowed]
    if "version" in params:
        raise InvalidInput(
            "A schedule always runs on the newest version of its dataset; leave 'version' out of its params."
        )
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise InvalidInput(
            f"A {action.value} schedule does not take {', '.join(map(repr, unknown))}; its params are"
            f" {', '.join(names)}."
        )
    missing = [param.name for param in allowed if param.required and params.get(param.name) is None]
    if missing:
        raise InvalidInput(f"A {action.value} schedule needs {', '.join(map(repr, missing))} in its params.")
    return {param.name: _value(param, params.get(param.name)) for param in allowed}


def check_action(*, db_session: Session, actor: Actor, action: ScheduleAction, params: dict[str, Any]) -> dict:
    """The arguments, shaped and checked as the action's own start would check them on the
    dataset's newest version today (a dataset or model that does not exist is a 422 here: it
    is a field of the schedule, not the address asked for)."""
    shaped = shaped_params(action, params)
    try:
        if action is ScheduleAction.training:
            training_service.check_run_request(db_session=db_session, actor=actor, version=None, **shaped)
        else:
            batch_service.check_batch_request(db_session=db_session, actor=actor, version=None, **shaped)
    except NotFound as exc:
        raise InvalidInput(exc.message) from None
    return shaped


async def start_action(*, actor: Actor, action: ScheduleAction, params: dict[str, Any]) -> str:
    """Starts the run on the dataset's newest version; the id of the Job that runs it."""
    shaped = shaped_params(action, params)
    if action is ScheduleAction.training:
        run = await training_service.start_run(actor=actor, version=None, **shaped)
    else:
        run = await batch_service.start_batch(actor=actor, version=None, **shaped)
    return run.job_id
