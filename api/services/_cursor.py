"""Opaque keyset cursors for GET /movies: signed, tied to their sort and filters, checked.

A cursor is base64url(JSON of the sort and the last row's values) "." base64url(MAC).
The MAC covers the filters too, so an edited cursor, or one carried over to another
query, is refused with 400 before any of its values reach SQL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import queries.movies as q
from api.exc import InvalidCursor
from queries._compose import SortKey

_MAC_BYTES = 16
_INT4 = (-(2**31), 2**31 - 1)
_RATING = re.compile(r"\d{1,2}(\.\d)?")  # what numeric(3,1) holds; no exponents
_TYPES: dict[str, tuple[type, tuple[int, int]]] = {
    "movie_id": (int, _INT4),
    "title": (str, _INT4),
    "released": (int, (-(2**15), 2**15 - 1)),  # smallint
    "rating": (Decimal, (0, 10)),
    "votes": (int, _INT4),
    "length_minutes": (int, _INT4),
    "budget": (int, (-(2**63), 2**63 - 1)),  # bigint
}


def cursor_key(secret: bytes) -> bytes:
    """A key for cursors only, derived from the token keys' secret (never the secret itself)."""
    return hmac.new(secret, b"myapi movies cursor v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _spec(keys: Sequence[SortKey]) -> str:
    return ",".join(("-" if k.descending else "") + k.column for k in keys)


def _mac(key: bytes, payload: bytes, context: Mapping[str, Any]) -> bytes:
    scope = json.dumps({k: str(v) for k, v in context.items() if v is not None}, sort_keys=True)
    return hmac.new(key, payload + b"\x00" + scope.encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(
    keys: Sequence[SortKey], values: Sequence[Any], *, key: bytes, context: Mapping[str, Any]
) -> str:
    """The cursor for the page after the row whose sort values are `values`."""
    plain = [str(v) if isinstance(v, Decimal) else v for v in values]
    payload = json.dumps({"s": _spec(keys), "v": plain}, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload, context))}"


def decode_cursor(
    cursor: str, keys: Sequence[SortKey], *, key: bytes, context: Mapping[str, Any]
) -> list[Any]:
    """The sort values a cursor carries; `InvalidCursor` for anything not made by us."""
    try:
        body, signature = cursor.split(".")
        payload, mac = _unb64(body), _unb64(signature)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("The cursor is malformed; start again without it.") from exc
    if not hmac.compare_digest(mac, _mac(key, payload, context)):
        raise InvalidCursor(
            "The cursor was altered or belongs to another query; start again without it."
        )
    try:
        data = json.loads(payload)
        spec, values = data["s"], data["v"]
    except (ValueError, TypeError, KeyError, RecursionError) as exc:  # pragma: no cover
        raise InvalidCursor("The cursor is malformed; start again without it.") from exc
    if spec != _spec(keys) or not isinstance(values, list) or len(values) != len(keys):
        raise InvalidCursor("The cursor belongs to another sort order; start again without it.")
    return [_value(k.column, v) for k, v in zip(keys, values, strict=True)]


def _value(column: str, value: Any) -> Any:
    # Signed cursors only carry values we wrote; the checks remain in case the key leaks.
    if value is None and column in q.list_movies.nullable:
        return None
    kind, (low, high) = _TYPES[column]
    try:
        if kind is int and type(value) is int and low <= value <= high:
            return value
        if kind is str and isinstance(value, str) and "\x00" not in value:
            value.encode()  # a lone surrogate cannot reach PostgreSQL
            return value
        if kind is Decimal and isinstance(value, str) and _RATING.fullmatch(value):
            number = Decimal(value)
            if low <= number <= high:
                return number
    except (ArithmeticError, UnicodeError):
        pass
    raise InvalidCursor("The cursor holds an invalid value; start again without it.")
