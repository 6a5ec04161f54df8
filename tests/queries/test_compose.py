"""Snapshots of the SQL that the keyset list composer generates, and its refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

import queries.movies as q
from queries._compose import SortKey, UnknownField, escape_like

BASE = q.list_movies.base.sql
COLUMNS = (
    '"q"."movie_id","q"."title","q"."released","q"."rating","q"."votes",'
    '"q"."length_minutes","q"."budget","q"."mpaa","q"."genres"'
)


def _build(**kwargs: object) -> tuple[str, list[object]]:
    defaults: dict[str, object] = {
        "base_args": [],
        "filters": {},
        "sort": q.list_movies.sort_keys("movie_id"),
        "after": None,
        "limit": 21,
    }
    defaults.update(kwargs)
    return q.list_movies.build(**defaults)  # type: ignore[arg-type]


def test_first_page_without_filters() -> None:
    sql, args = _build()
    assert sql == (f'SELECT {COLUMNS} FROM (\n{BASE}\n) "q" ORDER BY "q"."movie_id" ASC LIMIT $1')
    assert args == [21]


def test_filters_become_bound_parameters_in_declaration_order() -> None:
    sql, args = _build(
        filters={
            "title": "50%_off\\",
            "released_from": 1990,
            "released_to": None,
            "min_rating": Decimal("7.5"),
        },
        sort=q.list_movies.sort_keys("-rating"),
    )
    assert sql == (
        f'SELECT {COLUMNS} FROM (\n{BASE}\n) "q" '
        'WHERE "q"."title" ILIKE $1 AND "q"."released">=$2 AND "q"."rating">=$3 '
        'ORDER BY "q"."rating" DESC,"q"."movie_id" DESC LIMIT $4'
    )
    assert args == ["%50\\%\\_off\\\\%", 1990, Decimal("7.5"), 21]


def test_one_direction_keyset_uses_a_row_comparison() -> None:
    sql, args = _build(sort=q.list_movies.sort_keys("-votes"), after=[100, 7])
    assert '("q"."votes","q"."movie_id")<($1,$2)' in sql
    assert sql.endswith('ORDER BY "q"."votes" DESC,"q"."movie_id" DESC LIMIT $3')
    assert args == [100, 7, 21]


def test_mixed_directions_expand_the_keyset_predicate() -> None:
    keys = q.list_movies.sort_keys("-rating,title")
    assert keys == (
        SortKey("rating", True),
        SortKey("title", False),
        SortKey("movie_id", False),
    )
    sql, args = _build(
        filters={"title": "a", "released_from": 1990},
        sort=keys,
        after=[Decimal("8.1"), "Alien", 5],
    )
    assert sql == (
        f'SELECT {COLUMNS} FROM (\n{BASE}\n) "q" '
        'WHERE "q"."title" ILIKE $1 AND "q"."released">=$2 AND "q"."rating"<=$3 AND ('
        '"q"."rating"<$3 OR ("q"."rating"=$3 AND "q"."title">$4) OR '
        '("q"."rating"=$3 AND "q"."title"=$4 AND "q"."movie_id">$5)) '
        'ORDER BY "q"."rating" DESC,"q"."title" ASC,"q"."movie_id" ASC LIMIT $6'
    )
    assert args == ["%a%", 1990, Decimal("8.1"), "Alien", 5, 21]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mpaa", "unknown sort field 'mpaa'"),
        ("-title,nope", "unknown sort field 'nope'"),
        ("", "empty sort field; allowed: movie_id, title, released, rating, votes"),
        ("rating,", "empty sort field"),
        ("title,-title", "sort field '-title' appears twice"),
        ("rating;DROP TABLE x", "unknown sort field 'rating;DROP TABLE x'"),
    ],
)
def test_unknown_sort_fields_are_refused(spec: str, message: str) -> None:
    with pytest.raises(UnknownField, match=message):
        q.list_movies.sort_keys(spec)


def _wheres(sql: str) -> list[str]:
    """The WHERE clause of each branch of a composed page, in order."""
    return [part.split(" ORDER BY ")[0] for part in sql.split(' "q" WHERE ')[1:]]


@pytest.mark.parametrize(
    ("spec", "after", "wheres"),
    [
        # Ascending, NULLs last: the rest of the numbers, then every NULL (two runs).
        (
            "budget",
            [100, 5],
            [
                '"q"."budget">=$1 AND ("q"."budget","q"."movie_id")>($1,$2)',
                '"q"."budget" IS NULL',
            ],
        ),
        # Past a NULL, ascending: only NULLs with a bigger id.
        (
            "budget",
            [None, 5],
            ['"q"."budget" IS NULL AND "q"."budget" IS NULL AND "q"."movie_id">$1'],
        ),
        # Descending, NULLs first: the rest of the NULLs, then every number (two runs).
        (
            "-budget",
            [None, 5],
            [
                '"q"."budget" IS NULL AND "q"."budget" IS NULL AND "q"."movie_id"<$1',
                'NOT "q"."budget" IS NULL',
            ],
        ),
        (
            "-budget",
            [100, 5],
            ['("q"."budget","q"."movie_id")<($1,$2)'],
        ),
        # Mixed directions after a nullable first column: the expanded predicate.
        (
            "length_minutes,-rating",
            [90, Decimal("7.0"), 3],
            [
                '"q"."length_minutes">=$1 AND ("q"."length_minutes">$1 OR '
                '("q"."length_minutes"=$1 AND "q"."rating"<$2) OR '
                '("q"."length_minutes"=$1 AND "q"."rating"=$2 AND "q"."movie_id"<$3))',
                '"q"."length_minutes" IS NULL',
            ],
        ),
    ],
)
def test_keyset_over_a_nullable_column(spec: str, after: list[object], wheres: list[str]) -> None:
    sql, args = _build(sort=q.list_movies.sort_keys(spec), after=after)
    assert _wheres(sql) == wheres
    assert None not in args  # NULL is spelled IS NULL, never bound
    if len(wheres) == 2:
        # Two index-ordered runs of at most a page each, merged and cut to one page.
        assert sql.startswith("(SELECT ")
        assert ") UNION ALL (SELECT " in sql
        assert sql.endswith(f"LIMIT ${len(args)}")


def test_unknown_filter_is_refused() -> None:
    with pytest.raises(UnknownField, match="unknown filter field 'budget'"):
        _build(filters={"budget": 5})


def test_explicit_key_in_sort_is_not_repeated() -> None:
    assert q.list_movies.sort_keys("-movie_id") == (SortKey("movie_id", True),)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("plain", "plain"), ("100%", "100\\%"), ("a_b", "a\\_b"), ("back\\slash", "back\\\\slash")],
)
def test_like_escaping(text: str, pattern: str) -> None:
    assert escape_like(text) == pattern


async def test_tvf_base_with_mixed_case_names_composes(database: str) -> None:
    """A base selecting from a schema-qualified, mixed-case table-valued function."""
    import asyncpg

    from queries._compose import Filter, Listing, Op
    from queries._sqlfile import scan

    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            """
            CREATE SCHEMA "Reports";
            CREATE FUNCTION "Reports"."TopRated"(min_votes integer)
            RETURNS SETOF myapi.movies LANGUAGE sql STABLE
            AS $$ SELECT * FROM myapi.movies WHERE votes >= min_votes $$;
            """
        )
        base = scan(
            'SELECT movie_id, title, rating FROM "Reports"."TopRated"(:min_votes) -- DBA note',
            source="reports.sql",
        )
        listing = Listing(
            base=base,
            columns=("movie_id", "title", "rating"),
            filters={"min_rating": Filter("rating", Op.GE)},
            sortable=("movie_id", "rating"),
            key="movie_id",
        )
        keys = listing.sort_keys("-rating")
        sql, args = listing.build(
            base_args=[100_000], filters={"min_rating": 9}, sort=keys, after=None, limit=2
        )
        assert '"Reports"."TopRated"($1)' in sql
        assert args == [100_000, 9, 2]
        rows = await conn.fetch(sql, *args)
        assert [r["title"] for r in rows] == [
            "Shawshank Redemption, The",
            "Godfather, The",
        ]
        after = [rows[-1]["rating"], rows[-1]["movie_id"]]
        sql, args = listing.build(base_args=[100_000], filters={}, sort=keys, after=after, limit=1)
        assert [r["title"] for r in await conn.fetch(sql, *args)] == [
            "Lord of the Rings: The Return of the King, The"
        ]
    finally:
        await conn.close()


def test_a_shape_is_composed_once_and_takes_each_requests_values() -> None:
    """The SQL of a shape is kept; the values are bound afresh on every build."""
    q.list_movies._shapes.clear()
    sort = q.list_movies.sort_keys("-rating")
    first_sql, first_args = _build(filters={"title": "a%", "min_rating": None}, sort=sort)
    again_sql, again_args = _build(filters={"title": "b_c", "min_rating": None}, sort=sort)
    assert again_sql == first_sql
    assert (first_args, again_args) == (["%a\\%%", 21], ["%b\\_c%", 21])
    assert len(q.list_movies._shapes) == 1
    # Another filter, another sort or a cursor with a NULL where there was a value: new shapes.
    _build(filters={"title": "a", "min_rating": Decimal(7)}, sort=sort)
    _build(filters={"title": "a"}, sort=q.list_movies.sort_keys("title"))
    budget = q.list_movies.sort_keys("budget")
    with_value = _build(sort=budget, after=[100, 7])
    with_null = _build(sort=budget, after=[None, 7])
    assert with_value[0] != with_null[0]
    assert (with_value[1], with_null[1]) == ([100, 7, 21], [7, 21])
    assert len(q.list_movies._shapes) == 5


def test_the_kept_shapes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import queries._compose as compose

    monkeypatch.setattr(compose, "MAX_SHAPES", 3)
    q.list_movies._shapes.clear()
    for spec in ("title", "-title", "votes", "-votes", "rating"):
        _build(sort=q.list_movies.sort_keys(spec))
    assert len(q.list_movies._shapes) == 3
    # The newest are kept, and a forgotten shape composes again, alike.
    assert _build(sort=q.list_movies.sort_keys("title"))[0].endswith(
        'ORDER BY "q"."title" ASC,"q"."movie_id" ASC LIMIT $1'
    )


def test_an_unknown_filter_is_refused_even_after_its_neighbours_are_kept() -> None:
    _build(filters={"title": "x"})
    with pytest.raises(UnknownField, match="unknown filter field 'genre'"):
        _build(filters={"title": "x", "genre": "Drama"})
