"""Models of the token endpoint (RFC 6749 section 5.1)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - RFC 6749 token type
    expires_in: int
    scope: str
