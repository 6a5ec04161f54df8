"""The asyncpg connection pool and the schema file.

The pool is created in the application's lifespan (or by a CLI command) and handed
to services; nothing here runs at import time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

import asyncpg
from asyncpg.pool import PoolConnectionProxy

import queries
import queries.admin
from api.exc import DatabaseUnavailable

from .config import Settings
from .signing import ConfigError

logger = logging.getLogger(__name__)


async def create_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    """Open a pool to `dsn` sized and tuned by `settings`."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(settings.pool_min_size, settings.pool_max_size),
        max_size=settings.pool_max_size,
        statement_cache_size=settings.statement_cache_size,
        command_timeout=settings.command_timeout,
        server_settings={"application_name": "myapi"},
        reset=_keep_session,
    )
    return pool


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """What a connection goes back to the pool with: its session as it is.

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, a round trip per request (profiled at a sixth of the
    database time of GET /movies/{id}). Nothing here changes session state: every
    statement is one declared .sql file, `api-admin check` refuses files that would (SET,
    LISTEN, ...), and advisory locks are transaction-scoped. asyncpg still rolls back an
    open transaction before calling this.
    """


# What acquiring a connection raises when the server is down, refusing connections
# (e.g. "not currently accepting connections") or every connection is busy.
_ACQUIRE_FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Database:
    """The pool, and how long a request may wait for one of its connections."""

    __slots__ = ("acquire_timeout", "pool")

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float = 5.0) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout

    def connection(self) -> _Lease:
        """`async with db.connection() as conn:` holds a connection for that block only."""
        return _Lease(self)

    async def close(self) -> None:
        await self.pool.close()


class _Lease:
    """A connection on loan; failing to get one is `DatabaseUnavailable` (a 503)."""

    __slots__ = ("_conn", "_db")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None

    async def __aenter__(self) -> PoolConnectionProxy[asyncpg.Record]:
        try:
            self._conn = await self._db.pool.acquire(timeout=self._db.acquire_timeout)
        except _ACQUIRE_FAILURES as exc:
            raise DatabaseUnavailable("The database is not reachable; try again shortly.") from exc
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._db.pool.release(conn)


async def connect(dsn: str, settings: Settings) -> asyncpg.Connection:
    """One connection, for CLI commands that run a single unit of work."""
    return await asyncpg.connect(
        dsn,
        statement_cache_size=settings.statement_cache_size,
        command_timeout=settings.command_timeout,
        server_settings={"application_name": "myapi-admin"},
    )


def schema_path() -> Path:
    """Where schema.sql is: the repository's top level, or the copy a wheel carries."""
    package_dir = Path(queries.__file__).resolve().parent
    for candidate in (package_dir / "schema.sql", package_dir.parent / "schema.sql"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("schema.sql not found next to the queries package")


class SchemaError(ConfigError):
    """schema.sql does not apply; the message says where, as `schema.sql:line:column`."""


async def apply_schema(conn: asyncpg.Connection) -> None:
    """Run schema.sql (idempotent) in one transaction, serialised across processes."""
    path = schema_path()
    ddl = path.read_text(encoding="utf-8")
    try:
        async with conn.transaction():
            # Two processes starting at once must not race on CREATE ... IF NOT EXISTS,
            # which is not concurrency-safe in PostgreSQL.
            await queries.admin.lock(conn, name="myapi.schema")
            await conn.execute(ddl)
    except asyncpg.PostgresError as exc:
        raise SchemaError(f"{path.name}{_where(ddl, exc)}: {exc}") from exc
    logger.info("schema applied")


def _where(text: str, exc: asyncpg.PostgresError) -> str:
    """`:line:column` of the error in `text`, when PostgreSQL says where it is."""
    position = getattr(exc, "position", None)
    if not position or not str(position).isdigit():
        return ""
    before = text[: int(position) - 1]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return f":{line}:{column}"
