"""POST /token: the OAuth2 password grant (RFC 6749 section 4.3); GET /.well-known/jwks.json:
the public key that verifies its tokens (RFC 7517), when they are signed with a key pair.

The form is read here rather than by FastAPI, so that every refusal is a 400 with
the RFC's `error` code, never a 422.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from api.exc import (
    NO_STORE,
    AppError,
    InvalidTokenRequest,
    LoginsBusy,
    PublicKeyNotFound,
    UnsupportedGrantType,
)
from api.routers._deps import RuntimeDep, client_address
from api.schemas.auth import JsonWebKey, JsonWebKeySet, Token, TokenRequest
from api.schemas.problems import problem_responses
from api.services import auth

router = APIRouter(tags=["auth"])

FORM = "application/x-www-form-urlencoded"
_PARAMETERS = frozenset(TokenRequest.model_fields)
_BODY = {
    "requestBody": {
        "required": True,
        "content": {FORM: {"schema": TokenRequest.model_json_schema()}},
    }
}


@router.post("/token", responses=problem_responses(400, 429, 503), openapi_extra=_BODY)
async def create_token(request: Request, runtime: RuntimeDep, response: Response) -> Token:
    """Exchange an e-mail (as `username`) and password for a bearer token."""
    response.headers.update(NO_STORE)
    try:
        form = _token_request(await _parameters(request))
        attempt = await runtime.throttle.attempt(
            email=auth.normalise_email(form.username), address=client_address(request)
        )
        try:
            user = await auth.authenticate(
                runtime.db, email=form.username, password=form.password, dummy=runtime.dummy
            )
        except LoginsBusy:
            await runtime.throttle.refused(attempt)
            raise
        await runtime.throttle.succeeded(attempt)
        scopes = auth.grant_scopes(user, form.scope)
    except AppError as exc:
        exc.headers.update(NO_STORE)
        raise
    token, expires_in = auth.create_access_token(
        user,
        scopes=scopes,
        keys=runtime.keys,
        expires_minutes=runtime.settings.access_token_expire_minutes,
    )
    return Token(access_token=token, expires_in=expires_in, scope=" ".join(scopes))


@router.get(
    "/.well-known/jwks.json", responses=problem_responses(404), response_model_exclude_none=True
)
async def get_jwks(runtime: RuntimeDep, response: Response) -> JsonWebKeySet:
    """The public key that verifies access tokens (RFC 7517); 404 when they are HS-signed."""
    jwk = runtime.keys.public_jwk
    if jwk is None:
        raise PublicKeyNotFound(
            f"Tokens are signed with {runtime.keys.algorithm}, a shared secret: "
            "there is no public key."
        )
    # The key changes only when the service restarts with another one.
    response.headers["Cache-Control"] = "public, max-age=300"
    return JsonWebKeySet(keys=[JsonWebKey.model_validate(jwk)])


async def _parameters(request: Request) -> dict[str, str]:
    """The token request's parameters: a form (RFC 6749 section 4.3.2), none repeated and
    those without a value left out (section 3.2)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        if request.headers.get("content-length") == "0":  # no body: no parameters
            return {}
        raise InvalidTokenRequest(f"The body must be {FORM}.")
    try:
        form = await request.form()
    except (StarletteHTTPException, MultiPartException) as exc:  # a field over 1 MB, say
        raise InvalidTokenRequest("The form is too large.") from exc
    parameters: dict[str, str] = {}
    for name, value in form.multi_items():
        if name not in _PARAMETERS:
            continue  # section 3.2: unrecognised parameters are ignored
        if name in parameters:
            raise InvalidTokenRequest(f"The parameter {name} is given more than once.")
        parameters[name] = str(value)
    return {name: value for name, value in parameters.items() if value}


def _token_request(parameters: dict[str, str]) -> TokenRequest:
    # The grant type first: another grant would not need a username or password.
    if parameters.setdefault("grant_type", "password") != "password":
        raise UnsupportedGrantType("The only grant_type supported is password.")
    if missing := [name for name in ("username", "password") if name not in parameters]:
        raise InvalidTokenRequest(f"Missing parameter: {', '.join(missing)}.")
    return TokenRequest.model_validate(parameters)
