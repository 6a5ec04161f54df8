"""The embedded server's bookkeeping and the generated signing secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.backend.config import Settings
from api.backend.embedded import _forget_dead_holders, socket_dsn
from api.backend.signing import ConfigError, signing_secret


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_holders_that_died_are_forgotten(tmp_path: Path) -> None:
    handles = tmp_path / ".handle_pids.json"
    dead = _dead_pid()
    handles.write_text(json.dumps([dead, os.getpid()]))
    _forget_dead_holders(tmp_path)
    assert json.loads(handles.read_text()) == [os.getpid()]


def test_forgetting_tolerates_a_missing_or_damaged_file(tmp_path: Path) -> None:
    _forget_dead_holders(tmp_path)  # no file: nothing to do
    (tmp_path / ".handle_pids.json").write_text("{not json")
    _forget_dead_holders(tmp_path)
    assert (tmp_path / ".handle_pids.json").read_text() == "{not json"


def test_socket_dsn_quotes_the_directory() -> None:
    dsn = socket_dsn(Path("/tmp/a b"), port=5432, database="myapi")
    assert dsn == "postgresql://postgres@/myapi?host=/tmp/a%20b&port=5432"


def _embedded(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data")


def test_embedded_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = signing_secret(_embedded(tmp_path))
    assert len(first) >= 32
    assert signing_secret(_embedded(tmp_path)) == first
    assert (tmp_path / "data" / "jwt_secret").stat().st_mode & 0o777 == 0o600


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    signing_secret(_embedded(tmp_path))
    (tmp_path / "data" / "jwt_secret").chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by other users"):
        signing_secret(_embedded(tmp_path))


def test_external_database_needs_a_configured_secret(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, database_url="postgresql://u@h/d", data_dir=tmp_path / "data"
    )
    with pytest.raises(ConfigError, match="JWT_SECRET is not set"):
        signing_secret(settings)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:pw@h/d", "must start with postgresql://"),
        ("not-a-url", "must start with postgresql://"),
        ("postgresql://u:pw@[::1/x", "not a valid URL"),
        ("postgresql://u:pw@h:99999/d", "not a valid URL"),
    ],
)
def test_database_url_must_be_postgres(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Settings(_env_file=None, database_url=url)
    # What the CLI prints: the messages, never the input (it may hold a password).
    assert "pw" not in " ".join(error["msg"] for error in caught.value.errors())


def test_weak_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(_env_file=None, jwt_secret="short")
