"""Declarations of the login-throttling queries (queries/sql/logins/*.sql)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ._declare import SqlDir


class AttemptsRow(BaseModel):
    """How many attempts count against one key, and seconds until its window ends."""

    model_config = ConfigDict(frozen=True)

    key: str
    failures: int
    retry_after: int


SQL = SqlDir("logins")

count_attempt = SQL.many(
    "count_attempt",
    row=AttemptsRow,
    params={"account": str, "address": str, "window_seconds": int},
)
succeeded = SQL.exec("succeeded", params={"account": str, "address": str})
refused = SQL.exec("refused", params={"account": str, "address": str})
purge = SQL.exec("purge", params={"window_seconds": int})
get_attempts = SQL.one("get_attempts", row=AttemptsRow, params={"key": str, "window_seconds": int})
clear = SQL.exec("clear", params={"key": str})

SQL.verify()
