"""The live check: the project's SQL passes it; each kind of breakage is reported precisely,
by `api-admin check` and by the service refusing to start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg
import pytest
from pydantic import BaseModel

from api.backend.config import Settings
from api.main import create_app
from queries._check import Declaration, Finding, ListingBase, check_queries, collect_declarations
from queries._declare import SqlDir
from queries.movies import MovieRow

ROOT = Path(__file__).resolve().parents[2]
ADMIN = Path(sys.executable).parent / "api-admin"


async def _check(dsn: str, declarations: Sequence[Declaration]) -> list[Finding]:
    conn = await asyncpg.connect(dsn)
    try:
        return await check_queries(conn, declarations)
    finally:
        await conn.close()


# --- the project as it stands -------------------------------------------------------------


async def test_the_project_passes_with_no_findings(database: str) -> None:
    catalog = collect_declarations()
    assert catalog.problems == ()
    # The listing base is checked against MovieRow, not just prepared.
    listings = [d for d in catalog.declarations if isinstance(d, ListingBase)]
    assert [(d.query.name, d.row) for d in listings] == [("list_movies", MovieRow)]
    assert await _check(database, catalog.declarations) == []


# --- a deliberately broken copy -----------------------------------------------------------


class Titled(BaseModel):
    movie_id: int
    title: str


class Counted(BaseModel):
    n: int


class Labelled(BaseModel):
    label: str


class Budgeted(BaseModel):
    budget: int


class Addressed(BaseModel):
    title: str
    email: str


BROKEN_FILES = {
    "renamed_column": "-- title renamed\nSELECT movie_id, title AS name FROM myapi.movies",
    "extra_column": "SELECT movie_id, title, votes FROM myapi.movies",
    "text_into_int": "SELECT title AS n FROM myapi.movies",
    "numeric_into_str": "SELECT rating AS label FROM myapi.movies",
    "nullable_into_int": "SELECT budget FROM myapi.movies",
    "outer_join": (
        "SELECT m.title, u.email\n  FROM myapi.movies AS m\n"
        "  LEFT JOIN myapi.users AS u ON u.user_id = m.movie_id"
    ),
    "untyped_param": "SELECT movie_id, title FROM myapi.movies WHERE :since IS NULL",
    "ambiguous_param": (
        "SELECT movie_id, title FROM myapi.movies\n WHERE :since IS NULL OR released >= :since"
    ),
    "syntax_error": (
        "-- A syntax error after a parameter on the same line.\n"
        "SELECT movie_id, title\n  FROM myapi.movies\n"
        " WHERE movie_id = :movie_id AND AND votes > 0"
    ),
    "missing_table": "SELECT movie_id, title\n  FROM myapi.films",
    "misspelt_column": "SELECT movie_id, tittle FROM myapi.movies",
    "wrong_param_type": "SELECT movie_id, title FROM myapi.movies WHERE movie_id = :movie_id",
    "count_wrong_kind": "SELECT avg(rating) FROM myapi.movies",
    "listing_base": "SELECT movie_id FROM myapi.movies",
    "limited_base": (
        "SELECT movie_id, title\n  FROM (SELECT * FROM myapi.movies LIMIT 100) AS m\n"
        " ORDER BY title\n OFFSET 5 LIMIT 10"
    ),
    "create_scratch": "CREATE TEMPORARY TABLE scratch (n integer NOT NULL) ON COMMIT DROP",
    "read_scratch": "SELECT n FROM scratch",
    "session_set": "-- leaks into the next request\nSET statement_timeout = 0",
    "session_listen": "LISTEN myapi_users",
    "transaction_set": "SET LOCAL statement_timeout = 1000",
    "session_set_to_local": "SET search_path = local",
}


def _broken(tmp_path: Path) -> list[Declaration]:
    root = tmp_path / "queries" / "sql"
    (root / "broken").mkdir(parents=True)
    for name, text in BROKEN_FILES.items():
        (root / "broken" / f"{name}.sql").write_text(text + ";\n")
    sql = SqlDir("broken", root=root)
    sql.many("renamed_column", row=Titled, params={})
    sql.many("extra_column", row=Titled, params={})
    sql.many("text_into_int", row=Counted, params={})
    sql.many("numeric_into_str", row=Labelled, params={})
    sql.many("nullable_into_int", row=Budgeted, params={})
    sql.many("outer_join", row=Addressed, params={})
    sql.many("untyped_param", row=Titled, params={"since": int})
    sql.many("ambiguous_param", row=Titled, params={"since": int})
    sql.one("syntax_error", row=Titled, params={"movie_id": int})
    sql.many("missing_table", row=Titled, params={})
    sql.many("misspelt_column", row=Titled, params={})
    sql.one("wrong_param_type", row=Titled, params={"movie_id": str})
    sql.value("count_wrong_kind", kind=int, params={})
    sql.scanned("listing_base", params={})
    sql.scanned("limited_base", params={})
    sql.exec("create_scratch", params={})
    sql.many("read_scratch", row=Counted, params={})
    sql.exec("session_set", params={})
    sql.exec("session_listen", params={})
    sql.exec("transaction_set", params={})
    sql.exec("session_set_to_local", params={})
    sql.verify()
    bases = {
        name: ListingBase(sql.declared[name], ("movie_id", "title"), None)
        for name in ("listing_base", "limited_base")
    }
    return [bases.get(q.name, q) for q in sql.declared.values()]


def _file(name: str) -> str:
    return f"queries/sql/broken/{name}.sql"


# (file, field, severity, a fragment of the message, a fragment of the hint or None)
EXPECTED = [
    (
        "renamed_column",
        "title",
        "error",
        "the statement returns no column 'title' (it returns: movie_id, name)",
        "alias one: `... AS title`",
    ),
    ("renamed_column", "name", "error", "column 'name' is not a field of Titled", "remove it"),
    ("extra_column", "votes", "error", "column 'votes' is not a field of Titled", "remove it"),
    (
        "text_into_int",
        "n",
        "error",
        "column 'n' is text, which does not fit the field's type int",
        "cast the column",
    ),
    (
        "numeric_into_str",
        "label",
        "error",
        "column 'label' is numeric, which does not fit the field's type str",
        "cast the column",
    ),
    (
        "nullable_into_int",
        "budget",
        "warning",
        "column 'budget' comes from myapi.movies.budget, which can be NULL, but the field is int",
        "make the field `int | None`",
    ),
    (
        "outer_join",
        "email",
        "warning",
        "column 'email' comes from myapi.users.email, which is on the nullable side of an outer",
        "make the field `str | None`",
    ),
    (
        "untyped_param",
        ":since",
        "error",
        # PostgreSQL gives no position: the parameter's first use in the file.
        "could not determine data type of parameter :since (line 1, column 48)",
        "add a cast, e.g. :since::integer",
    ),
    (
        "ambiguous_param",
        ":since",
        "error",
        "could not determine data type of parameter :since (line 2, column 8)",
        "add a cast, e.g. :since::integer",
    ),
    # The file says `:movie_id` where the statement sent says `$1`: the column is the file's.
    ("syntax_error", None, "error", 'syntax error at or near "AND" (line 4, column 33)', None),
    (
        "missing_table",
        None,
        "error",
        'relation "myapi.films" does not exist (line 2, column 8)',
        None,
    ),
    (
        "misspelt_column",
        None,
        "error",
        'column "tittle" does not exist (line 1, column 18)',
        'Perhaps you meant to reference the column "movies.title"',
    ),
    (
        "wrong_param_type",
        ":movie_id",
        "warning",
        "parameter :movie_id is declared str but PostgreSQL expects int4",
        "change the declared type",
    ),
    (
        "count_wrong_kind",
        None,
        "error",
        "the value (column 'avg') is numeric, which does not fit the declared kind int",
        "change `kind`",
    ),
    (
        "listing_base",
        "title",
        "error",
        "the statement returns no column 'title' (it returns: movie_id)",
        "AS title",
    ),
    # The LIMIT inside the subquery is the DBA's business; the listing pages the outer rows.
    (
        "limited_base",
        None,
        "error",
        "a listing base must return every row, unsorted, but this one has ORDER BY, OFFSET, "
        "LIMIT at its top level (line 3, column 2)",
        "remove it: the listing adds the client's filters, sort order and page",
    ),
    # Pooled connections are not reset: a session-wide change would leak (SET LOCAL is fine).
    (
        "session_set",
        None,
        "error",
        "SET changes the session, and pooled connections are not reset between requests",
        "use SET LOCAL",
    ),
    ("session_listen", None, "error", "LISTEN changes the session", "use SET LOCAL"),
    ("session_set_to_local", None, "error", "SET changes the session", "use SET LOCAL"),
]


async def test_a_broken_copy_reports_every_problem_precisely(database: str, tmp_path: Path) -> None:
    findings = await _check(database, _broken(tmp_path))
    assert [(f.file, f.field, f.severity) for f in findings] == [
        (_file(name), field, severity) for name, field, severity, _, _ in EXPECTED
    ]
    for finding, (_, _, _, message, hint) in zip(findings, EXPECTED, strict=True):
        assert message in finding.message, finding
        if hint is None:
            assert finding.hint is None, finding
        else:
            assert hint in (finding.hint or ""), finding


async def test_the_check_leaves_nothing_behind(database: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(database)
    try:
        await check_queries(conn, _broken(tmp_path))
        # Rolled back and closed: no temporary table, no open transaction, the default
        # plan cache mode, none of its prepared statements.
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('pg_temp.scratch')") is None
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
        named = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'myapi_check%'"
        assert await conn.fetchval(named) == 0
    finally:
        await conn.close()


# --- api-admin check ----------------------------------------------------------------------


def _admin(
    tmp_path: Path, dsn: str, *args: str, project: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env |= {
        "DATABASE_URL": dsn,
        "JWT_SECRET": "c" * 40,
        "API_DATA_DIR": str(tmp_path / "data"),
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
    }
    if project is None:
        command = [str(ADMIN), *args]
    else:
        # The same command run from a copy of the project, which comes first on the path.
        env["PYTHONPATH"] = str(project)
        command = [sys.executable, "-c", "from api.cli import main; main()", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False
    )


def test_check_passes_on_the_project(database: str, tmp_path: Path) -> None:
    done = _admin(tmp_path, database, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("0 errors, 0 warnings in ")
    assert done.stdout.count("\n") == 1


def test_check_json_is_one_document(database: str, tmp_path: Path) -> None:
    done = _admin(tmp_path, database, "check", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["findings"] == []
    assert report["checked"] == len(collect_declarations().declarations)


async def _rename_title(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE myapi.movies RENAME COLUMN title TO name")
    finally:
        await conn.close()


async def test_a_renamed_column_fails_the_check_and_the_start_up(
    database: str, settings: Settings, tmp_path: Path
) -> None:
    await _rename_title(database)

    done = _admin(tmp_path, database, "check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "queries/sql/movies/get_movie.sql: field 'title': error: "
        'column "title" does not exist (line 3, column 18)'
    ) in done.stdout.splitlines()
    as_json = json.loads(_admin(tmp_path, database, "check", "--json").stdout)
    assert as_json["ok"] is False
    assert any(
        (f["file"], f["field"], f["severity"])
        == ("queries/sql/movies/get_movie.sql", "title", "error")
        for f in as_json["findings"]
    )

    app = create_app(settings)
    with pytest.raises(RuntimeError, match=r"queries/sql/movies/get_movie\.sql: field 'title'"):
        async with app.router.lifespan_context(app):
            pass


def _project_copy(tmp_path: Path) -> Path:
    """A copy of the project's code to break: `_admin(..., project=...)` runs it."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "data")
    for package in ("api", "queries"):
        shutil.copytree(ROOT / package, project / package, ignore=ignore)
    shutil.copy(ROOT / "schema.sql", project / "schema.sql")
    return project


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text().rstrip().rstrip(";") + text)


