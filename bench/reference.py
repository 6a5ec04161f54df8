"""The two ceilings our service is measured against, each a bare FastAPI app under uvicorn.

`constant_app`: a constant small JSON object (what HTTP and FastAPI cost on their own).
`create_db_app()`: one movie by id through an asyncpg pool (what any DB endpoint costs):
the same columns as queries/sql/movies/get_movie.sql, no auth, no declarations, no models.
Run by `python -m bench` as, e.g.,
`uvicorn bench.reference:create_db_app --factory --loop uvloop --http httptools`
with BENCH_DSN, BENCH_POOL_MIN_SIZE and BENCH_POOL_MAX_SIZE in the environment.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse

GET_MOVIE = Path(__file__).resolve().parent.parent / "queries/sql/movies/get_movie.sql"

constant_app = FastAPI()


@constant_app.get("/", response_model=None)
async def constant() -> dict[str, str]:
    return {"status": "ok", "service": "reference"}


def get_movie_sql() -> str:
    """get_movie.sql as asyncpg takes it: comments dropped, `:movie_id` as `$1`."""
    lines = GET_MOVIE.read_text().splitlines()
    statement = " ".join(line for line in lines if not line.lstrip().startswith("--"))
    return statement.replace(":movie_id", "$1").strip().rstrip(";")


def create_db_app() -> FastAPI:
    sql = get_movie_sql()
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            os.environ["BENCH_DSN"],
            min_size=int(os.environ.get("BENCH_POOL_MIN_SIZE", "2")),
            max_size=int(os.environ.get("BENCH_POOL_MAX_SIZE", "10")),
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

    @app.get("/health", response_model=None)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
