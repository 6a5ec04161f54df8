"""Revoked tokens stop working at once on every worker: disable, delete, forced logout."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from api.backend.config import Settings
from tests.conftest import TEST_PASSWORD
from tests.conftest import app_client as _worker  # a second worker: its own token states

EMAIL = "reader@example.com"  # the conftest `user`


async def _status_within(client: httpx.AsyncClient, headers: dict[str, str], status: int) -> float:
    """Seconds until GET /movies/1 answers `status` (fails after 2 s)."""
    started = time.monotonic()
    while time.monotonic() - started < 2:
        if (await client.get("/movies/1", headers=headers)).status_code == status:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    pytest.fail(f"GET /movies/1 did not answer {status} within 2 s")


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE myapi.users SET is_active = false WHERE email = $1",
        "DELETE FROM myapi.users WHERE email = $1",
        "UPDATE myapi.users SET tokens_valid_after = now() WHERE email = $1",
    ],
)
async def test_revocation_reaches_every_worker_within_a_second(
    client: httpx.AsyncClient,
    bearer: dict[str, str],
    settings: Settings,
    pool: asyncpg.Pool,
    change: str,
) -> None:
    async with _worker(settings) as second:
        assert (await client.get("/movies/1", headers=bearer)).status_code == 200
        assert (await second.get("/movies/1", headers=bearer)).status_code == 200
        await pool.execute(change, EMAIL)
        assert await _status_within(client, bearer, 401) < 1
        assert await _status_within(second, bearer, 401) < 1
    response = await client.get("/movies/1", headers=bearer)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_issued_after_a_logout_works(
    client: httpx.AsyncClient, bearer: dict[str, str], pool: asyncpg.Pool
) -> None:
    await pool.execute("UPDATE myapi.users SET tokens_valid_after = now() WHERE email = $1", EMAIL)
    await _status_within(client, bearer, 401)
    fresh = await client.post("/token", data={"username": EMAIL, "password": TEST_PASSWORD})
    headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await client.get("/movies/1", headers=headers)).status_code == 200


async def test_without_notifications_tokens_are_checked_per_request(
    client: httpx.AsyncClient, bearer: dict[str, str], pool: asyncpg.Pool
) -> None:
    # Cut the listening connection (as PgBouncer in transaction mode would never allow it).
    cut = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    assert cut == 1
    await asyncio.sleep(0.2)
    assert (await client.get("/movies/1", headers=bearer)).status_code == 200
    # No notification can arrive now; the per-request check still sees the change at once.
    await pool.execute("UPDATE myapi.users SET is_active = false WHERE email = $1", EMAIL)
    assert (await client.get("/movies/1", headers=bearer)).status_code == 401


async def test_notifications_can_be_turned_off(
    settings: Settings, bearer: dict[str, str], pool: asyncpg.Pool
) -> None:
    async with _worker(settings.model_copy(update={"token_notifications": False})) as http:
        listening = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert listening == 1  # the `client` app's listener only, not this one's
        assert (await http.get("/movies/1", headers=bearer)).status_code == 200
        await pool.execute("UPDATE myapi.users SET is_active = false WHERE email = $1", EMAIL)
        assert (await http.get("/movies/1", headers=bearer)).status_code == 401
