"""Declaration of the database liveness query (queries/sql/health/ping.sql)."""

from __future__ import annotations

from ._declare import SqlDir

SQL = SqlDir("health")

ping = SQL.value("ping", kind=int, params={})

SQL.verify()
