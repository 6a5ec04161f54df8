"""GET /health: whether the service and its database answer (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter

from api.routers._deps import DatabaseDep
from api.schemas.health import Health
from api.schemas.problems import problem_responses
from api.services import health

router = APIRouter(tags=["health"])


@router.get("/health", responses=problem_responses(503))
# HEAD too: some load balancers and uptime monitors probe with it.
@router.head("/health", include_in_schema=False)
async def get_health(db: DatabaseDep) -> Health:
    """200 when the database answers a query, 503 when it does not."""
    await health.check_database(db)
    return Health(status="ok", database="ok")
