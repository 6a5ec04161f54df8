"""POST /token (OAuth2 password grant), bearer-token checks and GET /users/me.

Tests that create, disable or delete users get their own database (tests/conftest.py);
the forged-token table only reads, so it shares one app per module (`shared_app`).
"""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import pytest_asyncio
from jwt.warnings import InsecureKeyLengthWarning

from api.backend.config import Settings
from api.backend.database import Database
from api.exc import InvalidUserData
from api.services import auth
from queries.users import UserRow
from tests.api import _support
from tests.api._support import PASSWORD, SharedApp, assert_problem

shared_app = pytest_asyncio.fixture(scope="module", loop_scope="module")(_support.shared_app)
module_loop = pytest.mark.asyncio(loop_scope="module")

ADA_EMAIL = "Ada.Lovelace@Example.com"
SHARED_EMAIL = "shared@example.com"  # the shared app's user (tests/api/_support.py)
INVALID_GRANT = {
    "type": "urn:myapi:problem:invalid_grant",
    "title": "Invalid credentials",
    "status": 400,
    "detail": "Incorrect e-mail or password.",
    "code": "invalid_grant",
    "error": "invalid_grant",
    "error_description": "Incorrect e-mail or password.",
}
PROTECTED = ["/movies/1", "/movies?limit=1", "/movies/top", "/users/me"]


