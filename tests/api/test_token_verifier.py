"""TokenVerifier: a token that passed is remembered until it expires, and only then."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from pydantic import SecretStr

from api.backend.config import Settings
from api.backend.signing import TokenKeys, token_keys
from api.exc import InvalidToken
from api.services import auth


@pytest.fixture
def keys(settings: Settings) -> TokenKeys:
    return token_keys(settings)


def _token(keys: TokenKeys, *, lifetime: float = 600.0, sub: str = "7") -> str:
    now = time.time()
    claims = {"sub": sub, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
    claims |= {"scope": "movies:read", "ver": 0}
    return jwt.encode(claims, keys.signing_key, algorithm=keys.algorithm)


def test_a_valid_token_is_checked_once_and_remembered(keys: TokenKeys) -> None:
    verifier = auth.TokenVerifier(keys)
    token = _token(keys)
    first = verifier.verify(token)
    assert (first.user_id, first.scopes) == (7, frozenset({"movies:read"}))
    assert verifier.verify(token) is first


def test_a_remembered_token_fails_once_it_expires(
    keys: TokenKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = auth.TokenVerifier(keys)
    token = _token(keys, lifetime=1)
    verifier.verify(token)
    later = time.time() + 1 + auth.CLOCK_LEEWAY_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime(later))
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_a_failed_token_is_not_remembered(keys: TokenKeys) -> None:
    verifier = auth.TokenVerifier(keys)
    token = _token(keys)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    for _ in range(2):
        with pytest.raises(InvalidToken, match="signature"):
            verifier.verify(forged)
    with pytest.raises(InvalidToken, match="subject"):
        verifier.verify(_token(keys, sub="not a number"))
    assert verifier.verify(token).user_id == 7


def test_tokens_of_another_key_are_refused_by_each_verifier(
    keys: TokenKeys, settings: Settings
) -> None:
    other = token_keys(settings.model_copy(update={"jwt_secret": SecretStr("x" * 40)}))
    mine, theirs = auth.TokenVerifier(keys), auth.TokenVerifier(other)
    token = _token(keys)
    assert mine.verify(token).user_id == 7
    with pytest.raises(InvalidToken):
        theirs.verify(token)


def test_the_oldest_token_is_forgotten_past_the_bound(
    keys: TokenKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth.TokenVerifier, "MAX_REMEMBERED", 2)
    verifier = auth.TokenVerifier(keys)
    tokens = [_token(keys) for _ in range(3)]
    remembered = [verifier.verify(t) for t in tokens]
    # The first was forgotten: checking it again gives new (equal) claims.
    assert verifier.verify(tokens[2]) is remembered[2]
    again = verifier.verify(tokens[0])
    assert again == remembered[0]
    assert again is not remembered[0]


class _FrozenDatetime:
    """`datetime` for PyJWT, whose `now()` is `at` (epoch seconds)."""

    def __init__(self, at: float) -> None:
        self._at = at

    def now(self, tz: object = None) -> object:
        import datetime as dt

        return dt.datetime.fromtimestamp(self._at, tz=dt.UTC)

    def __getattr__(self, name: str) -> object:
        import datetime as dt

        return getattr(dt.datetime, name)
