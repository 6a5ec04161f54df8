"""The /users endpoints."""

from __future__ import annotations

from fastapi import APIRouter

from api.routers._deps import Authenticated, DatabaseDep
from api.schemas.problems import problem_responses
from api.schemas.users import UserOut
from api.services import auth

router = APIRouter(prefix="/users", tags=["users"], responses=problem_responses(401, 503))


@router.get("/me")
async def get_me(claims: Authenticated, db: DatabaseDep) -> UserOut:
    """The user the bearer token belongs to."""
    user = await auth.get_active_user(db, user_id=claims.user_id)
    return UserOut.from_row(user)
