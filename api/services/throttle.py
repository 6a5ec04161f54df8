"""Login throttling, counted in PostgreSQL so every worker and every restart sees it.

Each login attempt is counted against its account and its client address *before* the
password is checked, in one statement: a burst of parallel guesses cannot slip past
the limit while earlier ones are still in bcrypt. A success takes its attempt back off
the address and starts the account's count again, and an attempt refused before its
password was checked (429, or 503 when bcrypt is busy) comes off both counts, so only
failed guesses add up. Windows
are fixed: the count starts when the first attempt of a window arrives and is forgotten
`window_seconds` later.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import queries.logins as q
from api.backend.config import Settings
from api.backend.database import Database
from api.exc import TooManyLogins

PURGE_EVERY_SECONDS = 60.0
# An account key longer than any e-mail could be is still counted, under a bounded key.
MAX_KEY_CHARS = 320


def _storable(text: str) -> str:
    """`text` as PostgreSQL can hold it: a login name with NUL or a lone surrogate (never a
    user's) is still counted, under a digest of it."""
    text = text[:MAX_KEY_CHARS]
    if "\x00" not in text:
        try:
            text.encode()
        except UnicodeEncodeError:
            pass
        else:
            return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def account_key(email: str) -> str:
    """The key of an account's count: its normalised e-mail (see auth.normalise_email)."""
    return f"account:{_storable(email)}"


def address_key(address: str) -> str:
    return f"address:{_storable(address)}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """A counted login attempt; report its outcome with `Throttle.succeeded`."""

    account: str
    address: str


class Throttle:
    """Counts login attempts per account and per client address."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._window = settings.login_window_seconds
        self._limits = {
            "account": settings.login_account_limit,
            "address": settings.login_address_limit,
        }
        self._last_purge = 0.0

    @property
    def enabled(self) -> bool:
        return any(self._limits.values())

    async def attempt(self, *, email: str, address: str) -> Attempt:
        """Count an attempt; `TooManyLogins` (429) when either count is over its limit."""
        attempt = Attempt(account_key(email), address_key(address))
        if not self.enabled:
            return attempt
        async with self._db.connection() as conn:
            counts = await q.count_attempt(
                conn,
                account=attempt.account,
                address=attempt.address,
                window_seconds=self._window,
            )
            if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
                self._last_purge = time.monotonic()
                await q.purge(conn, window_seconds=self._window)
            waits = [
                row.retry_after
                for row in counts
                if (limit := self._limits[row.key.partition(":")[0]]) and row.failures > limit
            ]
            if waits:
                await q.refused(conn, account=attempt.account, address=attempt.address)
                raise TooManyLogins(max(waits))
        return attempt

    async def refused(self, attempt: Attempt) -> None:
        """The attempt was answered without its password being checked (bcrypt busy)."""
        if not self.enabled:
            return
        async with self._db.connection() as conn:
            await q.refused(conn, account=attempt.account, address=attempt.address)

    async def succeeded(self, attempt: Attempt) -> None:
        """The attempt logged in: it no longer counts as a failure."""
        if not self.enabled:
            return
        async with self._db.connection() as conn:
            await q.succeeded(conn, account=attempt.account, address=attempt.address)
