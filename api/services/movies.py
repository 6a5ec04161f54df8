"""Finding movies: one by id, filtered and keyset-paged lists, and the table-valued functions."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import queries.movies as q
from api.backend.database import Database
from api.exc import InvalidQuery, MovieNotFound
from api.services._cursor import decode_cursor, encode_cursor
from queries._compose import UnknownField
from queries.movies import MovieRow


@dataclass(frozen=True, slots=True)
class MovieFilters:
    title: str | None = None
    released_from: int | None = None
    released_to: int | None = None
    min_rating: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[MovieRow]
    next_cursor: str | None


async def get_movie(db: Database, *, movie_id: int) -> MovieRow:
    async with db.connection() as conn:
        movie = await q.get_movie(conn, movie_id=movie_id)
    if movie is None:
        raise MovieNotFound(f"No movie has the id {movie_id}.")
    return movie


async def find_movies(
    db: Database,
    *,
    filters: MovieFilters,
    sort: str,
    limit: int,
    cursor: str | None,
    cursor_key: bytes,
) -> Page:
    """One page of movies matching `filters` in `sort` order, after `cursor`."""
    try:
        keys = q.list_movies.sort_keys(sort)
    except UnknownField as exc:
        error = {"loc": ["query", "sort"], "msg": str(exc), "type": "value_error"}
        raise InvalidQuery(f"sort: {exc}", field=exc.name, errors=[error]) from exc
    chosen = {
        "title": filters.title,
        "released_from": filters.released_from,
        "released_to": filters.released_to,
        "min_rating": filters.min_rating,
    }
    after = decode_cursor(cursor, keys, key=cursor_key, context=chosen) if cursor else None
    sql, args = q.list_movies.build(
        base_args=[],
        filters=chosen,
        sort=keys,
        after=after,
        limit=limit + 1,  # one extra row says whether there is a next page
    )
    async with db.connection() as conn:
        records = await conn.fetch(sql, *args)
    items = [MovieRow.model_validate(dict(r)) for r in records[:limit]]
    next_cursor = None
    if len(records) > limit:
        last = records[limit - 1]
        values = [last[k.column] for k in keys]
        next_cursor = encode_cursor(keys, values, key=cursor_key, context=chosen)
    return Page(items=items, next_cursor=next_cursor)


async def top_rated(db: Database, *, min_votes: int, limit: int) -> list[MovieRow]:
    async with db.connection() as conn:
        return await q.list_top_rated(conn, min_votes=min_votes, lim=limit)


async def released_since(
    db: Database, *, year: int, min_rating: Decimal, limit: int
) -> list[MovieRow]:
    async with db.connection() as conn:
        return await q.list_released_since(conn, year=year, min_rating=min_rating, lim=limit)
