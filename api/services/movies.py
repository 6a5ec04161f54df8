"""Finding movies: one by id, filtered and keyset-paged lists, and the table-valued functions."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import queries.movies as q
from api.backend.database import Database
from api.exc import InvalidCursor, InvalidQuery, MovieNotFound
from queries._compose import SortKey, UnknownField
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
) -> Page:
    """One page of movies matching `filters` in `sort` order, after `cursor`."""
    try:
        keys = q.list_movies.sort_keys(sort)
    except UnknownField as exc:
        error = {"loc": ["query", "sort"], "msg": str(exc), "type": "value_error"}
        raise InvalidQuery(f"sort: {exc}", field=exc.name, errors=[error]) from exc
    after = decode_cursor(cursor, keys) if cursor else None
    sql, args = q.list_movies.build(
        base_args=[],
        filters={
            "title": filters.title,
            "released_from": filters.released_from,
            "released_to": filters.released_to,
            "min_rating": filters.min_rating,
        },
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
        next_cursor = encode_cursor(keys, [last[k.column] for k in keys])
    return Page(items=items, next_cursor=next_cursor)


async def top_rated(db: Database, *, min_votes: int, limit: int) -> list[MovieRow]:
    async with db.connection() as conn:
        return await q.list_top_rated(conn, min_votes=min_votes, lim=limit)


async def released_since(
    db: Database, *, year: int, min_rating: Decimal, limit: int
) -> list[MovieRow]:
    async with db.connection() as conn:
        return await q.list_released_since(conn, year=year, min_rating=min_rating, lim=limit)


# The cursor is opaque to clients: base64url of JSON naming the sort it belongs to
# and the last row's values. It is checked, not trusted: a cursor for another sort,
# or with values of the wrong type, is refused with 400.

_INT4 = (-(2**31), 2**31 - 1)
_RATING = re.compile(r"\d{1,2}(\.\d)?")  # what numeric(3,1) holds; no exponents
_CURSOR_TYPES: dict[str, tuple[type, tuple[int, int]]] = {
    "movie_id": (int, _INT4),
    "title": (str, _INT4),
    "released": (int, (-(2**15), 2**15 - 1)),  # smallint
    "rating": (Decimal, (0, 10)),
    "votes": (int, _INT4),
    "length_minutes": (int, _INT4),
    "budget": (int, (-(2**63), 2**63 - 1)),  # bigint
}


def _sort_spec(keys: tuple[SortKey, ...]) -> str:
    return ",".join(("-" if k.descending else "") + k.column for k in keys)


def encode_cursor(keys: tuple[SortKey, ...], values: list[Any]) -> str:
    plain = [str(v) if isinstance(v, Decimal) else v for v in values]
    raw = json.dumps({"s": _sort_spec(keys), "v": plain}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[SortKey, ...]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        spec, values = data["s"], data["v"]
    except (binascii.Error, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise InvalidCursor("The cursor is malformed; start again without it.") from exc
    if spec != _sort_spec(keys) or not isinstance(values, list) or len(values) != len(keys):
        raise InvalidCursor("The cursor belongs to another sort order; start again without it.")
    return [_cursor_value(k.column, v) for k, v in zip(keys, values, strict=True)]


def _cursor_value(column: str, value: Any) -> Any:
    if value is None and column in q.list_movies.nullable:
        return None
    kind, (low, high) = _CURSOR_TYPES[column]
    try:
        if kind is int and type(value) is int and low <= value <= high:
            return value
        if kind is str and isinstance(value, str) and "\x00" not in value:
            value.encode()  # a lone surrogate cannot reach PostgreSQL
            return value
        if kind is Decimal and isinstance(value, str) and _RATING.fullmatch(value):
            number = Decimal(value)
            if low <= number <= high:
                return number
    except (ArithmeticError, UnicodeError):
        pass
    raise InvalidCursor("The cursor holds an invalid value; start again without it.")