# How to break queries/sql/movies/ at the file level, and the problem the check reports.
FILE_PROBLEMS: dict[str, tuple[Callable[[Path], object], str]] = {
    "two-statements": (
        lambda movies: _append(movies / "get_movie.sql", ";\nSELECT 2;\n"),
        "queries/sql/movies/get_movie.sql: error: only one statement per file: found more "
        "after the ';' at line 5, column 28 (line 6, column 1)",
    ),
    "undeclared-parameter": (
        lambda movies: _append(movies / "get_movie.sql", " AND votes > :min_votes;\n"),
        "queries/sql/movies/get_movie.sql: error: "
        "parameters used in the file but not declared: :min_votes",
    ),
    "missing-file": (
        lambda movies: (movies / "get_movie.sql").unlink(),
        "queries/sql/movies/get_movie.sql: error: file not found",
    ),
    "orphan-file": (
        lambda movies: (movies / "forgotten.sql").write_text("SELECT 1;\n"),
        "queries/sql/movies/forgotten.sql: error: no declaration uses this file",
    ),
    "psql-identifier": (
        lambda movies: _append(movies / "get_movie.sql", ' AND :"column" > 0;\n'),
        'queries/sql/movies/get_movie.sql: error: :"column" is psql identifier interpolation',
    ),
}


