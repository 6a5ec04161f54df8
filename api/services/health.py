"""Liveness of the database, for load balancers and orchestrators."""

from __future__ import annotations

import asyncio

import asyncpg

import queries.health as q
from api.backend.database import Database
from api.exc import DatabaseUnavailable

# A health probe must answer quickly even when the database hangs.
TIMEOUT_SECONDS = 2.0


async def check_database(db: Database) -> None:
    """Return when the database answers; `DatabaseUnavailable` otherwise."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), db.connection() as conn:
            await q.ping(conn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable("The database did not answer.") from exc