def _secret(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    return settings.jwt_secret.get_secret_value()


async def _shared_user_id(shared: SharedApp) -> int:
    user_id = await shared.pool.fetchval(
        "SELECT user_id FROM myapi.users WHERE email = 'shared@example.com'"
    )
    assert isinstance(user_id, int)
    return user_id


@pytest.fixture
async def ada(pool: asyncpg.Pool) -> UserRow:
    """A user with the default scope and the password PASSWORD (e-mail stored lowercased)."""
    return await auth.register_user(
        Database(pool), email=ADA_EMAIL, name="Ada Lovelace", password=PASSWORD, rounds=4
    )


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/token", data={"username": username, "password": password})


# --------------------------------------------------------------------------- POST /token


async def test_token_success(client: httpx.AsyncClient, ada: UserRow, settings: Settings) -> None:
    response = await _login(client, "ada.lovelace@example.com", PASSWORD)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_expire_minutes * 60 == 1800
    assert body["scope"] == "movies:read"
    assert isinstance(body["access_token"], str)
    assert body["access_token"].count(".") == 2


async def test_token_claims(client: httpx.AsyncClient, ada: UserRow, settings: Settings) -> None:
    before = int(time.time())
    first = (await _login(client, ADA_EMAIL, PASSWORD)).json()["access_token"]
    second = (await _login(client, ADA_EMAIL, PASSWORD)).json()["access_token"]
    after = int(time.time())
    assert jwt.get_unverified_header(first)["alg"] == "HS256"
    claims = jwt.decode(first, _secret(settings), algorithms=["HS256"])
    assert set(claims) == {"sub", "exp", "iat", "jti", "scope", "ver"}
    assert claims["sub"] == str(ada.user_id)
    assert claims["scope"] == "movies:read"
    assert claims["ver"] == ada.token_version == 0
    assert before - 1 <= claims["iat"] <= after + 1
    assert claims["exp"] - claims["iat"] == settings.access_token_expire_minutes * 60
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    other = jwt.decode(second, _secret(settings), algorithms=["HS256"])
    assert other["jti"] != claims["jti"]


@module_loop
@pytest.mark.parametrize(
    "username",
    [
        "shared@example.com",
        "SHARED@EXAMPLE.COM",
        "Shared@Example.com",
        "sHaReD@eXaMpLe.CoM",
        "  shared@example.com  ",
        "\tSHARED@example.com\n",
    ],
)
async def test_username_any_case_and_surrounding_spaces(
    shared_app: SharedApp, username: str
) -> None:
    response = await _login(shared_app.client, username, PASSWORD)
    assert response.status_code == 200, response.text
    claims = jwt.decode(
        response.json()["access_token"], _secret(shared_app.settings), algorithms=["HS256"]
    )
    assert claims["sub"] == str(await _shared_user_id(shared_app))


BAD_LOGINS: list[tuple[str, str, str]] = [
    # (id, username, password)
    ("wrong-password", SHARED_EMAIL, "wrong password!"),
    ("password-other-case", SHARED_EMAIL, PASSWORD.upper()),
    ("password-trailing-space", SHARED_EMAIL, PASSWORD + " "),
    ("password-prefix", SHARED_EMAIL, PASSWORD[:-1]),
    ("password-empty-ish", SHARED_EMAIL, " "),
    ("unknown-user", "nobody@example.com", PASSWORD),
    ("email-typo", "shared@example.org", PASSWORD),
    ("email-inner-space", "shared @example.com", PASSWORD),
    ("sql-ish-username", "' OR '1'='1", PASSWORD),
    ("like-pattern-username", "%@example.com", PASSWORD),
    ("regex-username", ".*", PASSWORD),
]


@module_loop
@pytest.mark.parametrize(
    ("username", "password"), [c[1:] for c in BAD_LOGINS], ids=[c[0] for c in BAD_LOGINS]
)
async def test_bad_credentials_are_invalid_grant(
    shared_app: SharedApp, username: str, password: str
) -> None:
    response = await _login(shared_app.client, username, password)
    assert_problem(response, 400, "invalid_grant")
    assert response.json() == INVALID_GRANT
    assert "access_token" not in response.text
    assert "www-authenticate" not in response.headers


async def test_wrong_password_unknown_and_disabled_user_look_identical(
    client: httpx.AsyncClient, ada: UserRow, pool: asyncpg.Pool
) -> None:
    wrong = await _login(client, ADA_EMAIL, "not the password")
    unknown = await _login(client, "ghost@example.com", PASSWORD)
    await pool.execute("UPDATE myapi.users SET is_active = false WHERE user_id = $1", ada.user_id)
    disabled = await _login(client, ADA_EMAIL, PASSWORD)
    for response in (wrong, unknown, disabled):
        assert response.status_code == 400
        assert response.json() == INVALID_GRANT
    assert wrong.content == unknown.content == disabled.content
    assert (
        wrong.headers["content-type"]
        == unknown.headers["content-type"]
        == disabled.headers["content-type"]
    )


async def test_password_over_72_bytes_is_not_truncated(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    password = "p" * 72
    await auth.register_user(
        Database(pool), email="long@example.com", name="Long", password=password, rounds=4
    )
    assert (await _login(client, "long@example.com", password)).status_code == 200
    response = await _login(client, "long@example.com", password + "extra")
    assert response.status_code == 400
    assert response.json() == INVALID_GRANT


# --------------------------------------------------------------------------- bearer tokens


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(user_id: int, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "jti": "0" * 32,
        "scope": "movies:read",
        "ver": 0,
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


TokenMaker = Callable[[str, int], str]


def _signed(algorithm: str = "HS256", **changes: Any) -> TokenMaker:
    def make(secret: str, user_id: int) -> str:
        with warnings.catch_warnings():
            # PyJWT warns that a 54-byte key is short for HS512; the forgery is the point.
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            return jwt.encode(_claims(user_id, **changes), secret, algorithm=algorithm)

    return make


def _other_secret(secret: str, user_id: int) -> str:
    return jwt.encode(_claims(user_id), "another-secret-" + "z" * 40, algorithm="HS256")


def _alg_none(secret: str, user_id: int) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user_id))}."


def _alg_none_with_signature(secret: str, user_id: int) -> str:
    good = jwt.encode(_claims(user_id), secret, algorithm="HS256")
    signature = good.rsplit(".", 1)[1]
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user_id))}.{signature}"


def _payload_swapped(secret: str, user_id: int) -> str:
    # A valid signature over other claims: here a longer lifetime and more scopes.
    good = jwt.encode(_claims(user_id), secret, algorithm="HS256")
    header, _, signature = good.split(".")
    forged = _b64(_claims(user_id, exp=int(time.time()) + 10**6, scope="movies:read users:admin"))
    return f"{header}.{forged}.{signature}"


def _garbage(secret: str, user_id: int) -> str:
    return "garbage"


