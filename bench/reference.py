"""The two ceilings our service is measured against, each a bare FastAPI app under uvicorn.

`constant_app`: a constant small JSON object (what HTTP and FastAPI cost on their own).
`create_db_app()`: one movie by id through an asyncpg pool (what any DB endpoint costs):
the same columns as queries/sql/movies/get_movie.sql, no auth, no declarations, no models;
and at /page the page of GET /movies the harness asks for (20 rows with rating >= 7, best
first) written the way the FastAPI tutorials do: plain parameters, dicts, no cursor.
Run by `python -m bench` as, e.g.,
`uvicorn bench.reference:create_db_app --factory --loop uvloop --http httptools`
with BENCH_DSN, BENCH_POOL_MIN_SIZE and BENCH_POOL_MAX_SIZE in the environment.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

SQL_DIR = Path(__file__).resolve().parent.parent / "queries/sql/movies"
GET_MOVIE = SQL_DIR / "get_movie.sql"
LIST_MOVIES = SQL_DIR / "list_movies.sql"

constant_app = FastAPI()


@constant_app.get("/", response_model=None)
async def constant() -> dict[str, str]:
    return {"status": "ok", "service": "reference"}


def _statement(path: Path) -> str:
    """A project .sql file on one line, its comment lines and final ';' dropped."""
    lines = path.read_text().splitlines()
    statement = " ".join(line for line in lines if not line.lstrip().startswith("--"))
    return statement.strip().rstrip(";")


def get_movie_sql() -> str:
    """get_movie.sql as asyncpg takes it: comments dropped, `:movie_id` as `$1`."""
    return _statement(GET_MOVIE).replace(":movie_id", "$1")


def page_sql() -> str:
    """list_movies.sql with the filter, order and limit of the harness's GET /movies page."""
    # The project's own file wrapped in fixed text; the values are $1 and $2.
    return (
        f"SELECT * FROM ({_statement(LIST_MOVIES)}) AS q WHERE rating >= $1"  # noqa: S608
        " ORDER BY rating DESC, movie_id DESC LIMIT $2"
    )


def create_db_app() -> FastAPI:
    sql = get_movie_sql()
    listing = page_sql()
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            os.environ["BENCH_DSN"],
            min_size=int(os.environ.get("BENCH_POOL_MIN_SIZE", "2")),
            max_size=int(os.environ.get("BENCH_POOL_MAX_SIZE", "10")),
            # 0 through PgBouncer in transaction mode (python -m bench --via).
            statement_cache_size=int(os.environ.get("BENCH_STATEMENT_CACHE_SIZE", "100")),
        )
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/movies/{movie_id}", response_model=None)
    async def get_movie(movie_id: int) -> dict[str, Any] | JSONResponse:
        row = await pools[0].fetchrow(sql, movie_id)
        if row is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return dict(row)

    @app.get("/page", response_model=None)
    async def page(min_rating: Decimal = Decimal(0), limit: int = 20) -> dict[str, Any]:
        rows = await pools[0].fetch(listing, min_rating, limit + 1)
        return {"items": [dict(r) for r in rows[:limit]], "next_cursor": None}

    @app.get("/health", response_model=None)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
