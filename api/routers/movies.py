"""The /movies endpoints: one movie, a filtered and paged list, and the table-valued functions."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.routers._deps import DatabaseDep, ReadMovies, RuntimeDep, strict_query
from api.schemas.movies import MovieOut, MoviesList, MoviesPage
from api.schemas.problems import problem_responses
from api.services import movies
from api.services.movies import MovieFilters

router = APIRouter(
    prefix="/movies", tags=["movies"], responses=problem_responses(401, 403, 422, 503)
)

# Bounds shared by the parameters below: what the columns can hold.
Year = Annotated[int, Query(ge=0, le=9999)]
Rating = Annotated[Decimal, Query(ge=0, le=10, max_digits=4, decimal_places=2)]
Limit = Annotated[int, Query(ge=1, le=100)]
NO_NUL = r"^[^\x00]*$"


@router.get("", responses=problem_responses(400), dependencies=[Depends(strict_query)])
async def list_movies(
    _: ReadMovies,
    db: DatabaseDep,
    runtime: RuntimeDep,
    title: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_NUL,
            description="Case-insensitive part of the title",
        ),
    ] = None,
    released_from: Annotated[int | None, Query(ge=0, le=9999)] = None,
    released_to: Annotated[int | None, Query(ge=0, le=9999)] = None,
    min_rating: Annotated[
        Decimal | None, Query(ge=0, le=10, max_digits=4, decimal_places=2)
    ] = None,
    sort: Annotated[
        str,
        Query(
            max_length=100,
            description="movie_id, title, released, rating, votes, length_minutes or budget "
            "(missing values sort last, or first when descending); "
            "a leading '-' sorts descending; comma-separated for several",
        ),
    ] = "movie_id",
    limit: Limit = 20,
    cursor: Annotated[
        str | None, Query(max_length=2000, description="next_cursor of the previous page")
    ] = None,
) -> MoviesPage:
    """Movies matching the filters, one keyset page at a time."""
    filters = MovieFilters(title, released_from, released_to, min_rating)
    page = await movies.find_movies(
        db, filters=filters, sort=sort, limit=limit, cursor=cursor, cursor_key=runtime.cursor_key
    )
    return MoviesPage(items=page.items, next_cursor=page.next_cursor)


@router.get("/top")
async def list_top_rated(
    _: ReadMovies,
    db: DatabaseDep,
    min_votes: Annotated[int, Query(ge=0, le=2**31 - 1)] = 1000,
    limit: Limit = 20,
) -> MoviesList:
    """The best rated movies with at least `min_votes` votes (myapi.top_rated_movies)."""
    return MoviesList(items=await movies.top_rated(db, min_votes=min_votes, limit=limit))


@router.get("/released-since")
async def list_released_since(
    _: ReadMovies,
    db: DatabaseDep,
    year: Year,
    min_rating: Rating = Decimal(0),
    limit: Limit = 20,
) -> MoviesList:
    """Movies released in or after `year`, newest first (myapi.movies_released_since)."""
    items = await movies.released_since(db, year=year, min_rating=min_rating, limit=limit)
    return MoviesList(items=items)


@router.get("/{movie_id}", responses=problem_responses(404))
async def get_movie(
    _: ReadMovies,
    db: DatabaseDep,
    movie_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> MovieOut:
    """One movie by its id."""
    return await movies.get_movie(db, movie_id=movie_id)
