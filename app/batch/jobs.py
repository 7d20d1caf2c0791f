from app.batch import running, service
from app.batch.scoring import ModelUnusable
from app.core.db import run_in_session
from app.core.errors import StrataError
from app.core.roles import Role
from app.core.settings import get_settings
from app.datasets import service as datasets_service
from jobs.blocking import run_blocking
from jobs.registry import JobContext, JobFailure, job_kind
from jobs.service import JobCancelled


def _run_id(params: dict) -> int:
    value = params.get("batch_run_id")
    if not isinstance(value, int):
        raise JobFailure("A batch job starts from the Batch page or POST /api/v1/batch-jobs.")
    return value


@job_kind(service.BATCH_SCORE, title="Score a dataset", minimum_role=Role.staff, manual=False)
async def score_dataset(context: JobContext) -> dict:
    """Every row of a dataset version through a classifier version, chunk by chunk, resumed
    from the last checkpoint when run again; the result becomes a new dataset version."""
    run_id = _run_id(context.params)
    settings = get_settings()
    try:
        plan = await run_in_session(service.job_plan, batch_run_id=run_id)
        result_id = plan.run.result_dataset_version_id
        if result_id is None:
            await run_blocking(context, running.extract, plan, settings=settings)
            await run_blocking(context, running.score, plan, settings=settings, attempt=context.attempt)
            result_file = await run_blocking(context, running.assemble, plan, settings=settings)
            await context.report(running.SCORING_SHARE, "Storing the result as a dataset version")
            stored = await datasets_service.add_version_from_file(
                actor=plan.actor,
                settings=settings,
                name=service.result_dataset_name(plan.run.dataset_name),
                path=result_file,
                filename=running.result_filename(plan),
            )
            result_id = stored.version.id
        summary = await run_in_session(
            service.finish_run, actor=plan.actor, batch_run_id=run_id, result_version_id=result_id
        )
    except (service.RunGone, ModelUnusable) as exc:
        running.remove_work(settings, context.job_id)
        raise JobFailure(str(exc)) from None
    except StrataError as exc:  # the sandbox's reading, the datasets domain's checks
        running.remove_work(settings, context.job_id)
        raise JobFailure(exc.message) from None
    except JobCancelled:
        running.remove_work(settings, context.job_id)
        raise
    running.remove_work(settings, context.job_id)
    return summary
