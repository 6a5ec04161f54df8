"""The API through a real PgBouncer in transaction pooling mode, on loopback.

PgBouncer comes from the OS package (`apt-get install pgbouncer`; the fixture installs
it when missing and running as root, as on CI). In transaction mode a client's
statements may run on a different server connection at every transaction, so named
prepared statements and LISTEN do not survive: the service runs with
API_STATEMENT_CACHE_SIZE=0 and API_TOKEN_NOTIFICATIONS=false there (with the cache on,
the same test fails with "prepared statement __asyncpg_stmt_... does not exist").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from api.backend.config import Settings
from api.main import create_app
from api.services.revocation import TokenStates
from queries.users import UserRow
from tests.api._live import live_server
from tests.conftest import TEST_PASSWORD, PgServer

RUN_AS = "pgserver"  # the embedded server's own user, who can reach its socket


def _find() -> str | None:
    candidates = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
    return shutil.which("pgbouncer") or next((p for p in candidates if os.access(p, os.X_OK)), None)


@pytest.fixture(scope="session")
def pgbouncer_binary() -> str:
    """PgBouncer from the OS package; installed here with apt-get when missing and this
    runs as root (a fresh CI machine), else the test fails saying what to install."""
    found = _find()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "pgbouncer"],
        ):
            subprocess.run(command, env=env, capture_output=True, check=False, timeout=600)
        found = _find()
    if found is None:
        pytest.fail("pgbouncer is not installed and could not be: `apt-get install pgbouncer`")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def pgbouncer(pg_server: PgServer, database: str, pgbouncer_binary: str) -> Iterator[str]:
    """The DSN of `database` through a PgBouncer in transaction mode."""
    dbname = unquote(urlsplit(database).path.lstrip("/"))
    port = _free_port()
    # Not under pytest's 0700 temp dirs: when run as root, PgBouncer drops to RUN_AS.
    workdir = Path(tempfile.mkdtemp(prefix="myapi-pgbouncer-"))
    workdir.chmod(0o777)
    server_host = pg_server.host
    ini = workdir / "pgbouncer.ini"
    ini.write_text(
        f"""[databases]
{dbname} = host={server_host} port={pg_server.port} user={pg_server.user} dbname={dbname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 4
max_client_conn = 200
ignore_startup_parameters = extra_float_digits
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
"""
    )
    ini.chmod(0o644)
    command = [pgbouncer_binary, str(ini)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", RUN_AS]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                output = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"pgbouncer exited: {output}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail("pgbouncer did not listen within 20 s")
            time.sleep(0.05)
        yield f"postgresql://{pg_server.user}@127.0.0.1:{port}/{dbname}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def bounced(settings: Settings, pgbouncer: str) -> Settings:
    return settings.model_copy(
        update={
            "database_url": SecretStr(pgbouncer),
            "statement_cache_size": 0,
            "token_notifications": False,
            "pool_min_size": 2,
            "pool_max_size": 8,
        }
    )


async def test_reads_and_writes_work_through_pgbouncer(
    bounced: Settings, user: UserRow, pgbouncer: str
) -> None:
    # The user is promoted directly in the database: the admin routes are tested too.
    promote = "UPDATE myapi.users SET scopes = '{movies:read,users:admin}' WHERE user_id = $1"
    await _execute(pgbouncer, promote, user.user_id)
    with live_server(bounced) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            login = await http.post(
                "/token", data={"username": user.email, "password": TEST_PASSWORD}
            )
            assert login.status_code == 200, login.text
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}

            # Reads, many at once so they interleave on PgBouncer's few server connections.
            paths = ["/movies/13908", "/movies?sort=-rating&limit=5", "/movies/top?limit=3"]
            paths += ["/movies/released-since?year=2004&min_rating=8", "/users/me", "/health"]
            answers = await asyncio.gather(*(http.get(path, headers=bearer) for path in paths * 10))
            assert [a.status_code for a in answers] == [200] * len(answers)
            assert answers[0].json()["title"] == "Dimensia Minds Trilogy: The Hope Factor"
            first = await http.get("/movies?sort=-rating&limit=5", headers=bearer)
            cursor = first.json()["next_cursor"]
            after = await http.get(
                "/movies", params={"sort": "-rating", "limit": 5, "cursor": cursor}, headers=bearer
            )
            assert after.status_code == 200
            assert set(m["movie_id"] for m in after.json()["items"]).isdisjoint(
                m["movie_id"] for m in first.json()["items"]
            )

            # Writes: a user created, a failed login counted, a password changed.
            created = await http.post(
                "/users",
                json={"email": "bounced@example.com", "name": "B", "password": "bounced pw 1"},
                headers=bearer,
            )
            assert created.status_code == 201, created.text
            failed = await http.post(
                "/token", data={"username": "bounced@example.com", "password": "wrong"}
            )
            assert failed.status_code == 400
            changed = await http.post(
                "/users/me/password",
                json={"current_password": TEST_PASSWORD, "new_password": "a new password"},
                headers=bearer,
            )
            assert changed.status_code == 204
            # Revocation without notifications: checked per request, at once.
            assert (await http.get("/users/me", headers=bearer)).status_code == 401

    conn = await asyncpg.connect(pgbouncer, statement_cache_size=0)
    try:
        attempts = await conn.fetchval(
            "SELECT failures FROM myapi.login_attempts WHERE key = 'account:bounced@example.com'"
        )
        assert attempts == 1
    finally:
        await conn.close()


@asynccontextmanager
async def _in_process(settings: Settings, user: UserRow) -> AsyncIterator[_Session]:
    """The app on `settings`, `user` logged in; the app's token states for asserting."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            login = await http.post(
                "/token", data={"username": user.email, "password": TEST_PASSWORD}
            )
            assert login.status_code == 200, login.text
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert (await http.get("/users/me", headers=bearer)).status_code == 200
            yield _Session(http, bearer, app.state.runtime.tokens)