def _three_garbage_parts(secret: str, user_id: int) -> str:
    return "abc.def.ghi"


def _non_json_parts(secret: str, user_id: int) -> str:
    return "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"


BAD_TOKENS: list[tuple[str, TokenMaker]] = [
    ("garbage", _garbage),
    ("three-garbage-parts", _three_garbage_parts),
    ("non-json-payload", _non_json_parts),
    ("other-secret", _other_secret),
    ("alg-none", _alg_none),
    ("alg-none-with-signature", _alg_none_with_signature),
    ("hs512-same-secret", _signed("HS512")),
    ("hs384-same-secret", _signed("HS384")),
    ("expired", _signed(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
    ("expired-beyond-leeway", _signed(exp=int(time.time()) - 60)),
    ("missing-exp", _signed(exp=None)),
    ("missing-iat", _signed(iat=None)),
    ("missing-sub", _signed(sub=None)),
    ("sub-not-a-number", _signed(sub="admin")),
    ("sub-integer-claim", _signed(sub=1)),
    ("exp-not-a-number", _signed(exp="tomorrow")),
    ("not-yet-valid", _signed(nbf=int(time.time()) + 3600)),
    ("payload-swapped", _payload_swapped),
]


@module_loop
@pytest.mark.parametrize("make", [t[1] for t in BAD_TOKENS], ids=[t[0] for t in BAD_TOKENS])
async def test_invalid_token_is_401_invalid_token(shared_app: SharedApp, make: TokenMaker) -> None:
    # The table is built at import; the expired cases are far enough in the past.
    token = make(_secret(shared_app.settings), await _shared_user_id(shared_app))
    for path in PROTECTED:
        response = await shared_app.client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401, "invalid_token")
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer")
        assert 'error="invalid_token"' in challenge


@module_loop
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Cookie": "access_token=abc"},
    ],
    ids=["none", "empty", "scheme-only", "scheme-space", "basic", "cookie"],
)
async def test_missing_token_is_401_with_bearer_challenge(
    shared_app: SharedApp, headers: dict[str, str]
) -> None:
    for path in PROTECTED:
        response = await shared_app.client.get(path, headers=headers)
        body = assert_problem(response, 401, "invalid_token")
        assert body["detail"] == "A bearer token is required."
        assert response.headers["www-authenticate"] == 'Bearer realm="myapi"'


