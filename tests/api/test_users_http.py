"""The /users routes on a live server: your own password, and administration under
`users:admin`. No answer ever carries a password hash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from api.backend.config import Settings
from api.backend.database import Database
from api.services import auth
from queries.users import UserRow
from tests.api._live import live_server
from tests.conftest import TEST_PASSWORD

READER = "reader@example.com"  # the conftest `user`
ADMIN = "admin@example.com"
NEW_PASSWORD = "a brand new password"


@pytest.fixture
async def admin(pool: asyncpg.Pool) -> UserRow:
    return await auth.register_user(
        Database(pool),
        email=ADMIN,
        name="Admin",
        password=TEST_PASSWORD,
        scopes=["movies:read", "users:admin"],
        rounds=4,
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    with live_server(settings) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client


async def _bearer(http: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await http.post("/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _refused_at_once(
    http: httpx.AsyncClient, headers: dict[str, str], status: int, path: str = "/users/me"
) -> None:
    """The very next request answers `status`: the change was made on this worker, which
    forgets the user's token state at once rather than wait for its notification."""
    assert (await http.get(path, headers=headers)).status_code == status


def _no_hash(body: Any) -> None:
    text = repr(body)
    assert "password_hash" not in text
    assert "$2b$" not in text


# --- your own password ---------------------------------------------------------


