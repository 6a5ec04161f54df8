"""What every `api-admin` command shares: the Typer app, settings, the database it runs
against, and turning expected failures into one line (`main` prints it, exit 1)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

import asyncpg
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from api.backend.config import Settings, get_settings
from api.backend.embedded import EmbeddedServerError
from api.backend.signing import ConfigError
from api.exc import AppError

# What imports the query modules is imported where it is used: `check` must report a
# broken declaration, and a module that fails its declarations fails its import (which
# `main` turns into the list of problems for every other command).
if TYPE_CHECKING:
    from api.backend.database import Database

T = TypeVar("T")

app = typer.Typer(
    help="Administer the movies API: serve it, set up its database, load movies, add users, "
    "check its SQL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _Failed(Exception):
    """An expected failure: `main` prints it as one line, `error: ...`, and exits with 1."""


def _fail(message: str) -> NoReturn:
    raise _Failed(message)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid configuration: {problems}")
    except SettingsError as exc:  # e.g. a list setting that is not JSON
        _fail(f"invalid configuration: {exc}")


def _run(work: Callable[[], Awaitable[T]], *, known: tuple[type[Exception], ...] = ()) -> T:
    """Run async work; expected failures, and `known` ones, become `_Failed`."""
    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except Exception as exc:
        message = _failure_message(exc, known)
        if message is None:
            raise
        raise _Failed(message) from exc


def _failure_message(exc: Exception, known: tuple[type[Exception], ...]) -> str | None:
    """One line for an expected failure; None for anything else (a bug: its traceback)."""
    if isinstance(exc, AppError):
        return exc.detail
    if _lost_prepared_statement(exc):
        return (
            "the database lost or duplicated one of asyncpg's prepared statements, as a "
            "PgBouncer in transaction mode does: set API_STATEMENT_CACHE_SIZE=0 there"
        )
    if isinstance(exc, (*known, ConfigError, EmbeddedServerError)):
        return str(exc)
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return f"invalid DATABASE_URL: {exc}"
    if isinstance(exc, asyncpg.UndefinedTableError):
        return "the database has no myapi tables yet; run `api-admin init-db` first"
    if isinstance(exc, OSError | asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return f"cannot reach the database: {exc}"
    if isinstance(exc, asyncpg.PostgresError):
        # The first line only: asyncpg appends DETAIL lines that may quote row values.
        summary = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the database refused the change: {summary}"
    return None


def _lost_prepared_statement(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it, e.g. behind a SchemaError) is asyncpg finding its
    named prepared statements gone or already there: another session's, through PgBouncer."""
    while exc is not None:
        if isinstance(
            exc, asyncpg.DuplicatePreparedStatementError | asyncpg.InvalidSQLStatementNameError
        ):
            return True
        exc = exc.__cause__
    return False


def _dsn(settings: Settings) -> str:
    """The configured server's DSN, or the embedded server's after starting (or joining) it.

    The same as `bootstrap.resolve_dsn`, without importing `bootstrap`: that imports the
    query modules, which `check` reports on and `psql` must work without.
    """
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from api.backend.embedded import start_embedded

    typer.echo(f"Using the embedded PostgreSQL in {settings.data_dir}", err=True)
    try:
        return start_embedded(settings.data_dir)
    except EmbeddedServerError as exc:
        _fail(str(exc))


def _ready_dsn(settings: Settings) -> str:
    """A DSN whose database has the schema: applied here on the embedded server."""
    from api import bootstrap

    dsn = _dsn(settings)
    if settings.embedded:
        _run(lambda: bootstrap.prepare_database(dsn, settings, seed=False))
    return dsn


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _with_database(work: Callable[[Database], Awaitable[T]], *, dsn: str | None = None) -> T:
    """Run `work` on a one-connection pool to the (ready) database; failures as `_run`'s."""
    from api.backend.database import Database, create_pool

    settings = _settings()
    ready = dsn or _ready_dsn(settings)

    async def run() -> T:
        one = settings.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})
        db = Database(await create_pool(ready, one), acquire_timeout=one.pool_acquire_timeout)
        try:
            return await work(db)
        finally:
            await db.close()

    return _run(run)
