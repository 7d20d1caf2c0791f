from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.auth.deps import AdminUser, StaffUser
from app.system import service
from app.system.storage import storage_report

router = APIRouter(prefix="/api/v1", tags=["system"])


@router.get("/health", responses={503: {"description": "A critical component is down"}})
async def health() -> JSONResponse:
    """For load balancers: no authentication, 503 when a critical component is down."""
    report = await service.health_report()
    return JSONResponse(report.public(), status_code=report.status_code)


@router.get("/system")
async def system(user: StaffUser) -> list[dict]:
    """Every component's details, as the System page shows them (staff)."""
    report = await service.detailed_health(actor=user)
    return [asdict(component) for component in report.components]


@router.get("/system/storage")
async def storage(user: AdminUser) -> dict:
    """What each store (database, Redis, Chroma, files) holds and how big it is, with the
    retention settings and each retention job's last run (admins)."""
    return asdict(await storage_report(actor=user))