async def test_changing_your_password_ends_your_tokens(
    http: httpx.AsyncClient, user: UserRow
) -> None:
    bearer = await _bearer(http, READER, TEST_PASSWORD)
    other = await _bearer(http, READER, TEST_PASSWORD)  # another device
    response = await http.post(
        "/users/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer,
    )
    assert response.status_code == 204
    await _refused_at_once(http, bearer, 401)
    await _refused_at_once(http, other, 401)
    old = await http.post("/token", data={"username": READER, "password": TEST_PASSWORD})
    assert old.status_code == 400
    fresh = await _bearer(http, READER, NEW_PASSWORD)
    assert (await http.get("/users/me", headers=fresh)).json()["email"] == READER


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"current_password": "wrong password", "new_password": NEW_PASSWORD},
            400,
            "wrong_password",
        ),
        ({"current_password": TEST_PASSWORD, "new_password": "short"}, 422, "invalid_user_data"),
        ({"current_password": TEST_PASSWORD, "new_password": "é" * 37}, 422, "invalid_user_data"),
        ({"current_password": TEST_PASSWORD}, 422, "validation_error"),
        ({"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "x": 1}, 422, None),
    ],
)
async def test_a_refused_password_change_changes_nothing(
    http: httpx.AsyncClient,
    user: UserRow,
    pool: asyncpg.Pool,
    body: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    bearer = await _bearer(http, READER, TEST_PASSWORD)
    before = await pool.fetchrow("SELECT * FROM myapi.users WHERE email = $1", READER)
    response = await http.post("/users/me/password", json=body, headers=bearer)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code
    assert await pool.fetchrow("SELECT * FROM myapi.users WHERE email = $1", READER) == before
    assert (await http.get("/users/me", headers=bearer)).status_code == 200


async def test_a_password_change_needs_a_token(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/users/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="myapi"'


# --- administration --------------------------------------------------------------


async def test_every_admin_route_needs_the_admin_scope(
    http: httpx.AsyncClient, user: UserRow
) -> None:
    bearer = await _bearer(http, READER, TEST_PASSWORD)
    calls = [
        ("GET", "/users", None),
        ("POST", "/users", {"email": "x@example.com", "name": "X", "password": NEW_PASSWORD}),
        ("GET", f"/users/{user.user_id}", None),
        ("PATCH", f"/users/{user.user_id}", {"is_active": False}),
        ("POST", f"/users/{user.user_id}/logout", None),
        ("DELETE", f"/users/{user.user_id}", None),
    ]
    for method, path, body in calls:
        response = await http.request(method, path, json=body, headers=bearer)
        assert response.status_code == 403, (method, path)
        assert 'scope="users:admin"' in response.headers["www-authenticate"]
        unauthenticated = await http.request(method, path, json=body)
        assert unauthenticated.status_code == 401, (method, path)
    assert (await http.get("/users/me", headers=bearer)).json()["is_active"] is True


async def test_an_admin_creates_a_user_who_can_log_in(
    http: httpx.AsyncClient, admin: UserRow
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    response = await http.post(
        "/users",
        json={
            "email": "  New.Person@Example.COM ",
            "name": "New Person",
            "password": NEW_PASSWORD,
            "scopes": ["movies:write", "movies:read"],
        },
        headers=bearer,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    _no_hash(created)
    assert created["email"] == "new.person@example.com"
    assert created["scopes"] == ["movies:read", "movies:write"]
    assert response.headers["location"] == f"/users/{created['user_id']}"
    got = await http.get(response.headers["location"], headers=bearer)
    assert got.json() == created
    token = await http.post(
        "/token", data={"username": "NEW.PERSON@example.com", "password": NEW_PASSWORD}
    )
    assert token.json()["scope"] == "movies:read movies:write"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "ADMIN@example.com", "name": "Dup", "password": NEW_PASSWORD}, 409, None),
        ({"email": "not-an-email", "name": "N", "password": NEW_PASSWORD}, 422, None),
        ({"email": "n@example.com", "name": " ", "password": NEW_PASSWORD}, 422, None),
        ({"email": "n@example.com", "name": "N", "password": "short"}, 422, None),
        ({"email": "n@example.com", "name": "N", "password": "x" * 73}, 422, None),
        (
            {"email": "n@example.com", "name": "N", "password": NEW_PASSWORD, "scopes": ["root"]},
            422,
            None,
        ),
        (
            {"email": "n@example.com", "name": "N", "password": NEW_PASSWORD, "admin": True},
            422,
            None,
        ),
        ({"email": "n@example.com", "name": "N"}, 422, None),
    ],
)
async def test_a_refused_creation_adds_no_user(
    http: httpx.AsyncClient,
    admin: UserRow,
    pool: asyncpg.Pool,
    body: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    response = await http.post("/users", json=body, headers=bearer)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    _no_hash(response.json())
    assert await pool.fetchval("SELECT count(*) FROM myapi.users") == 1


async def test_creating_a_user_needs_at_least_one_scope(
    http: httpx.AsyncClient, admin: UserRow, pool: asyncpg.Pool
) -> None:
    """As `api-admin users create`, which always grants one (movies:read by default)."""
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    body = {"email": "n@example.com", "name": "N", "password": NEW_PASSWORD, "scopes": []}
    response = await http.post("/users", json=body, headers=bearer)
    assert response.status_code == 422, response.text
    assert (
        response.json()["detail"]
        == "scopes: List should have at least 1 item after validation, not 0"
    )
    assert await pool.fetchval("SELECT count(*) FROM myapi.users") == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"scopes": "movies:read"},
        {"scopes": ["movies:read", 1]},
        {"scopes": {"movies:read": True}},
        {"name": 1},
        {"password": ["a brand new password"]},
    ],
    ids=["scopes-string", "scopes-number", "scopes-object", "name-number", "password-list"],
)
async def test_a_creation_body_is_not_coerced(
    http: httpx.AsyncClient, admin: UserRow, pool: asyncpg.Pool, extra: dict[str, Any]
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    body = {"email": "n@example.com", "name": "N", "password": NEW_PASSWORD} | extra
    response = await http.post("/users", json=body, headers=bearer)
    assert response.status_code == 422, response.text
    assert await pool.fetchval("SELECT count(*) FROM myapi.users") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"is_active": "false"},
        {"is_active": 0},
        {"is_active": "true"},
        {"is_active": 1},
        {"is_active": "off"},
        {"scopes": []},
        {"scopes": "movies:read"},
        {"scopes": ["movies:read", 1]},
    ],
    ids=[
        "false-string",
        "zero",
        "true-string",
        "one",
        "off",
        "no-scopes",
        "scopes-string",
        "scopes-number",
    ],
)
async def test_a_change_body_is_strict(
    http: httpx.AsyncClient, admin: UserRow, user: UserRow, pool: asyncpg.Pool, body: Any
) -> None:
    """Only JSON true and false are booleans, and only a non-empty list of strings scopes:
    a client's "false" or 0 must not disable a user by coercion."""
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    before = await pool.fetchrow("SELECT * FROM myapi.users WHERE user_id = $1", user.user_id)
    response = await http.patch(f"/users/{user.user_id}", json=body, headers=bearer)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    after = await pool.fetchrow("SELECT * FROM myapi.users WHERE user_id = $1", user.user_id)
    assert after == before


