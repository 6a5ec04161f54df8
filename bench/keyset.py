"""Keyset pagination at scale: the first and the last page of GET /movies over N generated rows.

Run by hand (never in the test suite): `python -m bench.keyset [--rows 1000000]`.
Uses DATABASE_URL when set (a scratch database: it replaces myapi.movies), otherwise a
throw-away embedded PostgreSQL. Prints, per sort order, the median time of the first
page, of the last page, and of the last page fetched with OFFSET for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from api.backend.database import Database, apply_schema
from api.services import movies
from api.services._cursor import cursor_key, encode_cursor
from api.services.movies import MovieFilters
from queries._declare import Connection
from queries.movies import list_movies

SORTS = ("movie_id", "-rating", "title", "budget", "-budget", "length_minutes", "-released,title")
PAGE = 20
KEY = cursor_key(b"bench-keyset-" + b"k" * 32)
FILTERS = ("title", "released_from", "released_to", "min_rating")

# Server-side generation: a million rows in seconds, deterministic, with the real
# data's awkward bits (repeated titles, NULL budgets, a 10.0 rating now and then).
GENERATE = """
INSERT INTO myapi.movies (movie_id, title, released, rating, votes, length_minutes,
                          budget, mpaa, genres)
SELECT g,
       'Film ' || (g % 250000) || CASE WHEN g % 7 = 0 THEN ', The' ELSE '' END,
       1893 + (g * 7919) % 113,
       ((g * 104729) % 101) / 10.0,
       (g * 31) % 150000,
       1 + (g * 17) % 240,
       CASE WHEN g % 10 = 0 THEN ((g * 13) % 200000) * 1000 END,
       (ARRAY[NULL, 'R', 'PG-13', 'PG', 'NC-17'])[1 + g % 5],
       CASE WHEN g % 3 = 0 THEN ARRAY['Drama'] ELSE ARRAY['Comedy', 'Short'] END
  FROM generate_series(1::bigint, $1::bigint) AS g
"""


async def _prepare(conn: asyncpg.Connection, rows: int) -> None:
    await apply_schema(conn)
    await conn.execute("TRUNCATE myapi.movies")
    started = time.perf_counter()
    await conn.execute(GENERATE, rows)
    await conn.execute("ANALYZE myapi.movies")
    print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s")


async def _cursor_at(conn: Connection, sort: str, position: int) -> str:
    """The cursor a client walking every page holds after `position` rows."""
    keys = list_movies.sort_keys(sort)
    sql, args = list_movies.build(base_args=[], filters={}, sort=keys, after=None, limit=position)
    # The composed statement ends in LIMIT $n; an OFFSET after it picks the one row.
    record = (await conn.fetch(sql + f" OFFSET ${len(args) + 1}", *args, position - 1))[0]
    values = [record[k.column] for k in keys]
    return encode_cursor(keys, values, key=KEY, context=dict.fromkeys(FILTERS))


async def _time(work: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def _measure(db: Database, sort: str, rows: int, repeat: int) -> list[float]:
    """Median ms of the first, middle and last page, and of the last page by OFFSET."""
    async with db.connection() as conn:
        middle = await _cursor_at(conn, sort, rows // 2)
        last = await _cursor_at(conn, sort, rows - PAGE)

    async def page(cursor: str | None) -> None:
        result = await movies.find_movies(
            db, filters=MovieFilters(), sort=sort, limit=PAGE, cursor=cursor, cursor_key=KEY
        )
        assert len(result.items) == PAGE  # noqa: S101 - a benchmark that checks itself

    keys = list_movies.sort_keys(sort)
    sql, args = list_movies.build(base_args=[], filters={}, sort=keys, after=None, limit=PAGE)
    offset_sql = sql + f" OFFSET ${len(args) + 1}"

    async def offset_page() -> None:
        async with db.connection() as conn:
            await conn.fetch(offset_sql, *args, rows - PAGE)

    timings = [await _time(lambda c=c: page(c), repeat) for c in (None, middle, last)]
    return [*timings, await _time(offset_page, max(3, repeat // 20))]


async def run(dsn: str, rows: int, repeat: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await _prepare(conn, rows)
    finally:
        await conn.close()
    db = Database(await asyncpg.create_pool(dsn, min_size=1, max_size=2))
    try:
        print(f"\nGET /movies pages of {PAGE} over {rows:,} rows (median of {repeat}, ms)")
        header = ("sort", "first", "middle", "last", "last/first", "OFFSET last")
        print(f"{header[0]:<18}" + "".join(f"{h:>12}" for h in header[1:]))
        for sort in SORTS:
            first, middle, last, offset = await _measure(db, sort, rows, repeat)
            cells = (first, middle, last, last / first, offset)
            print(f"{sort:<18}" + "".join(f"{c:>12.2f}" for c in cells))
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    options = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL")
    if dsn:
        asyncio.run(run(dsn, options.rows, options.repeat))
        return
    from api.backend.embedded import start_embedded

    scratch = Path(tempfile.mkdtemp(prefix="bench-keyset-"))
    # Registered first, so it runs after the embedded server's own exit hook stops it.
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    asyncio.run(run(start_embedded(scratch), options.rows, options.repeat))


if __name__ == "__main__":
    main()
