"""schema.sql is idempotent and its constraints hold the real data's edge cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from api.backend.database import SchemaError, apply_schema, schema_path

SNAPSHOT = "SELECT md5(string_agg(m::text, '|' ORDER BY movie_id)) FROM myapi.movies m"


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database)
    try:
        yield connection
    finally:
        await connection.close()


async def test_schema_applies_twice_without_error_or_data_loss(conn: asyncpg.Connection) -> None:
    before = await conn.fetchval(SNAPSHOT)
    await conn.execute(
        "INSERT INTO myapi.users (email, name, password_hash) VALUES ('a@b.c', 'A', 'x')"
    )
    await apply_schema(conn)
    await apply_schema(conn)
    assert await conn.fetchval(SNAPSHOT) == before
    assert await conn.fetchval("SELECT count(*) FROM myapi.movies") == 58788
    assert await conn.fetchval("SELECT count(*) FROM myapi.users") == 1


async def test_schema_applies_to_an_empty_database(conn: asyncpg.Connection) -> None:
    await conn.execute("DROP SCHEMA myapi CASCADE")
    await apply_schema(conn)
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'myapi' ORDER BY 1"
    )
    assert [t["table_name"] for t in tables] == ["login_attempts", "movies", "users"]
    functions = await conn.fetch(
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'myapi' ORDER BY 1"
    )
    assert [f["proname"] for f in functions] == [
        "movies_released_since",
        "notify_user_change",
        "top_rated_movies",
    ]


async def test_rating_holds_ten_and_refuses_out_of_range(conn: asyncpg.Connection) -> None:
    assert await conn.fetchval("SELECT count(*) FROM myapi.movies WHERE rating = 10.0") == 3
    insert = "INSERT INTO myapi.movies (title, released, rating) VALUES ('T', 2000, $1)"
    await conn.execute(insert, 10)
    with pytest.raises(asyncpg.CheckViolationError, match="movies_rating_range"):
        await conn.execute(insert, -0.5)
    with pytest.raises(asyncpg.NumericValueOutOfRangeError):
        await conn.execute(insert, 100)


@pytest.mark.parametrize(
    ("column", "value", "constraint"),
    [
        ("released", 1700, "movies_released_range"),
        ("votes", -1, "movies_votes_range"),
        ("length_minutes", 0, "movies_length_range"),
        ("budget", -5, "movies_budget_range"),
        ("mpaa", "X", "movies_mpaa_values"),
        ("title", "   ", "movies_title_not_blank"),
    ],
)
async def test_check_constraints(
    conn: asyncpg.Connection, column: str, value: object, constraint: str
) -> None:
    row = {"title": "T", "released": 2000, "rating": 5}
    row[column] = value
    names = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    with pytest.raises(asyncpg.CheckViolationError, match=constraint):
        await conn.execute(
            f"INSERT INTO myapi.movies ({names}) VALUES ({placeholders})",
            *row.values(),
        )


async def test_email_is_unique_regardless_of_case(conn: asyncpg.Connection) -> None:
    insert = "INSERT INTO myapi.users (email, name, password_hash) VALUES ($1, 'N', 'h')"
    await conn.execute(insert, "Ada@Example.com")
    with pytest.raises(asyncpg.UniqueViolationError, match="users_email_key"):
        await conn.execute(insert, "ada@EXAMPLE.com")


def test_schema_file_is_the_repository_one() -> None:
    assert schema_path().name == "schema.sql"
    assert "CREATE TABLE IF NOT EXISTS myapi.movies" in schema_path().read_text()


async def test_an_error_in_schema_sql_names_its_line_and_column(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "schema.sql"
    broken.write_text(
        "CREATE SCHEMA IF NOT EXISTS myapi;\n"
        "CREATE INDEX IF NOT EXISTS x\n"
        "    ONN myapi.movies (title);\n"
    )
    monkeypatch.setattr("api.backend.database.schema_path", lambda: broken)
    with pytest.raises(SchemaError, match=r'^schema\.sql:3:5: syntax error at or near "ONN"$'):
        await apply_schema(conn)
