from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.auth.deps import StaffUser
from app.system import service

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
