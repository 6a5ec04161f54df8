"""The `--rows N` part of a run: `load-movies` of an N-row CSV file, then the first and the last
keyset page of GET /movies over those rows, through the live service.

It replaces the movies of the database it is given: a scratch one.
"""

from __future__ import annotations

import http.client
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
from pydantic import SecretStr

from api.backend.config import Settings
from api.backend.signing import token_keys
from api.services._cursor import cursor_key, encode_cursor
from api.services.movie_loader import GENRES
from bench._procs import HOST, BenchError, api_admin, run_command
from bench.keyset import FILTERS, GENERATE, PAGE
from queries.movies import list_movies

SORTS = ("movie_id", "-rating", "title")

# The loader's plain CSV: its header names, the genres as 0/1 flags.
_CSV = """
SELECT movie_id, title, released, rating, votes, length_minutes AS length, budget, mpaa, {flags}
  FROM myapi.movies ORDER BY movie_id
"""


@dataclass
class ScaleResult:
    rows: int
    generate_seconds: float = 0.0
    load_seconds: float | None = None
    load_error: str | None = None
    # sort -> (first page ms, last page ms), medians through the service
    pages: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def load_rows_per_second(self) -> float | None:
        return self.rows / self.load_seconds if self.load_seconds else None


async def _generate(dsn: str, rows: int, csv_path: Path | None) -> float:
    """Fill myapi.movies with `rows` generated movies (bench.keyset's generator); with
    `csv_path`, write them to that file as CSV and empty the table again. Seconds taken."""
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute("TRUNCATE myapi.movies")
        await conn.execute(GENERATE, rows)
        if csv_path is not None:
            flags = ", ".join(f"(genres @> ARRAY['{g}'])::int AS \"{g}\"" for g in GENRES)
            await conn.copy_from_query(
                _CSV.format(flags=flags), output=csv_path, format="csv", header=True
            )
            await conn.execute("TRUNCATE myapi.movies")
        else:
            await conn.execute("ANALYZE myapi.movies")
        return time.perf_counter() - started
    finally:
        await conn.close()


async def prepare_rows(dsn: str, rows: int, env: dict[str, str], workdir: Path) -> ScaleResult:
    """Time `api-admin load-movies` of an N-row CSV into the emptied table; the rows stay."""
    result = ScaleResult(rows)
    csv_path = workdir / f"movies-{rows}.csv"
    result.generate_seconds = await _generate(dsn, rows, csv_path)
    argv = [*api_admin(), "load-movies", str(csv_path)]
    try:
        result.load_seconds = run_command(argv, env, workdir, timeout=max(600.0, rows / 1000))
    except BenchError as exc:
        result.load_error = str(exc).splitlines()[-1][:300]
        await _generate(dsn, rows, None)  # the keyset pages still get their rows
    finally:
        csv_path.unlink(missing_ok=True)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE myapi.movies")
    finally:
        await conn.close()
    return result


def service_cursor_key(jwt_secret: str, dsn: str) -> bytes:
    """The key the service signs its cursors with, derived as it derives it."""
    settings = Settings(
        _env_file=None, jwt_secret=SecretStr(jwt_secret), database_url=SecretStr(dsn)
    )
    return cursor_key(token_keys(settings).secret)


async def _cursor_after(dsn: str, sort: str, position: int, key: bytes) -> str:
    """The cursor a client walking every page holds after `position` rows."""
    keys = list_movies.sort_keys(sort)
    sql, args = list_movies.build(base_args=[], filters={}, sort=keys, after=None, limit=position)
    conn = await asyncpg.connect(dsn)
    try:
        # The composed statement ends in LIMIT $n; an OFFSET after it picks the one row.
        record = (await conn.fetch(sql + f" OFFSET ${len(args) + 1}", *args, position - 1))[0]
    finally:
        await conn.close()
    values = [record[k.column] for k in keys]
    return encode_cursor(keys, values, key=key, context=dict.fromkeys(FILTERS))


def _page_ms(port: int, token: str, query: dict[str, str], repeat: int) -> float:
    """Median ms of GET /movies?query over one keep-alive connection (after two warm-ups)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    path = "/movies?" + urlencode(query)
    headers = {"Authorization": f"Bearer {token}"}
    samples = []
    try:
        for attempt in range(repeat + 2):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200 or len(json.loads(body)["items"]) != PAGE:
                raise BenchError(f"GET {path[:80]}... answered {response.status}: {body[:200]!r}")
            if attempt >= 2:
                samples.append(elapsed * 1000)
    finally:
        conn.close()
    return statistics.median(samples)


async def keyset_pages(
    result: ScaleResult, *, dsn: str, port: int, token: str, key: bytes, repeat: int
) -> None:
    """First and last page of each sort through the service, into `result.pages`."""
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM myapi.movies")
    finally:
        await conn.close()
    for sort in SORTS:
        cursor = await _cursor_after(dsn, sort, total - PAGE, key)
        base = {"sort": sort, "limit": str(PAGE)}
        first = _page_ms(port, token, base, repeat)
        last = _page_ms(port, token, base | {"cursor": cursor}, repeat)
        result.pages[sort] = (first, last)