@module_loop
async def test_token_within_clock_leeway_is_accepted(shared_app: SharedApp) -> None:
    now = int(time.time())
    token = _signed(exp=now - 3, iat=now - 600)(
        _secret(shared_app.settings), await _shared_user_id(shared_app)
    )
    response = await shared_app.client.get(
        "/movies/1", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


@module_loop
@pytest.mark.parametrize(
    ("scope", "status"),
    [
        ("movies:read", 200),
        ("users:admin movies:read", 200),
        ("movies:write movies:read users:admin", 200),
        ("", 403),
        ("movies:write", 403),
        ("users:admin", 403),
        ("movies:readx", 403),
        ("Movies:Read", 403),
        ("movies:read,users:admin", 403),
    ],
)
async def test_scope_of_crafted_token(shared_app: SharedApp, scope: str, status: int) -> None:
    token = _signed(scope=scope)(_secret(shared_app.settings), await _shared_user_id(shared_app))
    headers = {"Authorization": f"Bearer {token}"}
    response = await shared_app.client.get("/movies/1", headers=headers)
    if status == 200:
        assert response.status_code == 200, response.text
        assert response.json()["movie_id"] == 1
    else:
        body = assert_problem(response, 403, "insufficient_scope")
        assert body["scope"] == "movies:read"
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer")
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="movies:read"' in challenge
    # /users/me needs a valid token, no scope.
    assert (await shared_app.client.get("/users/me", headers=headers)).status_code == 200


async def test_user_without_scopes_gets_403_on_movies(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await auth.register_user(
        Database(pool),
        email="noscope@example.com",
        name="No Scope",
        password=PASSWORD,
        scopes=[],
        rounds=4,
    )
    login = await _login(client, "noscope@example.com", PASSWORD)
    assert login.status_code == 200, login.text
    assert login.json()["scope"] == ""
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    for path in ["/movies/1", "/movies", "/movies/top", "/movies/released-since?year=2000"]:
        response = await client.get(path, headers=headers)
        assert_problem(response, 403, "insufficient_scope")
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    me = await client.get("/users/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["scopes"] == []


# --------------------------------------------------------------------------- /users/me


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _keys(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _keys(inner)


async def test_users_me(
    client: httpx.AsyncClient, bearer: dict[str, str], user: UserRow, pool: asyncpg.Pool
) -> None:
    response = await client.get("/users/me", headers=bearer)
    assert response.status_code == 200, response.text
    body = response.json()
    row = await pool.fetchrow(
        "SELECT user_id, email, name, is_active, scopes, created_at, password_hash "
        "FROM myapi.users WHERE user_id = $1",
        user.user_id,
    )
    assert row is not None
    assert set(body) == {"user_id", "email", "name", "is_active", "scopes", "created_at"}
    assert body["user_id"] == row["user_id"] == user.user_id
    assert body["email"] == "reader@example.com" == row["email"]
    assert body["name"] == "Reader"
    assert body["is_active"] is True
    assert body["scopes"] == ["movies:read"]
    assert datetime.fromisoformat(body["created_at"]) == row["created_at"]
    assert not [k for k in _keys(body) if "hash" in k.lower()]
    assert row["password_hash"] not in response.text
    assert "$2b$" not in response.text


async def test_users_me_of_deleted_user_is_401(
    client: httpx.AsyncClient, bearer: dict[str, str], user: UserRow, pool: asyncpg.Pool
) -> None:
    assert (await client.get("/users/me", headers=bearer)).status_code == 200
    await pool.execute("DELETE FROM myapi.users WHERE user_id = $1", user.user_id)
    response = await client.get("/users/me", headers=bearer)
    assert_problem(response, 401, "invalid_token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_users_me_of_disabled_user_is_401(
    client: httpx.AsyncClient, bearer: dict[str, str], user: UserRow, pool: asyncpg.Pool
) -> None:
    await pool.execute("UPDATE myapi.users SET is_active = false WHERE user_id = $1", user.user_id)
    response = await client.get("/users/me", headers=bearer)
    assert_problem(response, 401, "invalid_token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_users_me_for_token_of_unknown_user_is_401(
    client: httpx.AsyncClient, settings: Settings, user: UserRow
) -> None:
    token = _signed()(_secret(settings), user.user_id + 1000)
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "invalid_token")


# --------------------------------------------------------------------------- edges


@pytest.mark.parametrize("subject", ["99999999999999999999", "0", "-1", "1.5", " 1", "\u0661"])
async def test_token_whose_subject_is_no_user_id_is_401(
    client: httpx.AsyncClient, settings: Settings, subject: str
) -> None:
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + 60, "scope": "movies:read", "ver": 0}
    token = jwt.encode(claims, _secret(settings), algorithm="HS256")
    response = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 401, "invalid_token")
    assert body["detail"] == "The token's subject is not a user."


@pytest.mark.parametrize(
    "email", ["nul\x01@b.cd", "tab\t@b.cd", "no-at-sign.cd", "a@b", "two@@b.cd", "sp ace@b.cd"]
)
async def test_user_with_an_invalid_email_is_refused(pool: asyncpg.Pool, email: str) -> None:
    with pytest.raises(InvalidUserData, match="is not an e-mail address"):
        await auth.register_user(Database(pool), email=email, name="N", password=PASSWORD, rounds=4)
    assert await pool.fetchval("SELECT count(*) FROM myapi.users") == 0


async def test_email_compares_in_any_unicode_composition(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    composed, decomposed = "\u00fcni@example.com", "u\u0308ni@example.com"
    await auth.register_user(
        Database(pool), email=decomposed, name="U", password=PASSWORD, rounds=4
    )
    assert await pool.fetchval("SELECT email FROM myapi.users") == composed
    assert (await _login(client, composed.upper(), PASSWORD)).status_code == 200
    assert (await _login(client, decomposed, PASSWORD)).status_code == 200
