"""The real thing: `api-admin serve` as a subprocess on the embedded database, over real HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

PASSWORD = "end to end password"


def _admin() -> str:
    found = shutil.which("api-admin") or str(Path(sys.executable).parent / "api-admin")
    assert Path(found).exists(), "api-admin is not installed in this environment"
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "JWT_SECRET", "TEST_DATABASE_URL"} and not k.startswith("API_")
    }
    env.update(API_DATA_DIR=str(tmp_path / "data"), API_BCRYPT_ROUNDS="4", HOME=str(tmp_path))
    return env


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, as a service manager sends it; killed when it takes over 30 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _postgres_for(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=("name", "cmdline")):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(cmdline):
            found.append(proc)
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [_admin(), "serve", "--port", str(port), "--no-access-log"],
        env=_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            log_text = (tmp_path / "serve.log").read_text()
            pytest.fail(f"the server did not become healthy:\n{log_text}")
        yield base
    finally:
        stop(proc)
        log.close()
        # The embedded server stops with its last holder; kill a survivor so CI stays clean.
        leftovers = _postgres_for(tmp_path / "data" / "pgdata")
        for leftover in leftovers:
            leftover.kill()
        assert leftovers == [], "the embedded PostgreSQL outlived `api-admin serve`"


def test_install_serve_login_and_query(server: str, tmp_path: Path) -> None:
    log = (tmp_path / "serve.log").read_text()
    assert "Loaded 58,788 movies" in log
    assert f"Docs: {server}/docs" in log

    created = subprocess.run(
        [
            _admin(),
            "create-user",
            "--email",
            "E2E@Example.com",
            "--name",
            "End To End",
            "--password-stdin",
        ],
        input=f"{PASSWORD}\n",
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    assert PASSWORD not in created.stdout + created.stderr

    with httpx.Client(base_url=server, timeout=10) as http:
        token = http.post("/token", data={"username": "e2e@EXAMPLE.com", "password": PASSWORD})
        assert token.status_code == 200, token.text
        assert token.headers["cache-control"] == "no-store"
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

        movie = http.get("/movies/13908", headers=headers)
        assert movie.json() == {
            "movie_id": 13908,
            "title": "Dimensia Minds Trilogy: The Hope Factor",
            "released": 2004,
            "rating": 10.0,
            "votes": 5,
            "length_minutes": 10,
            "budget": None,
            "mpaa": None,
            "genres": ["Short"],
        }
        top = http.get("/movies/top", params={"min_votes": 100000, "limit": 3}, headers=headers)
        assert [m["title"] for m in top.json()["items"]] == [
            "Shawshank Redemption, The",
            "Godfather, The",
            "Lord of the Rings: The Return of the King, The",
        ]
        since = http.get(
            "/movies/released-since", params={"year": 2005, "min_rating": 9.5}, headers=headers
        )
        assert since.status_code == 200
        assert all(m["released"] >= 2005 and m["rating"] >= 9.5 for m in since.json()["items"])
        assert since.json()["items"]

        me = http.get("/users/me", headers=headers).json()
        assert me["email"] == "e2e@example.com"
        assert "password_hash" not in me

        assert http.get("/movies/1").status_code == 401
        for bad in (
            "/movies/abc",
            "/movies/0",
            "/movies?limit=-1",
            "/movies?sort=mpaa",
            "/movies?min_rating=11",
            "/movies?title=%00",
        ):
            response = http.get(bad, headers=headers)
            assert response.status_code in (400, 422), (bad, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        assert http.get("/movies/99999999", headers=headers).status_code == 404
        assert http.get("/docs").status_code == 200
