"""Declarations of the set-up queries (queries/sql/admin/*.sql)."""

from __future__ import annotations

from ._declare import SqlDir

SQL = SqlDir("admin")

lock = SQL.exec("lock", params={"name": str})

SQL.verify()