@pytest.mark.parametrize("case", list(FILE_PROBLEMS))
def test_a_file_problem_leaves_the_folder_s_other_files_checked(
    database: str, tmp_path: Path, case: str
) -> None:
    project = _project_copy(tmp_path)
    movies = project / "queries" / "sql" / "movies"
    breakage, problem = FILE_PROBLEMS[case]
    breakage(movies)
    # A sound file of the same folder whose value does not fit its declaration.
    (movies / "count_movies.sql").write_text("SELECT avg(rating) FROM myapi.movies;\n")

    done = _admin(tmp_path, database, "check", project=project)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(problem), lines[0]
    # The folder's module failed its declarations, yet its other statements were checked.
    assert lines[1:3] == [
        "queries/sql/movies/count_movies.sql: error: the value (column 'avg') is numeric, "
        "which does not fit the declared kind int",
        "    hint: cast it in the statement, or change `kind`",
    ]
    assert lines[3:] == [lines[-1]]
    assert lines[-1].startswith("2 errors, 0 warnings in ")


def test_orphan_files_and_a_cut_listing_base_fail_the_check(database: str, tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    sql = project / "queries" / "sql"
    (sql / "reports").mkdir()
    (sql / "reports" / "orphan.sql").write_text("SELECT 1;\n")
    (sql / "orphan_top.sql").write_text("SELECT 1;\n")
    _append(sql / "movies" / "list_movies.sql", "\n LIMIT 100;\n")

    done = _admin(tmp_path, database, "check", "--json", project=project)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["error"] is None
    found = [(f["file"], f["severity"], f["message"]) for f in report["findings"]]
    assert found == [
        (
            "queries/sql/orphan_top.sql",
            "error",
            "no declaration uses this file: it is directly in queries/sql/, "
            "outside every service's folder",
        ),
        (
            "queries/sql/reports/orphan.sql",
            "error",
            "no declaration uses this file: no module declares the folder queries/sql/reports/",
        ),
        (
            "queries/sql/movies/list_movies.sql",
            "error",
            "a listing base must return every row, unsorted, but this one has LIMIT at its "
            "top level (line 7, column 2)",
        ),
    ]


async def _drop_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA myapi CASCADE")
    finally:
        await conn.close()


async def test_a_database_without_the_schema_is_one_finding(database: str) -> None:
    await _drop_schema(database)
    findings = await _check(database, collect_declarations().declarations)
    assert findings == [
        Finding(
            "schema.sql",
            None,
            "error",
            "the database has no schema 'myapi': there is nothing to check against",
            "run `api-admin init-db`",
        )
    ]


async def test_check_does_not_create_the_schema(database: str, tmp_path: Path) -> None:
    await _drop_schema(database)
    for _ in range(2):  # the second run finds the database as the first left it
        done = _admin(tmp_path, database, "check")
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.splitlines()[:2] == [
            "schema.sql: error: the database has no schema 'myapi': "
            "there is nothing to check against",
            "    hint: run `api-admin init-db`",
        ]


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://postgres@127.0.0.1:1/x", "cannot reach the database: "),
        ("postgresql://u@h/d?sslmode=bogus", "invalid DATABASE_URL: "),
        ("mysql://u@h/d", "invalid configuration: "),
    ],
    ids=["unreachable", "bad-url", "bad-setting"],
)
def test_check_json_is_a_document_when_the_check_cannot_run(
    tmp_path: Path, dsn: str, message: str
) -> None:
    done = _admin(tmp_path, dsn, "check", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    assert report["error"].startswith(message)
    assert "\n" not in report["error"]
    assert report["findings"] == []
    assert report["checked"] == len(collect_declarations().declarations)
    # Without --json: the same one line on stderr, nothing on stdout.
    plain = _admin(tmp_path, dsn, "check")
    assert plain.returncode == 1
    assert plain.stdout == ""
    assert plain.stderr.strip() == f"error: {report['error']}"
