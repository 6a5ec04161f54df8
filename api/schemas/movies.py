"""Request and response models of the movies endpoints."""

from __future__ import annotations

from pydantic import BaseModel, Field

from queries.movies import MovieRow

# The row is the public shape: one class, so each row is validated exactly once.
MovieOut = MovieRow


class MoviesPage(BaseModel):
    """One page of GET /movies; pass `next_cursor` back as `cursor` for the next one."""

    items: list[MovieOut]
    next_cursor: str | None = Field(description="Null on the last page")


class MoviesList(BaseModel):
    """A bounded list of movies, as the table-valued function endpoints answer."""

    items: list[MovieOut]
