"""Revoked tokens stop working at once on every worker: disable, delete, forced logout."""

from __future__ import annotations

import asyncio
import threading
import time

import asyncpg
import httpx
import pytest

from api.backend.config import Settings
from api.services import auth
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
        "UPDATE myapi.users SET token_version = token_version + 1 WHERE email = $1",
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
    await pool.execute(
        "UPDATE myapi.users SET token_version = token_version + 1 WHERE email = $1", EMAIL
    )
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


@pytest.mark.parametrize(
    "change",
    [
        # Taking users:admin away while the login is in bcrypt: the token must not keep it.
        "UPDATE myapi.users SET scopes = '{movies:read}', tokens_valid_after = now(),"
        " token_version = token_version + 1 WHERE email = $1",
        # A password change (here the statement set_password.sql runs).
        "UPDATE myapi.users SET password_hash = 'x', tokens_valid_after = now(),"
        " token_version = token_version + 1 WHERE email = $1",
    ],
    ids=["scope-taken-away", "password-changed"],
)
async def test_a_login_in_flight_during_a_revocation_gets_a_dead_token(
    client: httpx.AsyncClient, user: object, pool: asyncpg.Pool, change: str
) -> None:
    """The race an attacker's trial found: a login reads the user, spends bcrypt's quarter
    second, and issues a token. A revocation committed in between must end that token too,
    although it was issued after the revocation."""
    await pool.execute(
        "UPDATE myapi.users SET scopes = '{movies:read,users:admin}' WHERE email = $1", EMAIL
    )
    auth.bcrypt_threads.configure(1)
    gate = threading.Event()
    blocker = asyncio.ensure_future(auth.bcrypt_threads.run(gate.wait, 5))
    try:
        login = asyncio.ensure_future(
            client.post("/token", data={"username": EMAIL, "password": TEST_PASSWORD})
        )
        # The login has read the user row and waits for bcrypt's one thread.
        deadline = time.monotonic() + 5
        while auth.bcrypt_threads._pending < 2 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        assert auth.bcrypt_threads._pending == 2, "the login never reached bcrypt"
        await pool.execute(change, EMAIL)
    finally:
        gate.set()
        await blocker
        auth.bcrypt_threads.configure(None)
    response = await login
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "movies:read users:admin"  # what it read
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert await _status_within(client, headers, 401) < 1
    me = await client.get("/users", headers=headers)
    assert me.status_code == 401
    assert 'error="invalid_token"' in me.headers["www-authenticate"]
