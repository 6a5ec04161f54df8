"""`api-admin serve` counts logins per client address, and believes a proxy's
X-Forwarded-For only when API_FORWARDED_ALLOW_IPS names the proxy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.test_end_to_end import stop


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _serve(database: str, tmp_path: Path, **extra: str) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("API_")}
    env |= {
        "DATABASE_URL": database,
        "JWT_SECRET": TEST_SECRET,
        "API_DATA_DIR": str(tmp_path / "data"),
        "API_BCRYPT_ROUNDS": "4",
        "API_LOGIN_ACCOUNT_LIMIT": "0",
        "API_LOGIN_ADDRESS_LIMIT": "2",
        **extra,
    }
    admin = str(Path(sys.executable).parent / "api-admin")
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [admin, "serve", "--port", str(port), "--no-access-log"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not become healthy:\n{log.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        stop(proc)


def _fail_login(base: str, forwarded_for: str) -> int:
    response = httpx.post(
        f"{base}/token",
        data={"username": "nobody@example.com", "password": "wrong"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return response.status_code


def test_forwarded_addresses_count_apart_when_the_proxy_is_trusted(
    database: str, tmp_path: Path
) -> None:
    with _serve(database, tmp_path, API_FORWARDED_ALLOW_IPS="127.0.0.1") as base:
        first = [_fail_login(base, "198.51.100.7") for _ in range(3)]
        second = _fail_login(base, "198.51.100.8")
    assert first == [400, 400, 429]
    assert second == 400


def test_forwarded_for_is_ignored_unless_configured(database: str, tmp_path: Path) -> None:
    with _serve(database, tmp_path) as base:
        statuses = [_fail_login(base, f"198.51.100.{n}") for n in range(3)]
    assert statuses == [400, 400, 429]  # all counted against 127.0.0.1
