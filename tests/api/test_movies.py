"""GET /movies/{id}, GET /movies (filters, sorts, keyset pages, cursors), /movies/top and
/movies/released-since, checked against independent SQL over the real 58,788 movies.

Read-only tests share one database per module (`shared_app`, module event loop); the
tests that insert rows get their own database from tests/conftest.py.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.api import _support
from tests.api._support import (
    MOVIE_COLUMNS,
    TOTAL_MOVIES,
    SharedApp,
    assert_problem,
    movie_json,
    order_by,
    walk,
)

shared_app = pytest_asyncio.fixture(scope="module", loop_scope="module")(_support.shared_app)
module_loop = pytest.mark.asyncio(loop_scope="module")

RATED_TEN = [13908, 18016, 49846]  # the three films rated exactly 10.0, by id


def _b64(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _cursor(obj: Any) -> str:
    return _b64(json.dumps(obj))


async def _ids(pool: asyncpg.Pool, sql: str, *args: Any) -> list[int]:
    return [r["movie_id"] for r in await pool.fetch(sql, *args)]


# --------------------------------------------------------------------------- one movie


@module_loop
@pytest.mark.parametrize("movie_id", [1, 2, 13908, 18016, 46269, 1634, TOTAL_MOVIES])
async def test_get_movie_returns_the_row(shared_app: SharedApp, movie_id: int) -> None:
    record = await shared_app.pool.fetchrow(
        f"SELECT {MOVIE_COLUMNS} FROM myapi.movies WHERE movie_id = $1",
        movie_id,
    )
    assert record is not None
    response = await shared_app.client.get(f"/movies/{movie_id}", headers=shared_app.bearer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == movie_json(record)


@module_loop
async def test_get_movie_rated_ten(shared_app: SharedApp) -> None:
    response = await shared_app.client.get("/movies/13908", headers=shared_app.bearer)
    assert response.status_code == 200
    body = response.json()
    assert body["movie_id"] == 13908
    assert body["title"] == "Dimensia Minds Trilogy: The Hope Factor"
    assert body["released"] == 2004
    assert body["rating"] == 10.0
    assert type(body["rating"]) is float  # a JSON number, not "10.0"
    assert '"rating":10.0' in response.text
    assert isinstance(body["genres"], list)
    assert body["genres"] == ["Short"]
    assert body["budget"] is None  # NA in the IMDb file
    assert body["mpaa"] is None


@module_loop
async def test_get_movie_title_with_dollar(shared_app: SharedApp) -> None:
    response = await shared_app.client.get("/movies/1", headers=shared_app.bearer)
    assert response.status_code == 200
    assert response.json()["title"] == "$"


@module_loop
async def test_get_movie_budget_null_and_known(shared_app: SharedApp) -> None:
    pool, client, bearer = shared_app.pool, shared_app.client, shared_app.bearer
    without = await pool.fetchval(
        "SELECT min(movie_id) FROM myapi.movies WHERE budget IS NULL AND genres <> '{}'"
    )
    with_budget = await pool.fetchrow(
        "SELECT movie_id, budget FROM myapi.movies WHERE budget IS NOT NULL "
        "ORDER BY movie_id LIMIT 1"
    )
    assert with_budget is not None
    body = (await client.get(f"/movies/{without}", headers=bearer)).json()
    assert body["budget"] is None
    assert isinstance(body["genres"], list)
    assert body["genres"]
    body = (await client.get(f"/movies/{with_budget['movie_id']}", headers=bearer)).json()
    assert body["budget"] == with_budget["budget"]
    assert type(body["budget"]) is int


@module_loop
async def test_get_movie_empty_genres_is_empty_list(shared_app: SharedApp) -> None:
    movie_id = await shared_app.pool.fetchval(
        "SELECT min(movie_id) FROM myapi.movies WHERE genres = '{}'"
    )
    response = await shared_app.client.get(f"/movies/{movie_id}", headers=shared_app.bearer)
    assert response.json()["genres"] == []


@module_loop
async def test_get_missing_movie_is_404_problem(shared_app: SharedApp) -> None:
    missing = await shared_app.pool.fetchval("SELECT max(movie_id) + 1 FROM myapi.movies")
    assert missing == TOTAL_MOVIES + 1
    response = await shared_app.client.get(f"/movies/{missing}", headers=shared_app.bearer)
    body = assert_problem(response, 404, "movie_not_found")
    assert body == {
        "type": "urn:myapi:problem:movie_not_found",
        "title": "Movie not found",
        "status": 404,
        "detail": f"No movie has the id {missing}.",
        "code": "movie_not_found",
    }


# --------------------------------------------------------------------------- GET /movies


@module_loop
async def test_list_default_limit_is_20(shared_app: SharedApp) -> None:
    response = await shared_app.client.get("/movies", headers=shared_app.bearer)
    assert response.status_code == 200
    body = response.json()
    records = await shared_app.pool.fetch(
        f"SELECT {MOVIE_COLUMNS} FROM myapi.movies ORDER BY movie_id LIMIT 20"
    )
    assert body["items"] == [movie_json(r) for r in records]
    assert isinstance(body["next_cursor"], str)
    assert body["next_cursor"]


@module_loop
@pytest.mark.parametrize("limit", [1, 2, 57, 99, 100])
async def test_list_limit(shared_app: SharedApp, limit: int) -> None:
    response = await shared_app.client.get(
        "/movies", params={"limit": limit}, headers=shared_app.bearer
    )
    assert response.status_code == 200
    ids = [m["movie_id"] for m in response.json()["items"]]
    assert ids == await _ids(
        shared_app.pool, "SELECT movie_id FROM myapi.movies ORDER BY movie_id LIMIT $1", limit
    )


TITLE_NEEDLES = [
    "love",
    "LOVE",
    "lOvE",
    "alice in wonderland",
    "$",
    ",",
    "'",
    "*",
    "&",
    ": the",
    # LIKE wildcards and the escape character are literal: no title holds them.
    "%",
    "_",
    "\\",
    "%love%",
    "l_ve",
    "\\%",
]


@module_loop
@pytest.mark.parametrize("needle", TITLE_NEEDLES)
async def test_title_is_a_literal_case_insensitive_contains(
    shared_app: SharedApp, needle: str
) -> None:
    expected = await _ids(
        shared_app.pool,
        "SELECT movie_id FROM myapi.movies WHERE strpos(lower(title), lower($1)) > 0 "
        "ORDER BY movie_id",
        needle,
    )
    got = await walk(shared_app.client, shared_app.bearer, {"title": needle, "limit": 100})
    assert got == expected


@module_loop
async def test_title_facts(shared_app: SharedApp) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    alice = await walk(client, bearer, {"title": "Alice in Wonderland", "limit": 100})
    exact = await _ids(
        shared_app.pool,
        "SELECT movie_id FROM myapi.movies WHERE title = 'Alice in Wonderland' ORDER BY 1",
    )
    assert len(exact) == 7
    assert set(exact) <= set(alice)
    assert await walk(client, bearer, {"title": "%", "limit": 100}) == []
    assert await walk(client, bearer, {"title": "_", "limit": 100}) == []
    dollar = await walk(client, bearer, {"title": "$", "limit": 100})
    assert dollar[0] == 1
    assert len(dollar) == 17


# Titles with the characters LIKE treats specially, inserted for one test each.
WILDCARD_TITLES = ["100% Pure", "Plan_9 Redux", "Back\\slash Story", "Fifty%_Fifty"]
WILDCARD_CASES: list[tuple[str, set[str]]] = [
    ("%", {"100% Pure", "Fifty%_Fifty"}),
    ("_", {"Plan_9 Redux", "Fifty%_Fifty"}),
    ("\\", {"Back\\slash Story"}),
    ("n_9", {"Plan_9 Redux"}),  # not "Plan 9 from Outer Space"
    ("% P", {"100% Pure"}),
    ("%_", {"Fifty%_Fifty"}),
    ("\\S", {"Back\\slash Story"}),
    ("\\%", set()),
    ("0%p", set()),
]


@pytest.mark.parametrize(("needle", "titles"), WILDCARD_CASES)
async def test_title_wildcards_match_literally(
    client: httpx.AsyncClient,
    bearer: dict[str, str],
    pool: asyncpg.Pool,
    needle: str,
    titles: set[str],
) -> None:
    await pool.executemany(
        "INSERT INTO myapi.movies (title, released, rating) VALUES ($1, 2000, 5.0)",
        [(t,) for t in WILDCARD_TITLES],
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM myapi.movies WHERE title ILIKE 'Plan 9 %'") >= 1
    )
    expected = await pool.fetch(
        "SELECT movie_id, title FROM myapi.movies WHERE strpos(lower(title), lower($1)) > 0 "
        "ORDER BY movie_id",
        needle,
    )
    assert {r["title"] for r in expected} == titles
    response = await client.get("/movies", params={"title": needle, "limit": 100}, headers=bearer)
    assert response.status_code == 200
    body = response.json()
    assert [m["movie_id"] for m in body["items"]] == [r["movie_id"] for r in expected]
    assert {m["title"] for m in body["items"]} == titles
    assert body["next_cursor"] is None


FILTER_CASES: list[tuple[int | None, int | None, str | None]] = [
    # (released_from, released_to, min_rating)
    (None, 1900, None),
    (1893, 1893, None),
    (2005, None, "9"),
    (1950, 1950, "8.5"),
    (1994, 1995, "8.75"),
    (None, None, "9.8"),
    (None, None, "9.95"),
    (None, None, "10"),
    (2000, 1999, None),
    (2005, 2005, "0"),
    (None, 1920, "7.5"),
]


@module_loop
@pytest.mark.parametrize(("released_from", "released_to", "min_rating"), FILTER_CASES)
async def test_filters_match_sql(
    shared_app: SharedApp,
    released_from: int | None,
    released_to: int | None,
    min_rating: str | None,
) -> None:
    expected = await _ids(
        shared_app.pool,
        "SELECT movie_id FROM myapi.movies "
        "WHERE ($1::int IS NULL OR released >= $1) AND ($2::int IS NULL OR released <= $2) "
        "AND ($3::numeric IS NULL OR rating >= $3) ORDER BY movie_id",
        released_from,
        released_to,
        None if min_rating is None else Decimal(min_rating),
    )
    params: dict[str, str | int] = {"limit": 100}
    if released_from is not None:
        params["released_from"] = released_from
    if released_to is not None:
        params["released_to"] = released_to
    if min_rating is not None:
        params["min_rating"] = min_rating
    assert await walk(shared_app.client, shared_app.bearer, params) == expected


@module_loop
@pytest.mark.parametrize("min_rating", ["9.95", "10", "10.0", "10.00"])
async def test_min_rating_ten_is_the_three_perfect_films(
    shared_app: SharedApp, min_rating: str
) -> None:
    got = await walk(shared_app.client, shared_app.bearer, {"min_rating": min_rating, "limit": 100})
    assert got == RATED_TEN


SORTS = [
    "movie_id",
    "-movie_id",
    "title",
    "-title",
    "released",
    "-released",
    "rating",
    "-rating",
    "votes",
    "-votes",
    "-rating,title",
    "released,-votes",
    "rating,-title",
    "-released,rating,-votes",
    "votes,-movie_id",
    "movie_id,title",
    " -rating , title ",
]


@module_loop
@pytest.mark.parametrize("sort", SORTS)
async def test_sort_first_two_pages_match_sql_order(shared_app: SharedApp, sort: str) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    expected = await shared_app.pool.fetch(
        f"SELECT {MOVIE_COLUMNS} FROM myapi.movies ORDER BY {order_by(sort)} LIMIT 200"
    )
    first = await client.get("/movies", params={"sort": sort, "limit": 100}, headers=bearer)
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await client.get(
        "/movies", params={"sort": sort, "limit": 100, "cursor": cursor}, headers=bearer
    )
    assert second.status_code == 200, second.text
    items = first.json()["items"] + second.json()["items"]
    assert items == [movie_json(r) for r in expected]


@module_loop
async def test_sort_ties_break_by_id_in_direction_of_last_key(shared_app: SharedApp) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    desc = await client.get("/movies", params={"sort": "-rating", "limit": 3}, headers=bearer)
    assert [m["movie_id"] for m in desc.json()["items"]] == RATED_TEN[::-1]
    tie_asc = await client.get(
        "/movies", params={"sort": "-rating,title", "limit": 3}, headers=bearer
    )
    assert [m["title"] for m in tie_asc.json()["items"]] == [
        "Dimensia Minds Trilogy: The Hope Factor",
        "Fishing for Love",
        "Summer Sonata, A",
    ]


# Full keyset walks: every one of the 58,788 movies exactly once, in SQL's order.
@module_loop
@pytest.mark.parametrize(
    "sort", ["movie_id", "-rating", "title", "released,-votes", "budget", "-budget"]
)
async def test_keyset_walk_yields_every_movie_once(shared_app: SharedApp, sort: str) -> None:
    expected = await _ids(
        shared_app.pool,
        f"SELECT movie_id FROM myapi.movies ORDER BY {order_by(sort)}",
    )
    got = await walk(shared_app.client, shared_app.bearer, {"sort": sort, "limit": 100})
    assert len(got) == TOTAL_MOVIES
    assert len(set(got)) == TOTAL_MOVIES
    assert got == expected


FILTERED_WALKS: list[dict[str, str | int]] = [
    # Most budgets are NULL: pages cross from numbers into NULLs (and back, descending).
    {"title": "star", "sort": "budget", "limit": 7},
    {"title": "star", "sort": "-budget", "limit": 7},
    {"title": "love", "sort": "-budget,title", "limit": 9},
    {"released_from": 2000, "sort": "-length_minutes,budget", "limit": 100},
    {"title": "love", "sort": "-rating,title", "limit": 25},
    {"title": "Alice in Wonderland", "sort": "released", "limit": 2},
    {"released_from": 1990, "min_rating": "8", "sort": "released,-votes", "limit": 50},
    {"title": "the", "released_to": 1930, "sort": "-votes", "limit": 100},
    {"title": "'", "min_rating": "7", "sort": "title,-released", "limit": 33},
]


@module_loop
@pytest.mark.parametrize("params", FILTERED_WALKS)
async def test_filtered_keyset_walk_equals_sql(
    shared_app: SharedApp, params: dict[str, str | int]
) -> None:
    title = params.get("title")
    min_rating = params.get("min_rating")
    expected = await _ids(
        shared_app.pool,
        "SELECT movie_id FROM myapi.movies "
        "WHERE ($1::text IS NULL OR strpos(lower(title), lower($1)) > 0) "
        "AND ($2::int IS NULL OR released >= $2) AND ($3::int IS NULL OR released <= $3) "
        "AND ($4::numeric IS NULL OR rating >= $4) "
        f"ORDER BY {order_by(str(params['sort']))}",
        title,
        params.get("released_from"),
        params.get("released_to"),
        None if min_rating is None else Decimal(str(min_rating)),
    )
    assert expected  # each case matches something
    got = await walk(shared_app.client, shared_app.bearer, params)
    assert got == expected
    assert len(set(got)) == len(got)


@module_loop
@pytest.mark.parametrize("limit", [17, 100])
async def test_last_page_has_no_next_cursor(shared_app: SharedApp, limit: int) -> None:
    # 17 titles hold "$": a page of exactly 17 is the last one.
    response = await shared_app.client.get(
        "/movies", params={"title": "$", "limit": limit}, headers=shared_app.bearer
    )
    body = response.json()
    assert len(body["items"]) == 17
    assert body["next_cursor"] is None


@module_loop
async def test_cursor_survives_a_limit_change(shared_app: SharedApp) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    first = await client.get("/movies", params={"sort": "-rating", "limit": 2}, headers=bearer)
    cursor = first.json()["next_cursor"]
    rest = await client.get(
        "/movies", params={"sort": "-rating", "limit": 5, "cursor": cursor}, headers=bearer
    )
    expected = await _ids(
        shared_app.pool,
        "SELECT movie_id FROM myapi.movies ORDER BY rating DESC, movie_id DESC LIMIT 7",
    )
    got = [m["movie_id"] for m in first.json()["items"] + rest.json()["items"]]
    assert got == expected


# --------------------------------------------------------------------------- cursors

# Cursors a client might forge: each is refused with 400 invalid_cursor, never a 500.
BAD_CURSORS: list[tuple[str, str, str]] = [
    # (id, sort, cursor)
    ("random-base64", "movie_id", _b64(bytes(range(7, 55)))),
    ("not-base64", "movie_id", "!!!not*base64!!!"),
    ("one-char", "movie_id", "a"),
    ("non-utf8", "movie_id", _b64(b"\xff\xfe\xfa\x00")),
    ("json-list", "movie_id", _cursor([1, 2])),
    ("json-string", "movie_id", _cursor("movie_id")),
    ("json-number", "movie_id", _cursor(5)),
    ("json-null", "movie_id", _cursor(None)),
    ("empty-object", "movie_id", _cursor({})),
    ("missing-values", "movie_id", _cursor({"s": "movie_id"})),
    ("missing-sort", "movie_id", _cursor({"v": [1]})),
    ("other-sort", "title", _cursor({"s": "movie_id", "v": [5]})),
    ("other-direction", "rating", _cursor({"s": "-rating,-movie_id", "v": ["9.0", 5]})),
    ("sort-not-string", "movie_id", _cursor({"s": ["movie_id"], "v": [5]})),
    ("values-not-list", "movie_id", _cursor({"s": "movie_id", "v": 5})),
    ("too-few-values", "title", _cursor({"s": "title,movie_id", "v": ["A"]})),
    ("too-many-values", "movie_id", _cursor({"s": "movie_id", "v": [1, 2]})),
    ("id-as-string", "movie_id", _cursor({"s": "movie_id", "v": ["5"]})),
    ("id-as-float", "movie_id", _cursor({"s": "movie_id", "v": [5.0]})),
    ("id-as-bool", "movie_id", _cursor({"s": "movie_id", "v": [True]})),
    ("id-null", "movie_id", _cursor({"s": "movie_id", "v": [None]})),
    ("id-list", "movie_id", _cursor({"s": "movie_id", "v": [[1]]})),
    ("id-object", "movie_id", _cursor({"s": "movie_id", "v": [{"a": 1}]})),
    ("id-nan", "movie_id", _b64('{"s":"movie_id","v":[NaN]}')),
    ("id-2^31", "movie_id", _cursor({"s": "movie_id", "v": [2**31]})),
    ("id-below-int4", "movie_id", _cursor({"s": "movie_id", "v": [-(2**31) - 1]})),
    ("id-1000-digits", "movie_id", _cursor({"s": "movie_id", "v": [10**999]})),
    ("id-1e999", "movie_id", _b64('{"s":"movie_id","v":[1e999]}')),
    ("released-overflow", "released", _cursor({"s": "released,movie_id", "v": [40000, 1]})),
    ("votes-2^31", "votes", _cursor({"s": "votes,movie_id", "v": [2**31, 1]})),
    ("title-as-number", "title", _cursor({"s": "title,movie_id", "v": [5, 1]})),
    ("title-with-nul", "title", _cursor({"s": "title,movie_id", "v": ["a\x00b", 1]})),
    ("rating-as-float", "-rating", _cursor({"s": "-rating,-movie_id", "v": [9.5, 1]})),
    ("rating-as-int", "-rating", _cursor({"s": "-rating,-movie_id", "v": [9, 1]})),
    ("rating-not-number", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["abc", 1]})),
    ("rating-11", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["11", 1]})),
    ("rating-negative", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["-1", 1]})),
    ("rating-nan", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["NaN", 1]})),
    ("rating-infinity", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["Infinity", 1]})),
    ("rating-1e999", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["1e999", 1]})),
    # In range by value but not representable as a PostgreSQL numeric.
    ("rating-1e-20000", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["1E-20000", 1]})),
    ("rating-0e+huge", "-rating", _cursor({"s": "-rating,-movie_id", "v": ["0E+99999999999", 1]})),
    # A lone UTF-16 surrogate: valid JSON, not encodable as UTF-8 for PostgreSQL.
    ("title-lone-surrogate", "title", _b64('{"s":"title,movie_id","v":["\\ud800",1]}')),
    # Nesting deeper than Python's recursion limit, still under the 2000-character cap.
    ("deeply-nested", "movie_id", _b64("[" * 1400)),
]


@module_loop
@pytest.mark.parametrize(
    ("sort", "cursor"), [c[1:] for c in BAD_CURSORS], ids=[c[0] for c in BAD_CURSORS]
)
async def test_forged_cursor_is_400_invalid_cursor(
    shared_app: SharedApp, sort: str, cursor: str
) -> None:
    assert len(cursor) <= 2000
    response = await shared_app.client.get(
        "/movies", params={"sort": sort, "cursor": cursor}, headers=shared_app.bearer
    )
    assert_problem(response, 400, "invalid_cursor")


def _flip_case(text: str) -> str:
    return text.swapcase()


def _truncate(text: str) -> str:
    return text[:-6]


def _flip_one(text: str) -> str:
    # The 9th character lies inside the sort name ('"s":"-rating…').
    return text[:8] + ("A" if text[8] != "A" else "B") + text[9:]


@module_loop
@pytest.mark.parametrize("tamper", [_flip_case, _truncate, _flip_one])
async def test_tampered_real_cursor_is_400(shared_app: SharedApp, tamper: Any) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    page = await client.get("/movies", params={"sort": "-rating", "limit": 2}, headers=bearer)
    cursor = page.json()["next_cursor"]
    assert isinstance(cursor, str)
    forged = tamper(cursor)
    assert forged != cursor
    response = await client.get(
        "/movies", params={"sort": "-rating", "cursor": forged}, headers=bearer
    )
    assert_problem(response, 400, "invalid_cursor")


@module_loop
@pytest.mark.parametrize(
    ("issued_for", "used_with"),
    [
        ("-rating", "rating"),
        ("-rating", "title"),
        ("title", "-title"),
        ("released,-votes", "released,votes"),
        ("movie_id", "-movie_id"),
    ],
)
async def test_cursor_from_another_sort_is_400(
    shared_app: SharedApp, issued_for: str, used_with: str
) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    page = await client.get("/movies", params={"sort": issued_for, "limit": 3}, headers=bearer)
    cursor = page.json()["next_cursor"]
    response = await client.get(
        "/movies", params={"sort": used_with, "cursor": cursor}, headers=bearer
    )
    assert_problem(response, 400, "invalid_cursor")


# --------------------------------------------------------------------------- /movies/top

TOP_CASES: list[tuple[dict[str, int], int, int]] = [
    # (query, min_votes, limit)
    ({}, 1000, 20),
    ({"min_votes": 0, "limit": 5}, 0, 5),
    ({"min_votes": 100_000, "limit": 100}, 100_000, 100),
    ({"min_votes": 50_000, "limit": 7}, 50_000, 7),
    ({"min_votes": 10_000, "limit": 1}, 10_000, 1),
    ({"min_votes": 2**31 - 1}, 2**31 - 1, 20),
]


@module_loop
@pytest.mark.parametrize(("query", "min_votes", "limit"), TOP_CASES)
async def test_top_rated_matches_function_and_plain_sql(
    shared_app: SharedApp, query: dict[str, int], min_votes: int, limit: int
) -> None:
    pool = shared_app.pool
    via_function = await pool.fetch(
        f"SELECT {MOVIE_COLUMNS} FROM myapi.top_rated_movies($1, $2) "
        "ORDER BY rating DESC, votes DESC, movie_id",
        min_votes,
        limit,
    )
    independent = await pool.fetch(
        f"SELECT {MOVIE_COLUMNS} FROM myapi.movies WHERE votes >= $1 "
        "ORDER BY rating DESC, votes DESC, movie_id LIMIT $2",
        min_votes,
        limit,
    )
    assert via_function == independent
    response = await shared_app.client.get("/movies/top", params=query, headers=shared_app.bearer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items"}
    assert body["items"] == [movie_json(r) for r in independent]
    assert all(m["votes"] >= min_votes for m in body["items"])
    assert len(body["items"]) == min(limit, len(independent))


@module_loop
async def test_top_rated_facts(shared_app: SharedApp) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    # The three 10.0 films all have 5 votes: ties by id.
    ten = await client.get("/movies/top", params={"min_votes": 0, "limit": 3}, headers=bearer)
    assert [m["movie_id"] for m in ten.json()["items"]] == RATED_TEN
    # The default min_votes is 1000 and the default limit 20.
    default = (await client.get("/movies/top", headers=bearer)).json()["items"]
    assert len(default) == 20
    assert all(m["votes"] >= 1000 for m in default)
    assert default[0]["title"] == "Shawshank Redemption, The"
    keys = [(-m["rating"], -m["votes"], m["movie_id"]) for m in default]
    assert keys == sorted(keys)


RELEASED_CASES: list[tuple[dict[str, str | int], int, str, int]] = [
    # (query, year, min_rating, limit)
    ({"year": 2004}, 2004, "0", 20),
    ({"year": 2004, "min_rating": "8", "limit": 100}, 2004, "8", 100),
    ({"year": 1990, "min_rating": "9.5", "limit": 50}, 1990, "9.5", 50),
    ({"year": 2005, "limit": 5}, 2005, "0", 5),
    ({"year": 0, "min_rating": "10", "limit": 100}, 0, "10", 100),
    ({"year": 1893, "min_rating": "9.99", "limit": 100}, 1893, "9.99", 100),
    ({"year": 2006}, 2006, "0", 20),
    ({"year": 9999, "min_rating": "0"}, 9999, "0", 20),
]


@module_loop
@pytest.mark.parametrize(("query", "year", "min_rating", "limit"), RELEASED_CASES)
async def test_released_since_matches_function_and_plain_sql(
    shared_app: SharedApp,
    query: dict[str, str | int],
    year: int,
    min_rating: str,
    limit: int,
) -> None:
    pool = shared_app.pool
    via_function = await pool.fetch(
        f"SELECT {MOVIE_COLUMNS} FROM myapi.movies_released_since($1, $2) "
        "ORDER BY released DESC, rating DESC, movie_id LIMIT $3",
        year,
        Decimal(min_rating),
        limit,
    )
    independent = await pool.fetch(
        f"SELECT {MOVIE_COLUMNS} FROM myapi.movies "
        "WHERE released >= $1 AND rating >= $2 "
        "ORDER BY released DESC, rating DESC, movie_id LIMIT $3",
        year,
        Decimal(min_rating),
        limit,
    )
    assert via_function == independent
    response = await shared_app.client.get(
        "/movies/released-since", params=query, headers=shared_app.bearer
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"items"}
    assert body["items"] == [movie_json(r) for r in independent]
    years = [m["released"] for m in body["items"]]
    assert years == sorted(years, reverse=True)  # newest first
    assert all(m["released"] >= year for m in body["items"])
    assert all(m["rating"] >= float(min_rating) for m in body["items"])


@module_loop
async def test_released_since_facts(shared_app: SharedApp) -> None:
    client, bearer = shared_app.client, shared_app.bearer
    ten = await client.get(
        "/movies/released-since", params={"year": 0, "min_rating": "10"}, headers=bearer
    )
    items = ten.json()["items"]
    assert sorted(m["movie_id"] for m in items) == RATED_TEN
    assert {m["rating"] for m in items} == {10.0}
    first = (
        await client.get(
            "/movies/released-since", params={"year": 2004, "limit": 2}, headers=bearer
        )
    ).json()["items"]
    assert [m["released"] for m in first] == [2005, 2005]
    assert first[0]["rating"] >= first[1]["rating"]


# Signed cursors: any edit, or carrying one over to other filters, is a 400.
async def _first_cursor(client: httpx.AsyncClient, bearer: dict[str, str], **params: Any) -> str:
    response = await client.get("/movies", params={"limit": 2, **params}, headers=bearer)
    cursor = response.json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


async def test_cursor_with_edited_values_is_refused(
    client: httpx.AsyncClient, bearer: dict[str, str]
) -> None:
    cursor = await _first_cursor(client, bearer, sort="-rating,title")
    body, mac = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["v"] = ["5.0", "A", 1]
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    response = await client.get(
        "/movies", params={"sort": "-rating,title", "cursor": f"{edited}.{mac}"}, headers=bearer
    )
    problem = assert_problem(response, 400, "invalid_cursor")
    assert "altered" in problem["detail"]


async def test_cursor_is_tied_to_its_filters(
    client: httpx.AsyncClient, bearer: dict[str, str]
) -> None:
    cursor = await _first_cursor(client, bearer, title="love")
    same = await client.get(
        "/movies", params={"title": "love", "limit": 2, "cursor": cursor}, headers=bearer
    )
    assert same.status_code == 200
    other = await client.get(
        "/movies", params={"title": "alice", "limit": 2, "cursor": cursor}, headers=bearer
    )
    assert_problem(other, 400, "invalid_cursor")
