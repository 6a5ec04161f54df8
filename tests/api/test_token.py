"""POST /token as RFC 6749 sections 4.3, 5.1 and 5.2 ask: the form, scopes and errors.

Every refusal is a 400 whose problem body carries the RFC's `error` and
`error_description`; success and refusal alike are `Cache-Control: no-store`.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlencode

import asyncpg
import httpx
import jwt
import pytest
from starlette.types import Message

from api.backend.config import Settings
from api.backend.database import Database
from api.main import create_app
from api.services import auth
from queries.users import UserRow
from tests.api._support import PASSWORD, assert_problem

EMAIL = "ada@example.com"
FORM = "application/x-www-form-urlencoded"
# RFC 6749 section 5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")


@pytest.fixture
async def ada(pool: asyncpg.Pool) -> UserRow:
    """A user who may read and change movies, with the password PASSWORD."""
    return await auth.register_user(
        Database(pool),
        email=EMAIL,
        name="Ada",
        password=PASSWORD,
        scopes=["movies:read", "movies:write"],
        rounds=4,
    )


def _secret(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    return settings.jwt_secret.get_secret_value()


def _form(*pairs: tuple[str, str]) -> str:
    return urlencode(pairs)


def assert_token_error(response: httpx.Response, error: str) -> dict[str, object]:
    """An RFC 6749 section 5.2 error inside the project's problem body, never cached."""
    body = assert_problem(response, 400, error)
    assert body["error"] == error
    assert body["error_description"] == body["detail"]
    assert DESCRIPTION.fullmatch(body["detail"]), body["detail"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert "access_token" not in body
    return body


@dataclass(frozen=True)
class Body:
    id: str
    content: str
    error: str | None  # None: a token
    content_type: str | None = FORM


USER = ("username", EMAIL)
PASS = ("password", PASSWORD)
GRANT = ("grant_type", "password")

BODIES: list[Body] = [
    # accepted
    Body("full", _form(GRANT, USER, PASS), None),
    Body("no-grant-type", _form(USER, PASS), None),
    Body("empty-grant-type-is-omitted", _form(("grant_type", ""), USER, PASS), None),
    Body("empty-scope-is-omitted", _form(GRANT, USER, PASS, ("scope", "")), None),
    Body("unknown-parameter-ignored", _form(GRANT, USER, PASS, ("client_id", "x")), None),
    Body("unknown-parameter-twice", _form(USER, PASS, ("x", "1"), ("x", "2")), None),
    Body("charset", _form(USER, PASS), None, f"{FORM}; charset=UTF-8"),
    Body("media-type-any-case", _form(USER, PASS), None, "Application/X-WWW-Form-URLencoded"),
    # unsupported_grant_type, ahead of the missing fields another grant would not need
    Body(
        "client-credentials",
        _form(("grant_type", "client_credentials"), USER, PASS),
        "unsupported_grant_type",
    ),
    Body(
        "client-credentials-alone",
        _form(("grant_type", "client_credentials")),
        "unsupported_grant_type",
    ),
    Body(
        "grant-type-upper-case",
        _form(("grant_type", "PASSWORD"), USER, PASS),
        "unsupported_grant_type",
    ),
    Body(
        "grant-type-padded",
        _form(("grant_type", " password"), USER, PASS),
        "unsupported_grant_type",
    ),
    # invalid_request: missing
    Body("no-username", _form(GRANT, PASS), "invalid_request"),
    Body("no-password", _form(GRANT, USER), "invalid_request"),
    Body("empty-username", _form(GRANT, ("username", ""), PASS), "invalid_request"),
    Body("empty-password", _form(GRANT, USER, ("password", "")), "invalid_request"),
    Body("only-grant-type", _form(GRANT), "invalid_request"),
    Body("empty-body", "", "invalid_request"),
    Body("empty-form", "", "invalid_request", None),
    # invalid_request: not a form
    Body(
        "json",
        json.dumps({"username": EMAIL, "password": PASSWORD}),
        "invalid_request",
        "application/json",
    ),
    Body("text-plain", _form(USER, PASS), "invalid_request", "text/plain"),
    Body("no-content-type", _form(USER, PASS), "invalid_request", None),
    Body("form-misspelt", _form(USER, PASS), "invalid_request", "application/x-www-form"),
    Body(
        "multipart",
        f'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\n{EMAIL}\r\n'
        f'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\n{PASSWORD}\r\n--b--\r\n',
        "invalid_request",
        "multipart/form-data; boundary=b",
    ),
    Body("field-over-1MB", _form(USER, ("password", "p" * (1024 * 1024 + 1))), "invalid_request"),
    # invalid_request: repeated (section 3.2)
    Body("username-twice", _form(USER, USER, PASS), "invalid_request"),
    Body("password-twice", _form(USER, PASS, PASS), "invalid_request"),
    Body("password-twice-differing", _form(USER, PASS, ("password", "other")), "invalid_request"),
    Body("password-twice-one-empty", _form(USER, ("password", ""), PASS), "invalid_request"),
    Body("grant-type-twice", _form(GRANT, GRANT, USER, PASS), "invalid_request"),
    Body(
        "scope-twice",
        _form(USER, PASS, ("scope", "movies:read"), ("scope", "movies:read")),
        "invalid_request",
    ),
    # invalid_scope: checked once the user is known
    Body("scope-not-held", _form(USER, PASS, ("scope", "users:admin")), "invalid_scope"),
    Body("scope-unknown", _form(USER, PASS, ("scope", "movies:delete")), "invalid_scope"),
    # invalid_grant: the credentials
    Body("wrong-password", _form(GRANT, USER, ("password", "wrong password")), "invalid_grant"),
    Body("unknown-user", _form(GRANT, ("username", "nobody@example.com"), PASS), "invalid_grant"),
    Body(
        "bad-scope-of-unknown-user",
        _form(("username", "x@y.zz"), PASS, ("scope", "nope")),
        "invalid_grant",
    ),
]

assert len({b.id for b in BODIES}) == len(BODIES)


@pytest.mark.parametrize("case", BODIES, ids=[b.id for b in BODIES])
async def test_token_request_body(client: httpx.AsyncClient, ada: UserRow, case: Body) -> None:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    response = await client.post("/token", content=case.content.encode(), headers=headers)
    if case.error is None:
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == "movies:read movies:write"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
    else:
        assert_token_error(response, case.error)
        assert PASSWORD not in response.text


async def test_error_body_is_a_problem_with_the_rfc_members(client: httpx.AsyncClient) -> None:
    response = await client.post("/token", data={"username": EMAIL})
    assert_token_error(response, "invalid_request")
    assert response.json() == {
        "type": "urn:myapi:problem:invalid_request",
        "title": "Invalid token request",
        "status": 400,
        "detail": "Missing parameter: password.",
        "code": "invalid_request",
        "error": "invalid_request",
        "error_description": "Missing parameter: password.",
    }


async def test_invalid_grant_is_not_cached_either(client: httpx.AsyncClient, ada: UserRow) -> None:
    response = await client.post("/token", data={"username": EMAIL, "password": "nope nope"})
    assert_token_error(response, "invalid_grant")


SCOPES: list[tuple[str, str | None]] = [
    # (scope asked for, scope granted or None for invalid_scope); Ada has read and write
    ("movies:read", "movies:read"),
    ("movies:write", "movies:write"),
    ("movies:write movies:read", "movies:read movies:write"),
    ("movies:read movies:read", "movies:read"),
    ("  movies:write   movies:read ", "movies:read movies:write"),
    (" ", "movies:read movies:write"),
    ("movies:read users:admin", None),
    ("users:admin", None),
    ("movies:delete", None),
    ("Movies:Read", None),
    ("movies:read,movies:write", None),
    ("movies:read\tmovies:write", None),
    ("movies:read\x00", None),
]


@pytest.mark.parametrize(("asked", "granted"), SCOPES)
async def test_scope_is_what_was_asked_of_what_the_user_has(
    client: httpx.AsyncClient, ada: UserRow, settings: Settings, asked: str, granted: str | None
) -> None:
    form = {"username": EMAIL, "password": PASSWORD, "scope": asked}
    response = await client.post("/token", data=form)
    if granted is None:
        assert_token_error(response, "invalid_scope")
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == granted
    claims = jwt.decode(body["access_token"], _secret(settings), algorithms=["HS256"])
    assert claims["scope"] == granted
    # The token is worth what it says, not what the user could have had.
    movie = await client.get(
        "/movies/1", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert movie.status_code == (200 if "movies:read" in granted.split() else 403)


async def test_scope_the_user_lacks_is_named(client: httpx.AsyncClient, ada: UserRow) -> None:
    form = {"username": EMAIL, "password": PASSWORD, "scope": "movies:read users:admin"}
    body = assert_token_error(await client.post("/token", data=form), "invalid_scope")
    assert body["detail"] == "The user does not have the scope 'users:admin'."


async def test_user_without_scopes_cannot_ask_for_one(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await auth.register_user(
        Database(pool), email="none@example.com", name="N", password=PASSWORD, scopes=[], rounds=4
    )
    form = {"username": "none@example.com", "password": PASSWORD}
    assert (await client.post("/token", data=form)).json()["scope"] == ""
    response = await client.post("/token", data={**form, "scope": "movies:read"})
    assert_token_error(response, "invalid_scope")


@pytest.mark.parametrize(
    ("given", "status"),
    [
        ("  spaced out  ", 200),
        ("spaced out", 400),
        ("  spaced out", 400),
        ("spaced out  ", 400),
        (" spaced out ", 400),
        ("  spaced  out  ", 400),
    ],
)
async def test_password_is_used_byte_for_byte(
    client: httpx.AsyncClient, pool: asyncpg.Pool, given: str, status: int
) -> None:
    await auth.register_user(
        Database(pool), email=EMAIL, name="Ada", password="  spaced out  ", rounds=4
    )
    response = await client.post(
        "/token", data={"username": f"  {EMAIL.upper()} ", "password": given}
    )
    if status == 200:
        assert response.status_code == 200, response.text
    else:
        assert_token_error(response, "invalid_grant")


async def test_password_with_non_ascii_and_plus_signs(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    password = "+ Grüße & = +"
    await auth.register_user(Database(pool), email=EMAIL, name="Ada", password=password, rounds=4)
    response = await client.post("/token", data={"username": EMAIL, "password": password})
    assert response.status_code == 200, response.text


async def test_openapi_describes_the_token_form(client: httpx.AsyncClient) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/token"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {FORM}
    schema = body["content"][FORM]["schema"]
    assert set(schema["properties"]) == {"grant_type", "username", "password", "scope"}
    assert set(schema["required"]) == {"username", "password"}
    assert schema["properties"]["grant_type"]["const"] == "password"
    assert schema["properties"]["password"]["format"] == "password"
    assert "422" not in operation["responses"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE"])
async def test_wrong_method_is_a_405_that_is_not_cached_either(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    if method != "HEAD":
        assert_problem(response, 405, "method_not_allowed")


async def test_wrong_method_elsewhere_keeps_its_own_headers(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_problem(response, 405, "method_not_allowed")
    assert "cache-control" not in response.headers


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/token", FORM), ("/users", "application/json"), ("/users/me/password", "application/json")],
)
async def test_a_client_gone_mid_body_is_not_an_error(
    settings: Settings, caplog: pytest.LogCaptureFixture, path: str, content_type: str
) -> None:
    """What uvicorn hands the app when the client closes the connection mid-body: part of
    the body, then `http.disconnect`. Nothing to answer and nothing wrong on our side."""
    app = create_app(settings)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"content-type", content_type.encode()),
            (b"content-length", b"100"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    parts = [{"type": "http.request", "body": b"username=a", "more_body": True}]

    async def receive() -> Message:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(_: Message) -> None:
        pass  # uvicorn drops what is sent after a disconnect

    async with app.router.lifespan_context(app):
        with caplog.at_level(logging.DEBUG):
            await app(scope, receive, send)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
