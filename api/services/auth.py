"""Passwords, users and access tokens: who someone is and what they may do.

bcrypt runs in threads of its own, one per core by default, so a burst of logins
neither blocks the event loop nor takes the threads other work borrows.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import bcrypt
import jwt

import queries.users as q
from api.backend.database import Database
from api.backend.signing import TokenKeys
from api.exc import (
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidScope,
    InvalidToken,
    InvalidUserData,
    LoginsBusy,
)
from queries.users import UserRow

BCRYPT_MAX_BYTES = 72
MIN_PASSWORD_CHARS = 8
# No spaces or control characters; one @; a dot in the domain. Deliverability is the
# mail server's business, not ours.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
DEFAULT_SCOPES = ("movies:read",)
KNOWN_SCOPES = {
    "movies:read": "Read movies",
    "movies:write": "Change movies",
    "users:admin": "Manage users",
}
CLOCK_LEEWAY_SECONDS = 10
MAX_USER_ID = 2**31 - 1  # user_id is an integer column

T = TypeVar("T")


class _Bcrypt:
    """bcrypt's own threads, a bounded number: a flood of logins queues here instead of
    taking the threads the event loop's default executor lends everyone else. Past
    `MAX_WAITING` queued per thread a request is refused (503) rather than queued for
    seconds."""

    MAX_WAITING = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._threads = os.cpu_count() or 1
        self._pending = 0

    def configure(self, threads: int | None) -> None:
        """Set how many hashes run at once (None: one per CPU core)."""
        with self._lock:
            wanted = threads or os.cpu_count() or 1
            if self._executor is not None and wanted != self._threads:
                self._executor.shutdown(wait=False)
                self._executor = None
            self._threads = wanted

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="bcrypt")
            return self._executor

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self._pending >= self._threads * (1 + self.MAX_WAITING):
            raise LoginsBusy("Too many logins at once; try again in a moment.")
        self._pending += 1  # only the event loop's thread changes it
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool(), work, *args)
        finally:
            self._pending -= 1


bcrypt_threads = _Bcrypt()


class PasswordTooLong(InvalidUserData):
    """bcrypt ignores everything past 72 bytes; such a password is refused, not truncated."""


def _hash_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _check_sync(password: str, hashed: str) -> bool:
    # Refused at creation; and some bcrypt builds stop reading a password at NUL.
    if not storable(password):
        return False
    encoded = password.encode()
    if len(encoded) > BCRYPT_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(encoded, hashed.encode())
    except ValueError:  # a stored hash that is not a bcrypt hash
        return False


async def hash_password(password: str, *, rounds: int) -> str:
    """A bcrypt hash of `password`, computed off the event loop."""
    valid_new_password(password)
    return await bcrypt_threads.run(_hash_sync, password, rounds)


async def check_password(password: str, hashed: str) -> bool:
    """Whether `password` matches `hashed`, computed off the event loop."""
    return await bcrypt_threads.run(_check_sync, password, hashed)


@dataclass(frozen=True, slots=True)
class Dummy:
    """A hash to check unknown users against, so they cost the same time as real ones."""

    hashed: str

    @classmethod
    def for_rounds(cls, rounds: int) -> Dummy:
        return cls(bcrypt.hashpw(b"not a real password", bcrypt.gensalt(rounds)).decode())


async def authenticate(db: Database, *, email: str, password: str, dummy: Dummy) -> UserRow:
    """The active user with these credentials, or `InvalidCredentials`."""
    # The connection goes back to the pool before bcrypt's quarter second.
    email = normalise_email(email)
    user = None
    if storable(email):  # no user has an e-mail PostgreSQL could not hold
        async with db.connection() as conn:
            user = await q.get_user_by_email(conn, email=email)
    hashed = user.password_hash if user is not None else dummy.hashed
    matches = await check_password(password, hashed)
    if user is None or not matches or not user.is_active:
        raise InvalidCredentials()
    return user


def grant_scopes(user: UserRow, requested: str) -> tuple[str, ...]:
    """The scopes, sorted, of a token for `user` who asked for `requested` (RFC 6749
    section 3.3: space-separated); all of the user's when nothing is asked for."""
    asked = {scope for scope in requested.split(" ") if scope}
    if not asked:
        return tuple(sorted(user.scopes))
    if not asked <= KNOWN_SCOPES.keys():
        # Not echoed: the input may be anything; the known scopes are public.
        raise InvalidScope(f"Unknown scope asked for; known: {', '.join(KNOWN_SCOPES)}.")
    if lacking := sorted(asked - set(user.scopes)):
        raise InvalidScope(f"The user does not have the scope {', '.join(map(repr, lacking))}.")
    return tuple(sorted(asked))