@dataclass
class _Session:
    http: httpx.AsyncClient
    bearer: dict[str, str]
    tokens: TokenStates

    async def me(self) -> int:
        return (await self.http.get("/users/me", headers=self.bearer)).status_code


async def _execute(pgbouncer: str, sql: str, *args: object) -> None:
    """One statement through PgBouncer, on a connection of its own."""
    conn = await asyncpg.connect(pgbouncer, statement_cache_size=0)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def _log_out(pgbouncer: str, user: UserRow) -> None:
    """A logout made elsewhere, through PgBouncer too."""
    sql = "UPDATE myapi.users SET token_version = token_version + 1 WHERE user_id = $1"
    await _execute(pgbouncer, sql, user.user_id)


async def test_notifications_stay_on_with_a_direct_listen_url(
    bounced: Settings, user: UserRow, database: str, pgbouncer: str
) -> None:
    """API_LISTEN_DATABASE_URL: the pool goes through PgBouncer, the one listening
    connection straight to PostgreSQL, so token checks stay in memory."""
    settings = bounced.model_copy(
        update={"token_notifications": True, "listen_database_url": SecretStr(database)}
    )
    async with _in_process(settings, user) as session:
        assert session.tokens.live
        await _log_out(pgbouncer, user)
        # It arrives as a notification.
        deadline = time.monotonic() + 2
        while await session.me() != 401:
            assert time.monotonic() < deadline, "the logout did not arrive within 2 s"
            await asyncio.sleep(0.02)
        assert session.tokens.live


async def test_notifications_that_never_arrive_fall_back_to_per_request_checks(
    bounced: Settings, user: UserRow, pgbouncer: str
) -> None:
    """Left on behind PgBouncer in transaction mode, LISTEN is accepted but nothing
    arrives: the worker finds out at start (its probe is not heard) and checks tokens
    per request, so a logout still takes effect at once."""
    settings = bounced.model_copy(update={"token_notifications": True})
    async with _in_process(settings, user) as session:
        assert not session.tokens.live
        await _log_out(pgbouncer, user)
        assert await session.me() == 401
