"""Managing users: what `api-admin users ...` and the /users admin routes share.

Each change is one statement, so it is all or nothing; those that end a user's tokens
(a new password, disabling, logging out, deleting) take effect on every worker within
a second through the token-state notifications (see revocation.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import queries.logins as logins
import queries.users as q
from api.backend.database import Database
from api.exc import UserNotFound, WrongPassword
from api.services import auth, throttle
from queries.users import UserRow

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class UsersPage:
    """Users in id order; `next_after` is the `after` of the next page, None on the last."""

    items: list[UserRow]
    next_after: int | None


def _found(user: UserRow | None, who: int | str) -> UserRow:
    if user is None:
        shown = f"id {who}" if isinstance(who, int) else f"e-mail {who!r}"
        raise UserNotFound(f"There is no user with the {shown}.")
    return user


def _in_range(user_id: int) -> int:
    if not 1 <= user_id <= auth.MAX_USER_ID:
        raise UserNotFound(f"There is no user with the id {user_id}.")
    return user_id


def _account_key(user: UserRow) -> str:
    # Rows written by hand in SQL may hold an e-mail in mixed case; logins count it normalised.
    return throttle.account_key(auth.normalise_email(user.email))


async def get_user(db: Database, user_id: int) -> UserRow:
    async with db.connection() as conn:
        return _found(await q.get_user(conn, user_id=_in_range(user_id)), user_id)


async def find_user(db: Database, email: str) -> UserRow:
    """The user with this e-mail, in any letter case; `UserNotFound` when none."""
    email = auth.normalise_email(email)
    user = None
    if auth.storable(email):
        async with db.connection() as conn:
            user = await q.get_user_by_email(conn, email=email)
    return _found(user, email)


async def list_users(db: Database, *, after: int = 0, limit: int = 50) -> UsersPage:
    limit = max(1, min(limit, MAX_PAGE))
    async with db.connection() as conn:
        rows = await q.list_users(conn, after_id=max(0, after), lim=limit + 1)
    more = len(rows) > limit
    items = rows[:limit]
    return UsersPage(items=items, next_after=items[-1].user_id if more else None)


async def set_password(db: Database, user_id: int, password: str, *, rounds: int) -> UserRow:
    """A new password; every earlier token of the user stops working."""
    auth.valid_new_password(password)
    hashed = await auth.hash_password(password, rounds=rounds)
    async with db.connection() as conn:
        user = await q.set_password(conn, user_id=_in_range(user_id), password_hash=hashed)
    return _found(user, user_id)


async def change_password(
    db: Database, user_id: int, *, current: str, new: str, rounds: int
) -> UserRow:
    """The user's own change: `WrongPassword` unless `current` is their password."""
    user = await get_user(db, user_id)
    auth.valid_new_password(new)
    if not await auth.check_password(current, user.password_hash):
        raise WrongPassword("The current password is wrong.")
    return await set_password(db, user_id, new, rounds=rounds)


async def set_active(db: Database, user_id: int, *, active: bool) -> UserRow:
    """Enable or disable; disabling also ends every token issued so far."""
    async with db.connection() as conn:
        user = await q.set_active(conn, user_id=_in_range(user_id), is_active=active)
    return _found(user, user_id)


async def set_scopes(db: Database, user_id: int, scopes: Sequence[str]) -> UserRow:
    """Replace the user's scopes; taking one away also ends every earlier token."""
    wanted = auth.valid_scopes(scopes)
    async with db.connection() as conn:
        user = await q.set_scopes(conn, user_id=_in_range(user_id), scopes=wanted)
    return _found(user, user_id)


async def revoke_tokens(db: Database, user_id: int) -> UserRow:
    """Log the user out everywhere: every token issued until now stops working."""
    async with db.connection() as conn:
        user = await q.revoke_tokens(conn, user_id=_in_range(user_id))
    return _found(user, user_id)


async def delete_user(db: Database, user_id: int) -> UserRow:
    """Delete the user (their tokens stop working); the deleted row."""
    async with db.connection() as conn, conn.transaction():
        user = _found(await q.delete_user(conn, user_id=_in_range(user_id)), user_id)
        await logins.clear(conn, key=_account_key(user))
    return user


async def failed_logins(db: Database, user: UserRow, *, window_seconds: int) -> int:
    """How many failed logins count against the user's account now (see throttle.py)."""
    key = _account_key(user)
    async with db.connection() as conn:
        attempts = await logins.get_attempts(conn, key=key, window_seconds=window_seconds)
    return attempts.failures if attempts is not None else 0


async def unlock(db: Database, user: UserRow, *, window_seconds: int) -> int:
    """Forgive the failed logins counting against the user's account; how many there were."""
    key = _account_key(user)
    async with db.connection() as conn, conn.transaction():
        attempts = await logins.get_attempts(conn, key=key, window_seconds=window_seconds)
        await logins.clear(conn, key=key)
    return attempts.failures if attempts is not None else 0
