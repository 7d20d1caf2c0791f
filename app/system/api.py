from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.auth.deps import StaffUser
from app.system.service import system_health

router = APIRouter(prefix="/api/v1", tags=["system"])

# A web replica still serves pages without a worker, so a load balancer keeps it.
NON_CRITICAL = {"workers"}


@router.get("/health", responses={503: {"description": "A critical component is down"}})
async def health() -> JSONResponse:
    """For load balancers: no authentication, 503 when a critical component is down."""
    components = await system_health()
    critical_down = [c.name for c in components if not c.ok and c.name not in NON_CRITICAL]
    status = "down" if critical_down else ("degraded" if not all(c.ok for c in components) else "ok")
    body = {
        "status": status,
        "components": {c.name: {"ok": c.ok, **({"error": c.error} if c.error else {})} for c in components},
    }
    return JSONResponse(body, status_code=503 if critical_down else 200)


@router.get("/system")
async def system(_: StaffUser) -> list[dict]:
    """Every component's details, as the System page shows them."""
    return [asdict(component) for component in await system_health()]
