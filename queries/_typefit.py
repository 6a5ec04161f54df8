"""Whether a PostgreSQL type and a Python annotation carry the same values, as asyncpg's
default codecs and pydantic's validation see them.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from asyncpg.types import Type

# PostgreSQL type name -> the family of values asyncpg's default codecs decode it to.
_PG_FAMILY = {
    **dict.fromkeys(("int2", "int4", "int8", "oid"), "int"),
    "numeric": "decimal",
    **dict.fromkeys(("float4", "float8"), "float"),
    **dict.fromkeys(("text", "varchar", "bpchar", "char", "name", "citext"), "str"),
    "bool": "bool",
    **dict.fromkeys(("timestamptz", "timestamp"), "datetime"),
    "date": "date",
    **dict.fromkeys(("time", "timetz"), "time"),
    "interval": "timedelta",
    "uuid": "uuid",
    **dict.fromkeys(("json", "jsonb"), "json"),
    "bytea": "bytes",
}
# Subclasses first: bool is an int, datetime is a date.
_PY_FAMILY: tuple[tuple[type, str], ...] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float"),
    (Decimal, "decimal"),
    (str, "str"),
    (datetime, "datetime"),
    (date, "date"),
    (time, "time"),
    (timedelta, "timedelta"),
    (UUID, "uuid"),
    (bytes, "bytes"),
    (dict, "json"),
)
_SEQUENCES = (list, tuple, set, frozenset)
# (from, to) where a value of one family passes into the other without loss or error
# (pydantic reading a column, asyncpg encoding a parameter).
_WIDENS = {
    ("int", "float"),
    ("int", "decimal"),
    ("decimal", "float"),
    ("float", "decimal"),
    ("date", "datetime"),
}


def fits(pg_type: Type, annotation: Any, *, into_py: bool) -> bool:
    """Whether values flow between the PostgreSQL type and the annotation (either way)."""
    return _fits_name(pg_type.name, pg_type.kind, annotation, into_py=into_py)


def _fits_name(pg_name: str, kind: str, annotation: Any, *, into_py: bool) -> bool:
    plain, _ = unwrap(annotation)
    pg, py = _pg_family(pg_name, kind), py_family(plain)
    # Unknown on either side, or JSON (whose codec a connection may replace): not judged.
    if pg is None or py is None or "json" in (pg, py):
        return True
    if pg == py == "array":
        items = get_args(plain)
        item = items[0] if items else Any
        return _fits_name(_item_name(pg_name), "scalar", item, into_py=into_py)
    return pg == py or ((pg, py) if into_py else (py, pg)) in _WIDENS


def _pg_family(name: str, kind: str) -> str | None:
    if kind == "array" or name.endswith("[]"):
        return "array"
    if kind == "enum":
        return "str"
    return _PG_FAMILY.get(name)


def _item_name(array_name: str) -> str:
    """`text[]` (asyncpg's spelling) or `_text` (the catalog's) -> `text`."""
    return array_name.removesuffix("[]") if array_name.endswith("[]") else array_name[1:]


def unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without `Annotated[...]` and `| None`, and whether None is allowed."""
    optional = annotation is None or annotation is NoneType or annotation is Any
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is UnionType:
            args = [a for a in get_args(annotation) if a is not NoneType]
            optional = optional or len(args) < len(get_args(annotation))
            annotation = args[0] if len(args) == 1 else Any  # a real union: not judged
        else:
            return annotation, optional


def py_family(annotation: Any) -> str | None:
    origin = get_origin(annotation) or annotation
    if origin is Literal:
        values = get_args(annotation)
        return py_family(type(values[0])) if values else None
    if origin in _SEQUENCES:
        return "array"
    if isinstance(origin, type):
        return next((family for cls, family in _PY_FAMILY if issubclass(origin, cls)), None)
    return None


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


# A cast to suggest for a parameter PostgreSQL cannot type, by its declared family.
_CASTS = {
    "str": "text",
    "decimal": "numeric",
    "float": "float8",
    "bool": "boolean",
    "datetime": "timestamptz",
    "date": "date",
    "uuid": "uuid",
    "array": "text[]",
}


def cast_for(annotation: Any) -> str:
    """A PostgreSQL type to cast a parameter declared `annotation` to (`integer` by default)."""
    return _CASTS.get(py_family(unwrap(annotation)[0]) or "", "integer")
