"""Dependencies shared by the routers: the runtime state and the bearer-token check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer, SecurityScopes

from api.backend.config import Settings
from api.backend.database import Database
from api.backend.signing import TokenKeys
from api.exc import InsufficientScope, InvalidQuery, InvalidToken
from api.services import auth
from api.services.auth import Claims
from api.services.revocation import TokenStates
from api.services.throttle import Throttle


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the lifespan builds once and every request uses."""

    settings: Settings
    db: Database
    keys: TokenKeys
    verifier: auth.TokenVerifier
    dummy: auth.Dummy
    cursor_key: bytes
    tokens: TokenStates
    throttle: Throttle


# Dependencies are `async def` even when they never await: FastAPI runs a plain `def`
# dependency in a worker thread, a thread hop per request (profiled at 5 % of the time of
# GET /movies/{id}).


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_db(request: Request) -> Database:
    runtime: Runtime = request.app.state.runtime
    return runtime.db


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
DatabaseDep = Annotated[Database, Depends(get_db)]


class BearerToken(OAuth2PasswordBearer):
    """The bearer-token check, whole, as one dependency: the token from the
    `Authorization` header, verified, unrevoked, holding every scope the route declares.

    It is the security scheme itself (an `OAuth2PasswordBearer`, so OpenAPI and Swagger
    UI's Authorize dialog know the password flow and the scopes) rather than a function
    depending on the scheme and on the runtime: FastAPI resolves each dependency level
    with a call of its own, and the three levels cost a sixth of GET /movies/{id}.
    A missing token is answered by InvalidToken with the RFC 6750 challenge, not by
    FastAPI's own 401 without one.
    """

    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> Claims:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not token or scheme.lower() != "bearer":
            raise InvalidToken("A bearer token is required.", missing=True)
        runtime: Runtime = request.app.state.runtime
        claims = runtime.verifier.verify(token)
        if not await runtime.tokens.is_valid(claims.user_id, claims.version):
            raise InvalidToken("The token has been revoked, or its user disabled or deleted.")
        for scope in security_scopes.scopes:
            if scope not in claims.scopes:
                raise InsufficientScope(scope)
        return claims


# The scheme's name in OpenAPI: what it was called when it was FastAPI's own class.
current_claims = BearerToken(
    tokenUrl="token",
    scopes=auth.KNOWN_SCOPES,
    scheme_name="OAuth2PasswordBearer",
    auto_error=False,
)


_declared_params: dict[int, frozenset[str]] = {}


async def strict_query(request: Request) -> None:
    """Refuse query parameters the route does not declare: a misspelt filter
    (`min_ratting=8`) must not silently return everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _declared_params.get(id(route))
    if allowed is None:
        allowed = _declared_params[id(route)] = frozenset(_query_names(route.dependant))
    if unknown := sorted(set(request.query_params) - allowed):
        errors = [
            {"loc": ["query", name], "msg": "unknown query parameter", "type": "extra_forbidden"}
            for name in unknown
        ]
        raise InvalidQuery(
            f"unknown query parameter {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}",
            errors=errors,
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


ReadMovies = Annotated[Claims, Security(current_claims, scopes=["movies:read"])]
Authenticated = Annotated[Claims, Security(current_claims)]


def client_address(request: Request) -> str:
    """The client's IP address (a proxy's X-Forwarded-For only when configured to be
    believed: see `forwarded_allow_ips`), as login throttling counts it."""
    return request.client.host if request.client else "unknown"
