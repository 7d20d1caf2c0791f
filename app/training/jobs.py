import time
from collections.abc import Callable

from app.core.db import run_in_session
from app.core.errors import StrataError
from app.core.roles import Role
from app.training import running
from app.training.service import TRAINING_RUN
from jobs.blocking import run_blocking
from jobs.registry import JobContext, JobFailure, job_kind

# Where each step's progress lands in the job's 0..1; registering takes the rest.
READ = (0.0, 0.05)
TRAIN = (0.05, 0.97)


def _within(share: tuple[float, float], step: Callable):
    """`step` reporting its own 0..1 progress as its share of the job's."""
    low, high = share

    def call(*args, on_progress, **kwargs):
        return step(*args, on_progress=lambda f, m="": on_progress(low + (high - low) * f, m), **kwargs)

    return call


def _run_id(params: dict) -> int:
    value = params.get("training_run_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise JobFailure("Training runs start from the Experiments page or POST /api/v1/training-runs.")


# No may_access: every viewer may read every run, so every staff member may see its job.
@job_kind(TRAINING_RUN, title="Train a classifier", minimum_role=Role.staff, manual=False)
async def train_classifier(context: JobContext) -> dict:
    """Reads the run's rows, trains and cross-validates the candidates, exports the winner to
    ONNX and checks it, then registers it as a staging version. A cancel stops it at the next
    progress step; a user error (too few rows, parity) fails the run with its report."""
    run_id = _run_id(context.params)
    started = time.perf_counter()
    rows = None
    try:
        plan = await run_in_session(running.plan_run, run_id=run_id)
        if plan.finished is not None:
            return plan.finished
        rows = await run_blocking(context, _within(READ, running.read_rows), plan)
        result = await run_blocking(context, _within(TRAIN, running.train_rows), plan, rows)
        await context.report(TRAIN[1], f"Registering {result.chosen} as a new staging version")
        return await run_in_session(
            running.record_success, plan=plan, result=result, rows=rows, seconds=time.perf_counter() - started
        )
    except running.RunGone as exc:
        raise JobFailure(str(exc)) from None
    except Exception as exc:
        failure = _user_error(exc)
        if failure is None:
            raise
        message, report = failure
        if rows is not None:
            report = {**(report or {}), "rows": rows.report}
        await run_in_session(
            running.record_failure,
            run_id=run_id,
            error=message,
            report=report,
            seconds=time.perf_counter() - started,
        )
        raise JobFailure(message, result={"training_run_id": run_id, **(report or {})}) from None


def _user_error(exc: Exception) -> tuple[str, dict | None] | None:
    """The message (and report) of a failure the run's starter can act on; None for a bug."""
    from models.training import ParityError, TrainingError

    if isinstance(exc, ParityError):
        return str(exc), {"parity": exc.report}
    if isinstance(exc, TrainingError):
        return f"The rows cannot be trained on: {exc}.", None
    if isinstance(exc, StrataError):
        return exc.message, None
    return None
