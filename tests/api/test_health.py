"""GET /health, and every endpoint answering 503 problem JSON when the database is gone.

Three deterministic outages, each on an app built here so the test holds its pool:
the database refuses connections (ALLOW_CONNECTIONS false), the database no longer
exists (renamed away), and the server cannot be reached at all. In each, the app's
pooled connections are terminated and the pool is told to reconnect
(`expire_connections`), so the next request has to open a new connection and fails.
A fourth case holds the pool's only connection: the request must give up with a 503
after `pool_acquire_timeout` instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest
from fastapi import FastAPI

from api.backend.config import Settings
from api.main import create_app
from tests.api._support import PgServerLike, assert_problem

DOWN_PATHS = ["/movies/1", "/movies?limit=1", "/movies/top", "/users/me"]


@dataclass(frozen=True, slots=True)
class Running:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def pool(self) -> asyncpg.Pool:
        pool: asyncpg.Pool = self.app.state.runtime.db.pool
        return pool


@contextlib.asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[Running]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # A 500 comes back as a response, so a wrong status is an assertion, not a crash.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Running(app, http)


@pytest.fixture
async def running(settings: Settings) -> AsyncIterator[Running]:
    async with _running(settings) as value:
        yield value


def _bearer(settings: Settings, user_id: int = 1) -> dict[str, str]:
    """A valid token made directly: logging in needs the database this file takes away."""
    assert settings.jwt_secret is not None
    now = int(time.time())
    token = jwt.encode(
        {
            "sub": str(user_id),
            "iat": now,
            "exp": now + 600,
            "jti": "h" * 32,
            "scope": "movies:read",
            "ver": 0,
        },
        settings.jwt_secret.get_secret_value(),
        algorithm=settings.jwt_algorithm,
    )
    return {"Authorization": f"Bearer {token}"}


async def _cut_off(admin: asyncpg.Connection, dbname: str, app_pool: asyncpg.Pool) -> None:
    """Refuse new connections to `dbname`, end the existing ones, and wait until they are gone."""
    await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        dbname,
    )
    for _ in range(250):
        left = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", dbname
        )
        if left == 0:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(f"connections to {dbname} did not end")
    # Whether or not the pool has noticed yet: its next acquire opens a new connection.
    await app_pool.expire_connections()


async def _assert_down(running: Running, settings: Settings) -> None:
    health = await running.client.get("/health")
    body = assert_problem(health, 503, "database_unavailable")
    assert body["title"] == "Database unavailable"
    bearer = _bearer(settings)
    for path in DOWN_PATHS:
        response = await running.client.get(path, headers=bearer)
        assert_problem(response, 503, "database_unavailable")
    login = await running.client.post(
        "/token", data={"username": "reader@example.com", "password": "whatever it is"}
    )
    assert_problem(login, 503, "database_unavailable")


async def _assert_up(running: Running) -> None:
    response = await running.client.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": "ok"}


# --------------------------------------------------------------------------- up


async def test_health_ok_without_auth(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer garbage"}, {"Authorization": "Basic eDp5"}],
    ids=["garbage-bearer", "basic"],
)
async def test_health_ignores_credentials(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/health", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


# --------------------------------------------------------------------------- down


async def test_database_refusing_connections_is_503(
    running: Running, settings: Settings, pg_server: PgServerLike
) -> None:
    await _assert_up(running)
    dbname = await running.pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(pg_server.dsn("postgres"))
    try:
        await _cut_off(admin, dbname, running.pool)
        await _assert_down(running, settings)
        await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        await _assert_up(running)
    finally:
        await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_dropped_database_is_503(
    running: Running, settings: Settings, pg_server: PgServerLike
) -> None:
    await _assert_up(running)
    dbname = await running.pool.fetchval("SELECT current_database()")
    away = f"{dbname}_away"
    admin = await asyncpg.connect(pg_server.dsn("postgres"))
    renamed = False
    try:
        await _cut_off(admin, dbname, running.pool)
        # Gone under its name, as if dropped; renamed rather than dropped to restore it.
        await admin.execute(f'ALTER DATABASE "{dbname}" RENAME TO "{away}"')
        renamed = True
        await admin.execute(f'ALTER DATABASE "{away}" ALLOW_CONNECTIONS true')
        await _assert_down(running, settings)
        await admin.execute(f'ALTER DATABASE "{away}" RENAME TO "{dbname}"')
        renamed = False
        await _assert_up(running)
    finally:
        if renamed:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                away,
            )
            await admin.execute(f'ALTER DATABASE "{away}" RENAME TO "{dbname}"')
        await admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_unreachable_server_is_503(tmp_path: Path) -> None:
    # A Unix socket directory that does not exist: connecting fails at once, every time.
    settings = Settings(
        _env_file=None,
        database_url=f"postgresql://postgres@/myapi?host={tmp_path / 'no-server-here'}",
        jwt_secret="health-secret-" + "h" * 40,
        bcrypt_rounds=4,
        data_dir=tmp_path / "data",
        pool_min_size=0,  # start without connecting
        pool_max_size=2,
    )
    async with _running(settings) as running:
        await _assert_down(running, settings)
        # Still down, still a 503 (not a stuck or broken pool).
        await _assert_down(running, settings)


async def test_unreachable_server_stops_the_start_when_the_pool_has_a_minimum(
    tmp_path: Path,
) -> None:
    """The README's start-up rule: only a pool that may start empty starts without a database."""
    settings = Settings(
        _env_file=None,
        database_url=f"postgresql://postgres@/myapi?host={tmp_path / 'no-server-here'}",
        jwt_secret="health-secret-" + "h" * 40,
        data_dir=tmp_path / "data",
    )
    assert settings.pool_min_size > 0  # the default
    app = create_app(settings)
    with pytest.raises(FileNotFoundError):  # the socket is not there: the start fails
        async with app.router.lifespan_context(app):
            pass


async def test_exhausted_pool_is_503_after_the_acquire_timeout(settings: Settings) -> None:
    # config.py: pool_acquire_timeout is the "seconds to wait for a free connection
    # before answering 503". Hold the pool's only connection and ask for a movie.
    cfg = settings.model_copy(
        update={"pool_min_size": 1, "pool_max_size": 1, "pool_acquire_timeout": 0.3}
    )
    response: httpx.Response | None = None
    # A real user, known to the app from its start: checking the token needs no connection.
    assert cfg.database_url is not None
    conn = await asyncpg.connect(cfg.database_url.get_secret_value())
    try:
        user_id = await conn.fetchval(
            "INSERT INTO myapi.users (email, name, password_hash)"
            " VALUES ('pool@example.com', 'Pool', 'x') RETURNING user_id"
        )
    finally:
        await conn.close()
    async with _running(cfg) as running:
        async with running.pool.acquire():
            started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                response = await asyncio.wait_for(
                    running.client.get("/movies/1", headers=_bearer(cfg, user_id)), timeout=3
                )
            elapsed = time.monotonic() - started
        # The connection is back: the same request succeeds.
        again = await running.client.get("/movies/1", headers=_bearer(cfg, user_id))
        assert again.status_code == 200, again.text
    assert response is not None, (
        "no answer within 3 s although pool_acquire_timeout is 0.3 s: "
        "requests wait for a free connection forever"
    )
    assert_problem(response, 503, "database_unavailable")
    assert elapsed < 2


async def test_head_health_answers_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/health")
    assert response.status_code == 200
    assert response.content == b""


async def test_trailing_slash_is_not_redirected_by_host_header(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/movies/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers
