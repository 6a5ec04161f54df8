"""Declarations of the users queries (queries/sql/users/*.sql) and their row shape."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from ._declare import SqlDir


class UserRow(BaseModel):
    """One row of myapi.users, hash included: it never leaves the service layer."""

    model_config = ConfigDict(frozen=True)

    user_id: int
    email: str
    name: str
    password_hash: str
    is_active: bool
    scopes: list[str]
    created_at: datetime
    # Tokens carry it (claim `ver`); every revocation adds one (schema.sql).
    token_version: int


class TokenStateRow(BaseModel):
    """Whether a user's tokens count: active, and issued under the current version."""

    model_config = ConfigDict(frozen=True)

    user_id: int
    is_active: bool
    token_version: int


SQL = SqlDir("users")

get_user = SQL.one("get_user", row=UserRow, params={"user_id": int})
get_user_by_email = SQL.one("get_user_by_email", row=UserRow, params={"email": str})
insert_user = SQL.one(
    "insert_user",
    row=UserRow,
    params={"email": str, "name": str, "password_hash": str, "scopes": list},
)

list_users = SQL.many("list_users", row=UserRow, params={"after_id": int, "lim": int})
set_password = SQL.one("set_password", row=UserRow, params={"user_id": int, "password_hash": str})
set_active = SQL.one("set_active", row=UserRow, params={"user_id": int, "is_active": bool})
set_scopes = SQL.one("set_scopes", row=UserRow, params={"user_id": int, "scopes": list})
revoke_tokens = SQL.one("revoke_tokens", row=UserRow, params={"user_id": int})
delete_user = SQL.one("delete_user", row=UserRow, params={"user_id": int})

list_token_states = SQL.many("list_token_states", row=TokenStateRow, params={})
get_token_state = SQL.one("get_token_state", row=TokenStateRow, params={"user_id": int})

notify_probe = SQL.exec("notify_probe", params={"payload": str})

CHANNEL = "myapi_users"  # schema.sql's trigger announces every user change here

SQL.verify()
