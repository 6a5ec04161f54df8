"""GET /health: whether the service and its database answer (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter

from api.exc import problem
from api.routers._deps import DatabaseDep
from api.schemas.health import Health
from api.services import health

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={
        503: {
            "description": "The database does not answer",
            "content": {
                "application/problem+json": {
                    "example": problem(
                        503,
                        "Database unavailable",
                        "The database did not answer.",
                        "database_unavailable",
                    )
                }
            },
        }
    },
)
async def get_health(db: DatabaseDep) -> Health:
    """200 when the database answers a query, 503 when it does not."""
    await health.check_database(db)
    return Health(status="ok", database="ok")