def normalise_email(email: str) -> str:
    """E-mails compare without regard to case, surrounding spaces or Unicode composition."""
    return unicodedata.normalize("NFC", email.strip()).lower()


def storable(text: str) -> bool:
    """Whether PostgreSQL (and bcrypt) can take `text`: UTF-8 encodable and without NUL.
    A JSON body can carry a lone surrogate (`"\\ud800"`), which no UTF-8 column holds."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def valid_email(email: str) -> str:
    """`email` normalised, or `InvalidUserData` when it is not an e-mail address."""
    email = normalise_email(email)
    if not storable(email) or not _EMAIL.fullmatch(email) or len(email) > 254:
        raise InvalidUserData(f"{email!r} is not an e-mail address.")
    return email


def valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidUserData("The name must be 1 to 200 characters.")
    if not storable(name) or any(unicodedata.category(char) == "Cc" for char in name):
        raise InvalidUserData("The name must not contain control characters or lone surrogates.")
    return name


def valid_new_password(password: str) -> None:
    """Refuse a password too short to be safe or too long for bcrypt."""
    if not storable(password):
        raise InvalidUserData("The password must not contain NUL characters or lone surrogates.")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidUserData(f"The password must be at least {MIN_PASSWORD_CHARS} characters.")
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        raise PasswordTooLong(f"The password is limited to {BCRYPT_MAX_BYTES} bytes in UTF-8.")


def valid_scopes(scopes: Sequence[str]) -> list[str]:
    """`scopes` sorted without repeats, or `InvalidUserData` naming unknown ones."""
    if unknown := sorted(set(scopes) - KNOWN_SCOPES.keys()):
        shown = ", ".join(repr(s) for s in unknown)
        raise InvalidUserData(f"Unknown scope {shown}; known: {', '.join(KNOWN_SCOPES)}.")
    return sorted(set(scopes))


async def register_user(
    db: Database,
    *,
    email: str,
    name: str,
    password: str,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    rounds: int,
) -> UserRow:
    """Create a user; `EmailAlreadyRegistered` when the e-mail exists in any letter case."""
    email, name = valid_email(email), valid_name(name)
    valid_new_password(password)
    scopes = valid_scopes(scopes)
    hashed = await hash_password(password, rounds=rounds)
    try:
        async with db.connection() as conn:
            user = await q.insert_user(
                conn,
                email=email,
                name=name,
                password_hash=hashed,
                scopes=scopes,
            )
    except asyncpg.UniqueViolationError as exc:
        raise EmailAlreadyRegistered(f"A user with the e-mail {email!r} already exists.") from exc
    if user is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
        raise RuntimeError("insert_user returned no row")
    return user


async def get_active_user(db: Database, *, user_id: int) -> UserRow:
    """The token's user, who must still exist and be active."""
    async with db.connection() as conn:
        user = await q.get_user(conn, user_id=user_id)
    if user is None or not user.is_active:
        raise InvalidToken("The token's user no longer exists or is disabled.")
    return user


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid access token says."""

    user_id: int
    scopes: frozenset[str]
    token_id: str
    issued_at: float
    expires_at: float
    # The user's token_version when it was issued: it counts while that is current.
    version: int


def create_access_token(
    user: UserRow, *, scopes: Sequence[str], keys: TokenKeys, expires_minutes: int
) -> tuple[str, int]:
    """A signed JWT for `user` carrying `scopes`, and its lifetime in seconds."""
    now = datetime.now(UTC)
    lifetime = timedelta(minutes=expires_minutes)
    claims: dict[str, Any] = {
        "sub": str(user.user_id),
        "iat": now.timestamp(),
        "exp": now.timestamp() + lifetime.total_seconds(),
        "jti": uuid.uuid4().hex,
        "scope": " ".join(scopes),
        # The version of the user row this login read (the password it checked, the
        # scopes above): any revocation since then, even one committed while bcrypt
        # ran, has moved the version on and so ends this token on its first use.
        "ver": user.token_version,
    }
    if keys.issuer is not None:
        claims["iss"] = keys.issuer
    if keys.audience is not None:
        claims["aud"] = keys.audience
    headers = {"kid": keys.kid} if keys.kid is not None else None
    token = jwt.encode(claims, keys.signing_key, algorithm=keys.algorithm, headers=headers)
    return token, int(lifetime.total_seconds())


def decode_access_token(token: str, *, keys: TokenKeys) -> Claims:
    """The claims of a valid token; `InvalidToken` for anything else."""
    try:
        payload = jwt.decode(
            token,
            keys.verifying_key,
            algorithms=[keys.algorithm],  # pinned: never the algorithm the token names
            # Set, each is required; unset, no issuer is checked and a token that names
            # an audience is refused (RFC 7519 section 4.1.3).
            issuer=keys.issuer,
            audience=keys.audience,
            options={"require": ["exp", "iat", "sub", "ver"]},
            leeway=CLOCK_LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("The token has expired.") from exc
    except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as exc:
        raise InvalidToken("The token is from another issuer or for another audience.") from exc
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("The token is malformed or its signature is invalid.") from exc
    subject = payload["sub"]
    if not isinstance(subject, str) or not subject.isascii() or not subject.isdigit():
        raise InvalidToken("The token's subject is not a user.")
    user_id = int(subject)
    if not 1 <= user_id <= MAX_USER_ID:
        raise InvalidToken("The token's subject is not a user.")
    version = payload["ver"]
    if type(version) is not int:
        raise InvalidToken("The token's version is not a number.")
    scope = payload.get("scope", "")
    return Claims(
        user_id=user_id,
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
        token_id=str(payload.get("jti", "")),
        issued_at=float(payload["iat"]),
        expires_at=float(payload["exp"]),
        version=version,
    )


class TokenVerifier:
    """Checks access tokens against `keys`, each distinct token once.

    A client sends the same token with every request; checking its signature and
    claims again each time cost a tenth of the time of GET /movies/{id}. A token that
    passed is remembered, by its exact text, until it expires (with the clock leeway);
    a token that failed is not remembered, so it fails again in full. The keys, issuer
    and audience are fixed for the life of the verifier, so a remembered token is one
    that would pass again. Revocation is not this class's business: it is checked on
    every request by `TokenStates`. At most `MAX_REMEMBERED` tokens are kept, the
    oldest forgotten first.
    """

    MAX_REMEMBERED = 10_000

    __slots__ = ("_passed", "keys")

    def __init__(self, keys: TokenKeys) -> None:
        self.keys = keys
        self._passed: dict[str, Claims] = {}

    def verify(self, token: str) -> Claims:
        """The claims of a valid token; `InvalidToken` for anything else."""
        claims = self._passed.get(token)
        if claims is not None:
            if time.time() < claims.expires_at + CLOCK_LEEWAY_SECONDS:
                return claims
            del self._passed[token]
        claims = decode_access_token(token, keys=self.keys)
        if len(self._passed) >= self.MAX_REMEMBERED:
            del self._passed[next(iter(self._passed))]
        self._passed[token] = claims
        return claims
