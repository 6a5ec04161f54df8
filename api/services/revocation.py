"""Which tokens still count: each worker's copy of every user's token state.

The copy is loaded at start and kept current through LISTEN/NOTIFY on a connection of
its own, so checking a token costs a dictionary lookup, not a query. While that
connection is down the check asks the database on every request instead.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

import queries.users as q
from api.backend.database import Database
from queries.users import TokenStateRow

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0
# How long a worker waits at start for its own probe notification before it decides that
# notifications do not reach it (they arrive in milliseconds when they do).
PROBE_SECONDS = 2.0


class TokenStates:
    """Answers "is this user's token, issued under version `ver`, still valid?"."""

    def __init__(self, db: Database, dsn: str, *, listen: bool = True) -> None:
        self._db = db
        self._dsn = dsn
        self._listen = listen
        self._states: dict[int, TokenStateRow] = {}
        self._listener: asyncpg.Connection | None = None
        self._live = False
        self._last_attempt = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._probe_payload = ""
        # How often each user was forgotten: a refresh keeps what it read only when
        # nothing changed while it read (see `forget`).
        self._changes: dict[int, int] = {}
        self._probe_heard = asyncio.Event()

    @property
    def live(self) -> bool:
        """Whether notifications keep the copy current (else every check asks the database)."""
        return self._live

    async def start(self) -> None:
        """Listen first, then load: no change between the two can be missed."""
        self._last_attempt = time.monotonic()
        if not self._listen:
            return
        try:
            listener = await asyncpg.connect(self._dsn, statement_cache_size=0)
            await listener.add_listener(q.CHANNEL, self._on_notify)
            listener.add_termination_listener(self._on_lost)
            heard = await self._probe()
            async with self._db.connection() as conn:
                rows = await q.list_token_states(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # No database yet, or the listener refused: check per request.
            logger.warning("token states are checked per request: %s", type(exc).__name__)
            return
        if not heard:
            # LISTEN is accepted through PgBouncer in transaction mode, but nothing
            # arrives: trusting the copy would let revoked tokens through. Nor is it
            # worth trying again every few seconds: that is how the server is set up.
            self._listen = False
            await listener.close()
            logger.warning(
                "token states are checked per request for the life of this worker: "
                "notifications do not reach it (PgBouncer in transaction mode?); set "
                "API_LISTEN_DATABASE_URL to the server itself, or API_TOKEN_NOTIFICATIONS=false"
            )
            return
        self._listener = listener
        self._states = {row.user_id: row for row in rows}
        self._live = True

    async def close(self) -> None:
        self._live = False
        for task in list(self._tasks):
            task.cancel()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None

    async def is_valid(self, user_id: int, version: int) -> bool:
        """Whether a token of `user_id` issued under token `version` counts."""
        state = self._states.get(user_id) if self._live else None
        if state is None:
            # Not live, or a user created a moment ago whose notification is in flight.
            state = await self._fetch(user_id)
            self._maybe_reconnect()
        if state is None or not state.is_active:
            return False
        return version == state.token_version

    async def _fetch(self, user_id: int) -> TokenStateRow | None:
        async with self._db.connection() as conn:
            return await q.get_token_state(conn, user_id=user_id)

    async def _probe(self) -> bool:
        """Whether a notification sent through the pool reaches the listener."""
        self._probe_payload = f"probe:{secrets.token_hex(8)}"
        self._probe_heard = asyncio.Event()
        async with self._db.connection() as conn:
            await q.notify_probe(conn, payload=self._probe_payload)
        try:
            await asyncio.wait_for(self._probe_heard.wait(), PROBE_SECONDS)
        except TimeoutError:
            return False
        return True

    @contextmanager
    def changing(self, user_id: int) -> Iterator[None]:
        """Around a change to the user made by this worker: whatever it did, the user's
        state is forgotten after it, so this worker's next request asks the database."""
        try:
            yield
        finally:
            self.forget(user_id)

    def forget(self, user_id: int) -> None:
        """The user changed here: ask the database until the notification's refresh
        lands, so not even the next request of this worker sees the old state."""
        self._states.pop(user_id, None)
        # A refresh already reading the row may have read it before this change.
        self._changes[user_id] = self._changes.get(user_id, 0) + 1

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        if isinstance(payload, str) and payload.isdigit():
            # Forgotten at once: checks ask the database until the refresh is back,
            # rather than trust the old state for the length of a round trip.
            self.forget(int(payload))
            self._spawn(self._refresh(int(payload)))
        elif payload == self._probe_payload:
            self._probe_heard.set()

    async def _refresh(self, user_id: int) -> None:
        changes = self._changes.get(user_id, 0)
        try:
            state = await self._fetch(user_id)
        except Exception:
            # Unknown now: forget it, so the next check asks the database.
            self._states.pop(user_id, None)
            logger.warning("could not refresh the token state of user %d", user_id)
            return
        if self._changes.get(user_id, 0) != changes:
            return  # changed while this read: the change's own refresh is on its way
        if state is None:
            self._states.pop(user_id, None)
        else:
            self._states[user_id] = state

    def _on_lost(self, _conn: object) -> None:
        if self._live:  # not at close(), which stops listening on purpose
            logger.warning("token-state notifications lost; checking tokens per request")
        self._live = False
        self._listener = None

    def _maybe_reconnect(self) -> None:
        if not self._listen or self._live:
            return
        if time.monotonic() - self._last_attempt < RETRY_SECONDS:
            return
        self._spawn(self.start())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # Kept referenced until done: the event loop holds tasks only weakly.
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
