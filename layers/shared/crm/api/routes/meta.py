"""GET /health; /docs and /openapi.json come from the app factory."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from crm.api.app import error_body
from crm.api.deps import SettingsDep
from crm.services.health import check_dependencies

router = APIRouter(tags=["meta"])


@router.get("/health")
def health(settings: SettingsDep) -> JSONResponse:
    checks = check_dependencies(settings)
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if not failing:
        return JSONResponse({"status": "ok", "checks": checks})
    body = error_body("dependency_unavailable", f"Unavailable: {', '.join(failing)}",
                      [{"loc": ["checks", name], "msg": checks[name]} for name in failing])
    return JSONResponse({**body, "status": "unavailable", "checks": checks}, status_code=503)
