"""The error body every endpoint answers with (RFC 9457 problem details), for the OpenAPI docs."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """`application/problem+json`; some errors add members (`errors`, `error`, `scope`...)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:myapi:problem:movie_not_found"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code")


_DESCRIPTIONS = {
    400: "Bad request: an invalid cursor; on /token invalid_request, invalid_grant, "
    "unsupported_grant_type or invalid_scope",
    401: "Missing, invalid or expired bearer token",
    403: "The token lacks a required scope",
    404: "No such resource",
    409: "Conflicts with the current state (e.g. an e-mail already registered)",
    422: "Invalid parameters; `errors` lists each one",
    429: "Too many failed logins; `Retry-After` says how many seconds to wait",
    503: "The database is unreachable, or too many logins are waiting",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem bodies for these statuses."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}
