"""POST /token: the OAuth2 password grant (RFC 6749 section 4.3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.routers._deps import RuntimeDep
from api.schemas.auth import Token
from api.schemas.problems import problem_responses
from api.services import auth

router = APIRouter(tags=["auth"])


@router.post("/token", responses=problem_responses(400, 422, 503))
async def create_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    runtime: RuntimeDep,
    response: Response,
) -> Token:
    """Exchange an e-mail (as `username`) and password for a bearer token."""
    user = await auth.authenticate(
        runtime.db, email=form.username, password=form.password, dummy=runtime.dummy
    )
    token, expires_in = auth.create_access_token(
        user,
        secret=runtime.secret,
        algorithm=runtime.settings.jwt_algorithm,
        expires_minutes=runtime.settings.access_token_expire_minutes,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return Token(access_token=token, expires_in=expires_in, scope=" ".join(user.scopes))
