"""Declarations of the movies queries (queries/sql/movies/*.sql) and their row shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ._compose import Filter, Listing, Op
from ._declare import SqlDir


class MovieRow(BaseModel):
    """One row of myapi.movies as every movie query returns it; also the API's movie."""

    model_config = ConfigDict(frozen=True)

    movie_id: int
    title: str
    released: int = Field(description="Year of release")
    rating: Annotated[float, Field(ge=0, le=10, description="IMDb user rating, 0 to 10")]
    votes: int
    length_minutes: int | None
    budget: int | None = Field(description="US dollars; null when unknown")
    mpaa: str | None = Field(description="MPAA rating (R, PG-13, PG, NC-17); null when unrated")
    genres: list[str]


SQL = SqlDir("movies")

get_movie = SQL.one("get_movie", row=MovieRow, params={"movie_id": int})

list_top_rated = SQL.many("list_top_rated", row=MovieRow, params={"min_votes": int, "lim": int})

list_released_since = SQL.many(
    "list_released_since",
    row=MovieRow,
    params={"year": int, "min_rating": Decimal, "lim": int},
)

count_movies = SQL.value("count_movies", kind=int, params={})

# GET /movies: the client's filters, sort and keyset page around a plain select.
list_movies = Listing(
    base=SQL.scanned("list_movies", params={}),
    columns=tuple(MovieRow.model_fields),
    filters={
        "title": Filter("title", Op.CONTAINS),
        "released_from": Filter("released", Op.GE),
        "released_to": Filter("released", Op.LE),
        "min_rating": Filter("rating", Op.GE),
    },
    sortable=("movie_id", "title", "released", "rating", "votes", "length_minutes", "budget"),
    key="movie_id",
    nullable=frozenset({"length_minutes", "budget"}),
)

# The bulk load: COPY into the staging table, then move rows in one transaction.
create_staging = SQL.exec("create_staging", params={})
upsert_staged = SQL.exec("upsert_staged", params={})
update_unkeyed = SQL.exec("update_unkeyed", params={})
insert_unkeyed = SQL.exec("insert_unkeyed", params={})
sync_movie_id_sequence = SQL.exec("sync_movie_id_sequence", params={})

STAGING_TABLE = "movies_staging"
STAGING_COLUMNS = (
    "line",
    "movie_id",
    "title",
    "released",
    "rating",
    "votes",
    "length_minutes",
    "budget",
    "mpaa",
    "genres",
)

SQL.verify()