async def test_users_are_listed_a_page_at_a_time(
    http: httpx.AsyncClient, admin: UserRow, pool: asyncpg.Pool
) -> None:
    db = Database(pool)
    for n in range(4):
        await auth.register_user(
            db, email=f"u{n}@example.com", name=f"U{n}", password=NEW_PASSWORD, rounds=4
        )
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    seen: list[str] = []
    after = 0
    pages = 0
    while True:
        response = await http.get("/users", params={"after": after, "limit": 2}, headers=bearer)
        assert response.status_code == 200
        page = response.json()
        _no_hash(page)
        seen += [item["email"] for item in page["items"]]
        pages += 1
        if page["next_after"] is None:
            break
        after = page["next_after"]
    expected = await pool.fetch("SELECT email FROM myapi.users ORDER BY user_id")
    assert seen == [row["email"] for row in expected]
    assert pages == 3
    bad = await http.get("/users", params={"limit": 0}, headers=bearer)
    assert bad.status_code == 422
    unknown = await http.get("/users", params={"page": 2}, headers=bearer)
    assert unknown.status_code == 422


async def test_disabling_ends_tokens_and_enabling_needs_a_new_login(
    http: httpx.AsyncClient, admin: UserRow, user: UserRow
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    reader = await _bearer(http, READER, TEST_PASSWORD)
    off = await http.patch(f"/users/{user.user_id}", json={"is_active": False}, headers=bearer)
    assert off.status_code == 200
    assert off.json()["is_active"] is False
    await _refused_at_once(http, reader, 401)
    refused = await http.post("/token", data={"username": READER, "password": TEST_PASSWORD})
    assert refused.json()["error"] == "invalid_grant"
    on = await http.patch(f"/users/{user.user_id}", json={"is_active": True}, headers=bearer)
    assert on.json()["is_active"] is True
    assert (await http.get("/users/me", headers=reader)).status_code == 401  # stays dead
    fresh = await _bearer(http, READER, TEST_PASSWORD)
    assert (await http.get("/users/me", headers=fresh)).status_code == 200


async def test_taking_a_scope_away_ends_tokens_and_adding_one_does_not(
    http: httpx.AsyncClient, admin: UserRow, user: UserRow
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    reader = await _bearer(http, READER, TEST_PASSWORD)
    path = f"/users/{user.user_id}"
    more = await http.patch(path, json={"scopes": ["movies:read", "movies:write"]}, headers=bearer)
    assert more.json()["scopes"] == ["movies:read", "movies:write"]
    await asyncio.sleep(0.2)
    assert (await http.get("/movies/1", headers=reader)).status_code == 200
    fewer = await http.patch(path, json={"scopes": ["movies:write"]}, headers=bearer)
    assert fewer.json()["scopes"] == ["movies:write"]
    await _refused_at_once(http, reader, 401, "/movies/1")
    fresh = await _bearer(http, READER, TEST_PASSWORD)
    assert (await http.get("/movies/1", headers=fresh)).status_code == 403


async def test_an_admin_logs_a_user_out(
    http: httpx.AsyncClient, admin: UserRow, user: UserRow
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    reader = await _bearer(http, READER, TEST_PASSWORD)
    response = await http.post(f"/users/{user.user_id}/logout", headers=bearer)
    assert response.status_code == 204
    await _refused_at_once(http, reader, 401)
    assert (await http.get("/users/me", headers=bearer)).status_code == 200


async def test_deleting_a_user_ends_their_tokens(
    http: httpx.AsyncClient, admin: UserRow, user: UserRow, pool: asyncpg.Pool
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    reader = await _bearer(http, READER, TEST_PASSWORD)
    assert (await http.delete(f"/users/{user.user_id}", headers=bearer)).status_code == 204
    await _refused_at_once(http, reader, 401)
    again = await http.delete(f"/users/{user.user_id}", headers=bearer)
    assert again.status_code == 404
    assert again.json()["code"] == "user_not_found"
    assert await pool.fetchval("SELECT count(*) FROM myapi.users") == 1


@pytest.mark.parametrize("path", ["/users/999", "/users/0", "/users/-1", "/users/99999999999"])
async def test_unknown_users_are_404(http: httpx.AsyncClient, admin: UserRow, path: str) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    for method, body in (("GET", None), ("PATCH", {"is_active": False}), ("DELETE", None)):
        response = await http.request(method, path, json=body, headers=bearer)
        assert response.status_code == 404, (method, response.text)


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("PATCH", {"is_active": False}),
        ("PATCH", {"scopes": ["movies:read"]}),
        ("DELETE", None),
    ],
)
async def test_an_admin_cannot_lock_themselves_out(
    http: httpx.AsyncClient, admin: UserRow, pool: asyncpg.Pool, method: str, body: Any
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    before = await pool.fetchrow("SELECT * FROM myapi.users WHERE user_id = $1", admin.user_id)
    response = await http.request(method, f"/users/{admin.user_id}", json=body, headers=bearer)
    assert response.status_code == 409
    assert response.json()["code"] == "self_lockout"
    after = await pool.fetchrow("SELECT * FROM myapi.users WHERE user_id = $1", admin.user_id)
    assert after == before


@pytest.mark.parametrize(
    "body", [{}, {"scopes": ["movies:read", "nope"]}, {"is_active": "maybe"}, {"name": "X"}]
)
async def test_a_refused_change_changes_nothing(
    http: httpx.AsyncClient, admin: UserRow, user: UserRow, pool: asyncpg.Pool, body: Any
) -> None:
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    before = await pool.fetchrow("SELECT * FROM myapi.users WHERE user_id = $1", user.user_id)
    response = await http.patch(f"/users/{user.user_id}", json=body, headers=bearer)
    assert response.status_code == 422, response.text
    after = await pool.fetchrow("SELECT * FROM myapi.users WHERE user_id = $1", user.user_id)
    assert after == before


@pytest.mark.parametrize(
    ("path", "raw", "status"),
    [
        ("/users", '{"email": "\\ud800@example.com", "name": "N", "password": "long enough"}', 422),
        (
            "/users",
            '{"email": "n@example.com", "name": "N\\udcff", "password": "long enough"}',
            422,
        ),
        ("/users", '{"email": "n@example.com", "name": "N", "password": "long \\ud800 pw"}', 422),
        ("/users", '{"email": "n@example.com", "name": "N", "password": "long \\u0000 pw"}', 422),
        (
            "/users/me/password",
            '{"current_password": "\\ud800", "new_password": "long enough"}',
            400,
        ),
        ("/users/me/password", '{"current_password": "x", "new_password": "long \\ud800 pw"}', 422),
    ],
)
async def test_text_postgresql_cannot_hold_is_a_4xx_not_a_500(
    http: httpx.AsyncClient, admin: UserRow, pool: asyncpg.Pool, path: str, raw: str, status: int
) -> None:
    """JSON can spell a lone surrogate or a NUL, which no UTF-8 text column holds."""
    bearer = await _bearer(http, ADMIN, TEST_PASSWORD)
    before = await pool.fetch("SELECT * FROM myapi.users ORDER BY user_id")
    headers = bearer | {"Content-Type": "application/json"}
    response = await http.post(path, content=raw.encode(), headers=headers)
    assert response.status_code == status, response.text
    assert await pool.fetch("SELECT * FROM myapi.users ORDER BY user_id") == before


async def test_a_login_name_in_broken_utf8_is_just_a_failed_login(
    http: httpx.AsyncClient, user: UserRow
) -> None:
    for body in (b"username=%ED%A0%80%40example.com&password=x", b"username=%FF&password=%FF"):
        response = await http.post(
            "/token",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
