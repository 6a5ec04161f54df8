"""Declarations are checked against their .sql files when the module loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from queries._declare import SQL_ROOT, QueryDeclarationError, SqlDir, registered


class Row(BaseModel):
    n: int


def _sql_dir(tmp_path: Path, files: dict[str, str]) -> SqlDir:
    directory = tmp_path / "sql" / "things"
    directory.mkdir(parents=True)
    for name, text in files.items():
        (directory / f"{name}.sql").write_text(text)
    return SqlDir("things", root=tmp_path / "sql")


def test_matching_declaration_gives_positional_sql(tmp_path: Path) -> None:
    sql = _sql_dir(tmp_path, {"get_thing": "SELECT :n::int AS n, :'t' AS t WHERE :n > 0;"})
    query = sql.one("get_thing", row=Row, params={"n": int, "t": str})
    sql.verify()
    assert query.sql == "SELECT $1::int AS n, $2 AS t WHERE $1 > 0"
    assert query.args({"t": "x", "n": 3}) == [3, "x"]


def test_wrong_keyword_at_call_time_is_a_type_error(tmp_path: Path) -> None:
    sql = _sql_dir(tmp_path, {"get_thing": "SELECT :n AS n"})
    query = sql.one("get_thing", row=Row, params={"n": int})
    with pytest.raises(TypeError, match=r"get_thing.sql takes \['n'\], got \['m'\]"):
        query.args({"m": 1})


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    sql = _sql_dir(
        tmp_path,
        {
            "undeclared_param": "SELECT :a AS n, :b AS m",
            "extra_param": "SELECT 1 AS n",
            "orphan": "SELECT 1",
            "broken": "SELECT 1; SELECT 2",
        },
    )
    sql.one("undeclared_param", row=Row, params={"a": int})
    sql.one("extra_param", row=Row, params={"n": int})
    sql.many("missing_file", row=Row, params={})
    sql.value("broken", kind=int, params={})
    with pytest.raises(QueryDeclarationError) as caught:
        sql.verify()
    # Named from the project's top level, the folder that holds the package: here the
    # temporary directory's parent (`queries/sql/things/...` in the project).
    where = f"{tmp_path.name}/sql/things"
    assert caught.value.problems == (
        f"{where}/undeclared_param.sql: parameters used in the file but not declared: :b",
        f"{where}/extra_param.sql: parameters declared but not in the file: :n",
        f"{where}/missing_file.sql: file not found",
        f"{where}/broken.sql:1:11: only one statement per file:"
        " found more after the ';' at line 1, column 9",
        f"{where}/orphan.sql: no declaration uses this file",
    )


def test_declaring_a_file_twice_is_an_error(tmp_path: Path) -> None:
    sql = _sql_dir(tmp_path, {"get_thing": "SELECT 1 AS n"})
    sql.one("get_thing", row=Row, params={})
    sql.many("get_thing", row=Row, params={})
    with pytest.raises(QueryDeclarationError, match=r"get_thing\.sql: declared twice"):
        sql.verify()


def test_the_project_s_files_are_named_from_its_top_level() -> None:
    import queries.movies

    assert queries.movies.SQL.root == SQL_ROOT
    assert queries.movies.SQL._rel(queries.movies.get_movie.path) == (
        "queries/sql/movies/get_movie.sql"
    )


def test_a_failed_verify_leaves_its_declarations_in_the_registry(tmp_path: Path) -> None:
    sql = _sql_dir(tmp_path, {"get_thing": "SELECT 1 AS n", "broken": "SELECT 1; SELECT 2"})
    sql.one("get_thing", row=Row, params={})
    sql.value("broken", kind=int, params={})
    with pytest.raises(QueryDeclarationError):
        sql.verify()
    found = registered("things", root=tmp_path / "sql")
    assert found is sql
    # What `api-admin check` still checks: the declarations whose file became a statement.
    assert [q.name for q in found.declared.values() if q.sql] == ["get_thing"]
    # The module imported again makes a new SqlDir, which replaces the old one.
    again = SqlDir("things", root=tmp_path / "sql")
    assert registered("things", root=tmp_path / "sql") is again
    assert registered("things", root=tmp_path / "elsewhere") is None
