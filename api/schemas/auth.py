"""Models of the token endpoint (RFC 6749 sections 4.3.2 and 5.1) and of the public key
that verifies tokens (RFC 7517)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class TokenRequest(BaseModel):
    """The form POST /token reads (the router parses it, so every failure is an RFC 6749
    error); its JSON schema documents the body for Swagger UI."""

    grant_type: Literal["password"] = "password"
    username: str = Field(description="Your e-mail address, in any letter case.")
    password: str = Field(
        description="Your password, exactly as set: never trimmed.",
        json_schema_extra={"format": "password"},
    )
    scope: str = Field(
        "",
        description="Space-separated scopes to ask for; none asks for all of yours.",
    )


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - RFC 6749 token type
    expires_in: int
    scope: str = Field(description="The scopes granted, space-separated, sorted.")


class JsonWebKey(BaseModel):
    """A public key (RFC 7517 section 4); RSA has `n` and `e`, EC `crv`, `x` and `y`,
    OKP (Ed25519) `crv` and `x`."""

    kty: Literal["RSA", "EC", "OKP"]
    use: Literal["sig"]
    alg: str = Field(description="The algorithm tokens are signed with, e.g. RS256.")
    kid: str = Field(description="The key's RFC 7638 thumbprint, also in every token's header.")
    n: str | None = None
    e: str | None = None
    crv: str | None = None
    x: str | None = None
    y: str | None = None


class JsonWebKeySet(BaseModel):
    keys: list[JsonWebKey]
