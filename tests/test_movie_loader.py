"""The CSV parser's strictness and the load's behaviour under concurrency."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal

import asyncpg
import pytest

from api.services.movie_loader import MalformedFile, load_movies, parse_movies

HEADER = "title,released,rating\n"


def _parse(text: str) -> list[tuple[object, ...]]:
    return parse_movies(io.StringIO(text, newline=""))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("A,1_999,5", "released must be a whole number, got '1_999'"),
        ("A,١٩٩٩,5", "released must be a whole number"),
        ("A,1999,1e1", "rating must be a number, got '1e1'"),
        ("A,1999,NaN", "rating must be a number"),
        ("A,1999,7.25", "rating must be 0 to 10 with at most one decimal"),
        ("A,1999,10.1", "rating must be 0 to 10"),
        ("A,1869,5", "released must be between 1870 and 2100"),
        ('"",1999,5', "title must be 1 to 1000 characters"),
    ],
)
def test_strict_fields(row: str, message: str) -> None:
    with pytest.raises(MalformedFile, match=f"line 2: {message}"):
        _parse(HEADER + row + "\n")


def test_plain_rows_parse_to_staging_tuples() -> None:
    rows = _parse(HEADER + "Film,2001,7.5\n")
    assert rows == [(2, None, "Film", 2001, Decimal("7.5"), None, None, None, None, [])]


async def test_concurrent_loads_of_a_file_without_ids_do_not_duplicate(database: str) -> None:
    rows = _parse(HEADER + "".join(f"Loader race {i},2001,5\n" for i in range(500)))
    conns = [await asyncpg.connect(database) for _ in range(3)]
    try:
        await asyncio.gather(*(load_movies(conn, rows) for conn in conns))
        count = await conns[0].fetchval(
            "SELECT count(*) FROM myapi.movies WHERE title LIKE 'Loader race %'"
        )
        assert count == 500
    finally:
        for conn in conns:
            await conn.close()
