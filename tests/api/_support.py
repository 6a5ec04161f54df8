"""Helpers shared by the tests in tests/api (not a test module; imported by them).

`shared_app` is a module-scoped app over one cloned database for the read-only tests
(tables of inputs, keyset walks): a fresh database per case would cost ~0.3 s each.
Tests that write anything use the function-scoped fixtures of tests/conftest.py.

This module does not import tests/conftest.py (mypy cannot see it from tests/api, and
`conftest` is ambiguous on sys.path); the fixtures it needs arrive as parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import asyncpg
import httpx

from api.backend.config import Settings
from api.backend.database import Database, create_pool
from api.main import create_app
from api.services import auth

PASSWORD = "correct horse battery staple"
TOTAL_MOVIES = 58_788
PROBLEM_JSON = "application/problem+json"
MOVIE_COLUMNS = "movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres"
SORTABLE = ("movie_id", "title", "released", "rating", "votes", "length_minutes", "budget")


class PgServerLike(Protocol):
    """What the tests use of conftest's `pg_server` fixture."""

    def dsn(self, dbname: str) -> str: ...

    def janitor(self, dbname: str, **kwargs: object) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True, slots=True)
class SharedApp:
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    bearer: dict[str, str]
    settings: Settings


async def shared_app(
    pg_server: PgServerLike, template_db: str, tmp_path_factory: Any
) -> AsyncIterator[SharedApp]:
    """One app, database, user and token for a whole module of read-only tests."""
    name = f"myapi_shared_{uuid.uuid4().hex[:12]}"
    with pg_server.janitor(name, template_dbname=template_db):
        dsn = pg_server.dsn(name)
        settings = Settings(
            _env_file=None,
            database_url=dsn,
            jwt_secret="shared-secret-" + "y" * 40,
            bcrypt_rounds=4,
            data_dir=tmp_path_factory.mktemp("shared") / "data",
            pool_min_size=1,
            pool_max_size=4,
        )
        pool = await create_pool(dsn, settings)
        try:
            await auth.register_user(
                Database(pool),
                email="shared@example.com",
                name="Shared",
                password=PASSWORD,
                rounds=4,
            )
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                # A 500 comes back as a response (not an exception) so tests can assert on it.
                transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                    response = await http.post(
                        "/token", data={"username": "shared@example.com", "password": PASSWORD}
                    )
                    assert response.status_code == 200, response.text
                    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
                    yield SharedApp(client=http, pool=pool, bearer=bearer, settings=settings)
        finally:
            await pool.close()


def movie_json(record: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    """A myapi.movies row as the API is expected to render it (rating a JSON number)."""
    row = dict(record)
    rating = row["rating"]
    assert isinstance(rating, Decimal)
    return {
        "movie_id": row["movie_id"],
        "title": row["title"],
        "released": row["released"],
        "rating": float(rating),
        "votes": row["votes"],
        "length_minutes": row["length_minutes"],
        "budget": row["budget"],
        "mpaa": row["mpaa"],
        "genres": list(row["genres"]),
    }


def order_by(sort: str) -> str:
    """The SQL ORDER BY for a `sort` parameter, written out independently of the app.

    The API documents the fields and the `-` prefix; ties are broken by movie_id, in
    the direction of the last key (so `-rating` is `rating DESC, movie_id DESC`).
    Only whitelisted column names reach the SQL text.
    """
    terms: list[str] = []
    descending = False
    for part in (p.strip() for p in sort.split(",")):
        descending = part.startswith("-")
        column = part.removeprefix("-")
        assert column in SORTABLE, column
        terms.append(f"{column} {'DESC' if descending else 'ASC'}")
    if not any(t.startswith("movie_id ") for t in terms):
        terms.append(f"movie_id {'DESC' if descending else 'ASC'}")
    return ", ".join(terms)


async def walk(
    client: httpx.AsyncClient,
    bearer: Mapping[str, str],
    params: Mapping[str, str | int],
    *,
    max_pages: int = 1_000,
) -> list[int]:
    """Every movie id of a listing, following next_cursor until it is null."""
    limit = int(params.get("limit", 20))
    ids: list[int] = []
    cursor: str | None = None
    for _ in range(max_pages):
        query: dict[str, str | int] = dict(params)
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get("/movies", params=query, headers=bearer)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        items = body["items"]
        assert len(items) <= limit
        ids.extend(item["movie_id"] for item in items)
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
        # A page that announces a next one is full.
        assert len(items) == limit
    raise AssertionError(f"more than {max_pages} pages for {params}")


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """`response` is an RFC 9457 problem with `status` (and `code`), leaking nothing."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys(), body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"] == f"urn:myapi:problem:{body['code']}"
    if code is not None:
        assert body["code"] == code, body
    text = response.text
    assert "Traceback" not in text
    assert "SELECT" not in text
    assert "asyncpg" not in text
    return body
