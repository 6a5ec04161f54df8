"""Start-up work shared by the CLI and the app: find the server, apply the schema, seed data."""

from __future__ import annotations

import logging

import asyncpg

import queries.admin
import queries.movies as q
from api.backend.config import Settings
from api.backend.database import apply_schema, connect
from api.backend.embedded import start_embedded
from api.services import movie_loader

logger = logging.getLogger(__name__)


def resolve_dsn(settings: Settings) -> str:
    """The configured server's DSN, or the embedded server's after starting it."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded(settings.data_dir)


async def prepare_database(dsn: str, settings: Settings, *, seed: bool) -> int | None:
    """Apply the schema; with `seed`, load the bundled movies into an empty table.

    Returns the number of movies loaded, or None when nothing was loaded.
    """
    conn = await connect(dsn, settings)
    try:
        await apply_schema(conn)
        if not seed:
            return None
        return await _seed(conn)
    finally:
        await conn.close()


async def _seed(conn: asyncpg.Connection) -> int | None:
    async with conn.transaction():
        # Serialise seeding across processes; whoever comes second sees the rows.
        await queries.admin.lock(conn, name="myapi.seed")
        if await q.count_movies(conn) > 0:
            return None
        with movie_loader.open_csv(movie_loader.bundled_movies()) as handle:
            rows = movie_loader.parse_movies(handle)
        result = await movie_loader.load_movies(conn, rows)
    logger.info("loaded %d bundled movies", result.rows)
    return result.rows
