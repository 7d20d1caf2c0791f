from app.core.roles import Role
from app.core.settings import get_settings
from jobs.blocking import run_blocking
from jobs.registry import JobContext, JobFailure, job_kind

VERIFY_MODELS = "verify_models"


@job_kind(VERIFY_MODELS, title="Verify models", minimum_role=Role.staff)
async def verify_models(context: JobContext) -> dict:
    """Re-checks every installed model's sha256 and parity and measures its speed."""
    from models.verify import verify_all

    reports = await run_blocking(context, verify_all, get_settings().resolved_models_dir)
    if not reports:
        raise JobFailure("No models are installed; run `strata models build`.")
    failed = [report["name"] for report in reports if not report["passed"]]
    if failed:
        raise JobFailure(f"Verification failed for: {', '.join(failed)}", {"models": reports})
    return {"models": reports}
