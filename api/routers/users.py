"""The /users endpoints: your own account, and user administration under `users:admin`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, Security, status

from api.exc import InvalidUserData, LoginsBusy, SelfLockout
from api.routers._deps import (
    Authenticated,
    DatabaseDep,
    RuntimeDep,
    client_address,
    current_claims,
    strict_query,
)
from api.schemas.problems import problem_responses
from api.schemas.users import PasswordChange, UserChange, UserCreate, UserOut, UsersPage
from api.services import auth, users
from api.services.auth import Claims

router = APIRouter(prefix="/users", tags=["users"], responses=problem_responses(401, 503))

ADMIN = "users:admin"
Admin = Annotated[Claims, Security(current_claims, scopes=[ADMIN])]
_ADMIN_ERRORS = problem_responses(403, 404, 422)


@router.get("/me")
async def get_me(claims: Authenticated, db: DatabaseDep) -> UserOut:
    """The user the bearer token belongs to."""
    user = await auth.get_active_user(db, user_id=claims.user_id)
    return UserOut.from_row(user)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 422, 429),
)
async def change_my_password(
    body: PasswordChange, claims: Authenticated, runtime: RuntimeDep, request: Request
) -> Response:
    """Change your password. Every token issued so far stops working, this one too:
    log in again with the new password."""
    auth.valid_new_password(body.new_password)  # refused before it counts as an attempt
    user = await auth.get_active_user(runtime.db, user_id=claims.user_id)
    # A stolen token must not become a way to guess the password: throttled as a login.
    attempt = await runtime.throttle.attempt(
        email=auth.normalise_email(user.email), address=client_address(request)
    )
    try:
        with runtime.tokens.changing(user.user_id):
            await users.change_password(
                runtime.db,
                user.user_id,
                current=body.current_password,
                new=body.new_password,
                rounds=runtime.settings.bcrypt_rounds,
            )
    except LoginsBusy:
        await runtime.throttle.refused(attempt)
        raise
    await runtime.throttle.succeeded(attempt)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("", responses=_ADMIN_ERRORS, dependencies=[Depends(strict_query)])
async def list_users(
    _: Admin,
    db: DatabaseDep,
    after: Annotated[int, Query(ge=0, le=auth.MAX_USER_ID, description="Last id seen")] = 0,
    limit: Annotated[int, Query(ge=1, le=users.MAX_PAGE)] = 50,
) -> UsersPage:
    """Users in id order, a page at a time."""
    page = await users.list_users(db, after=after, limit=limit)
    return UsersPage(items=[UserOut.from_row(u) for u in page.items], next_after=page.next_after)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={**_ADMIN_ERRORS, **problem_responses(409)},
)
async def create_user(
    body: UserCreate, _: Admin, runtime: RuntimeDep, response: Response
) -> UserOut:
    """Create a user; 409 when the e-mail is taken in any letter case."""
    user = await auth.register_user(
        runtime.db,
        email=body.email,
        name=body.name,
        password=body.password,
        scopes=body.scopes,
        rounds=runtime.settings.bcrypt_rounds,
    )
    response.headers["Location"] = f"/users/{user.user_id}"
    return UserOut.from_row(user)


@router.get("/{user_id}", responses=_ADMIN_ERRORS)
async def get_user(user_id: int, _: Admin, db: DatabaseDep) -> UserOut:
    return UserOut.from_row(await users.get_user(db, user_id))


@router.patch("/{user_id}", responses={**_ADMIN_ERRORS, **problem_responses(409)})
async def change_user(
    user_id: int, body: UserChange, claims: Admin, runtime: RuntimeDep
) -> UserOut:
    """Enable or disable a user, or replace their scopes."""
    if body.is_active is None and body.scopes is None:
        raise InvalidUserData("Nothing to change: give is_active, scopes or both.")
    if user_id == claims.user_id and (
        body.is_active is False or (body.scopes is not None and ADMIN not in body.scopes)
    ):
        raise SelfLockout("You cannot disable yourself or take users:admin from yourself.")
    if body.scopes is not None:
        auth.valid_scopes(body.scopes)  # refused before anything changes
    db = runtime.db
    user = await users.get_user(db, user_id)
    with runtime.tokens.changing(user_id):
        if body.is_active is not None:
            user = await users.set_active(db, user_id, active=body.is_active)
        if body.scopes is not None:
            user = await users.set_scopes(db, user_id, body.scopes)
    return UserOut.from_row(user)


@router.post("/{user_id}/logout", status_code=status.HTTP_204_NO_CONTENT, responses=_ADMIN_ERRORS)
async def log_user_out(user_id: int, _: Admin, runtime: RuntimeDep) -> Response:
    """End every token the user holds; they can log in again."""
    with runtime.tokens.changing(user_id):
        await users.revoke_tokens(runtime.db, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_ADMIN_ERRORS, **problem_responses(409)},
)
async def delete_user(user_id: int, claims: Admin, runtime: RuntimeDep) -> Response:
    """Delete a user; their tokens stop working at once."""
    if user_id == claims.user_id:
        raise SelfLockout("You cannot delete yourself.")
    with runtime.tokens.changing(user_id):
        await users.delete_user(runtime.db, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
