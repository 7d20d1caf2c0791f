from app.backup.service import BACKUP_NOW, write_backup
from app.core.roles import Role
from app.core.settings import get_settings
from jobs.blocking import run_blocking
from jobs.registry import JobContext, job_kind


# Started from the System page only (backup_service.start_backup: admins, one at a time).
@job_kind(BACKUP_NOW, title="Back up Strata", minimum_role=Role.admin, manual=False)
async def back_up(context: JobContext) -> dict:
    """One archive of the database, stored files, models and vectors, stored under backups/."""
    return await run_blocking(context, write_backup, settings=get_settings())
