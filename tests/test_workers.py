"""`api-admin serve --workers 2`, on the embedded database and on DATABASE_URL: every
worker signs and checks tokens and cursors alike, whichever one a connection reaches."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from tests.test_end_to_end import _admin, _env, _free_port, _postgres_for, stop

PASSWORD = "two workers password"
EMAIL = "workers@example.com"
SECRET = "workers-test-secret-" + "w" * 40


@contextmanager
def _serve(env: dict[str, str], log_path: Path) -> Iterator[tuple[str, list[psutil.Process]]]:
    """`serve --workers 2` until healthy: its URL and its two worker processes."""
    port = _free_port()
    with log_path.open("w+") as log:
        proc = subprocess.Popen(
            [_admin(), "serve", "--port", str(port), "--workers", "2", "--no-access-log"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            workers = _wait_healthy(proc, base, log_path)
            yield base, workers
        finally:
            stop(proc)


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> list[psutil.Process]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        workers = _workers(proc.pid)
        try:
            healthy = httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            healthy = False
        # Both workers up: each answers /health only once its lifespan has run.
        if healthy and len(workers) >= 2 and _all_answer(base):
            return workers
        time.sleep(0.2)
    pytest.fail(f"serve --workers 2 did not become healthy:\n{log_path.read_text()}")


def _workers(pid: int) -> list[psutil.Process]:
    """uvicorn's workers: multiprocessing children (next to its resource tracker, and
    the short-lived commands that start the embedded server)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "--multiprocessing-fork" in child.cmdline():
                found.append(child)
        except psutil.Error:  # gone, or a zombie, since it was listed
            continue
    return found


def _all_answer(base: str) -> bool:
    return all(_fresh("GET", f"{base}/health").status_code == 200 for _ in range(10))


def _fresh(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request on a connection of its own, so the kernel hands it to any worker."""
    with httpx.Client(timeout=10) as http:
        return http.request(method, url, **kwargs)  # type: ignore[arg-type]


def _create_user(env: dict[str, str]) -> None:
    created = subprocess.run(
        [_admin(), "users", "create", "--email", EMAIL, "--name", "W", "--password-stdin"],
        input=f"{PASSWORD}\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr


def _assert_workers_agree(base: str, workers: list[psutil.Process]) -> None:
    """Tokens and cursors made by whichever worker are good on whichever worker."""
    before = [w.cpu_times().user + w.cpu_times().system for w in workers]
    tokens = []
    for _ in range(12):
        login = _fresh("POST", f"{base}/token", data={"username": EMAIL, "password": PASSWORD})
        assert login.status_code == 200, login.text
        tokens.append(login.json()["access_token"])
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"}
        page = _fresh("GET", f"{base}/movies", params={"limit": 2}, headers=headers)
        assert page.status_code == 200, page.text
        cursor = page.json()["next_cursor"]
        for _ in range(4):
            movie = _fresh("GET", f"{base}/movies/13908", headers=headers)
            assert movie.status_code == 200, movie.text
            assert movie.json()["title"] == "Dimensia Minds Trilogy: The Hope Factor"
            after = _fresh(
                "GET", f"{base}/movies", params={"limit": 2, "cursor": cursor}, headers=headers
            )
            assert after.status_code == 200, after.text
            assert [m["movie_id"] for m in after.json()["items"]] == [3, 4]
    spent = [
        w.cpu_times().user + w.cpu_times().system - b for w, b in zip(workers, before, strict=True)
    ]
    # Both took a share of the 120 connections (a worker that had none would prove nothing).
    assert min(spent) > 0.01, spent


def test_two_workers_on_the_embedded_database(tmp_path: Path) -> None:
    env = _env(tmp_path)
    try:
        with _serve(env, tmp_path / "serve.log") as (base, workers):
            assert len(workers) == 2
            _create_user(env)
            _assert_workers_agree(base, workers)
        # The generated secret is one file both workers read.
        assert (tmp_path / "data" / "jwt_secret").stat().st_mode & 0o777 == 0o600
    finally:
        for leftover in _postgres_for(tmp_path / "data" / "pgdata"):
            leftover.kill()


def test_two_workers_on_database_url(tmp_path: Path, database: str) -> None:
    env = _env(tmp_path) | {"DATABASE_URL": database, "JWT_SECRET": SECRET}
    with _serve(env, tmp_path / "serve.log") as (base, workers):
        assert len(workers) == 2
        _create_user(env)
        _assert_workers_agree(base, workers)
    assert not (tmp_path / "data" / "jwt_secret").exists()
