"""The error tree and the handlers that render every error as RFC 9457 problem details.

Services raise `AppError` subclasses; asyncpg errors are translated here, in one
place, and nothing a client sees carries a traceback, SQL text or a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# RFC 6749 section 5.1 asks it of tokens; errors get it too, so no cache keeps either.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Routes whose every answer is NO_STORE, also those the routing gives (a 405).
_NO_STORE_ROUTES = frozenset({"/token"})


class AppError(Exception):
    """Base of every error a client may see: a status, a stable code and a message."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Not authenticated"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(AppError):
    status, code, title = 422, "validation_error", "Invalid request"


class Unavailable(AppError):
    status, code, title = 503, "unavailable", "Service unavailable"


class DatabaseUnavailable(Unavailable):
    code, title = "database_unavailable", "Database unavailable"


# asyncpg errors that mean "the server is not there or not usable right now".
_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.PostgresConnectionError,
)


def translate_db_error(exc: BaseException) -> AppError | None:
    """The client-facing error for a database failure, or None when it is a bug."""
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable("The database is not reachable; try again shortly.")
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return Conflict(
            "A record with the same unique value already exists.", constraint=exc.constraint_name
        )
    return None


def problem(status: int, title: str, detail: str, code: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:myapi:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


def _render(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)  # noqa: S101 - registered for AppError only
    body = problem(exc.status, exc.title, exc.detail, exc.code, **exc.extra)
    return _render(exc.status, body, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    # Echo where and why, never the input itself (it may be 10 kB or a password).
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors
    )
    body = problem(422, Unprocessable.title, detail, Unprocessable.code, errors=errors)
    return _render(422, body)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    code = title.lower().replace(" ", "_")
    body = problem(exc.status_code, title, str(exc.detail), code)
    headers = dict(exc.headers or {})
    # The route matched by path, also when the method did not (Starlette sets it for a 405).
    if getattr(request.scope.get("route"), "path", None) in _NO_STORE_ROUTES:
        headers.update(NO_STORE)
    return _render(exc.status_code, body, headers)


async def _client_gone(_: Request, exc: Exception) -> JSONResponse:
    # The client closed the connection before its body was read: nothing went wrong here,
    # so nothing is logged, and no one reads the answer (uvicorn drops it).
    assert isinstance(exc, ClientDisconnect)  # noqa: S101
    detail = "The connection closed before the request body was complete."
    return _render(400, problem(400, BadRequest.title, detail, BadRequest.code))


async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
    translated = translate_db_error(exc)
    if translated is not None:
        logger.warning("database error: %s", type(exc).__name__)
        return await _app_error(_, translated)
    logger.exception("unhandled error")
    body = problem(500, AppError.title, "An unexpected error occurred.", AppError.code)
    return _render(500, body)


def install_handlers(app: FastAPI) -> None:
    """Route every error through the problem-details renderers above."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # By class, like the database errors below: under Exception it would be logged.
    app.add_exception_handler(ClientDisconnect, _client_gone)
    # Registered by class (not only under Exception) so Starlette's ExceptionMiddleware
    # answers them without re-raising: a database outage is a 503, not a logged crash.
    database_errors: tuple[type[Exception], ...] = (*_UNAVAILABLE, asyncpg.PostgresError)
    for exc_type in database_errors:
        app.add_exception_handler(exc_type, _unhandled)
    app.add_exception_handler(Exception, _unhandled)


# Domain errors: <Thing><Problem>, each under the generic error it is.

_CHALLENGE = 'Bearer realm="myapi"'


class MovieNotFound(NotFound):
    code, title = "movie_not_found", "Movie not found"


class InvalidCursor(BadRequest):
    code, title = "invalid_cursor", "Invalid cursor"


class InvalidQuery(Unprocessable):
    """A client asked for a filter or sort field that does not exist."""


class EmailAlreadyRegistered(Conflict):
    code, title = "email_already_registered", "E-mail already registered"


class InvalidCredentials(BadRequest):
    """RFC 6749 section 5.2: the same answer for an unknown user and a wrong password."""

    code, title = "invalid_grant", "Invalid credentials"

    def __init__(self) -> None:
        description = "Incorrect e-mail or password."
        super().__init__(description, error="invalid_grant", error_description=description)


class TokenRequestError(BadRequest):
    """RFC 6749 section 5.2: a refused token request, its `error` code in the body.

    Descriptions stay within the characters section 5.2 allows: ASCII, no `"` or `\\`.
    """

    def __init__(self, description: str) -> None:
        super().__init__(description, error=self.code, error_description=description)


class InvalidTokenRequest(TokenRequestError):
    """A parameter missing or repeated, or a body that is not a form."""

    code, title = "invalid_request", "Invalid token request"


class UnsupportedGrantType(TokenRequestError):
    code, title = "unsupported_grant_type", "Unsupported grant type"


class InvalidScope(TokenRequestError):
    """A scope asked for that does not exist or that the user does not have."""

    code, title = "invalid_scope", "Invalid scope"


class PublicKeyNotFound(NotFound):
    """Tokens are signed with a shared secret: there is no public key to publish."""

    code, title = "public_key_not_found", "No public key"


class InvalidToken(Unauthorized):
    """RFC 6750 section 3: a missing, malformed, expired or revoked bearer token."""

    code, title = "invalid_token", "Invalid token"

    def __init__(self, description: str, *, missing: bool = False) -> None:
        # A request with no token at all gets a bare challenge (RFC 6750 section 3.1).
        challenge = _CHALLENGE
        if not missing:
            challenge += f', error="invalid_token", error_description="{description}"'
        super().__init__(description, headers={"WWW-Authenticate": challenge})


class InsufficientScope(Forbidden):
    code, title = "insufficient_scope", "Insufficient scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"This request needs the scope {scope!r}.",
            headers={
                "WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope", scope="{scope}"'
            },
            scope=scope,
        )


class InvalidUserData(Unprocessable):
    """An e-mail, name or password that cannot make a user."""

    code, title = "invalid_user_data", "Invalid user data"


class UserNotFound(NotFound):
    code, title = "user_not_found", "User not found"


class WrongPassword(BadRequest):
    """A password change whose current password is wrong."""

    code, title = "wrong_password", "Wrong password"


class SelfLockout(Conflict):
    """An administrator disabling, deleting or demoting themselves over HTTP."""

    code, title = "self_lockout", "Would lock you out"


class TooManyLogins(AppError):
    """Too many failed logins for an account or from an address within the window."""

    status, code, title = 429, "too_many_attempts", "Too many login attempts"

    def __init__(self, retry_after: int) -> None:
        seconds = max(1, retry_after)
        super().__init__(
            f"Too many failed logins; try again in {seconds} seconds.",
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )


class LoginsBusy(Unavailable):
    """More logins waiting for bcrypt than a worker will queue."""

    code, title = "logins_busy", "Too many logins at once"

    def __init__(self, description: str) -> None:
        super().__init__(description, headers={"Retry-After": "1"})
