"""Which result columns pass on a table column that can be NULL, read from the statement's
generic plan (EXPLAIN VERBOSE) and the catalog's NOT NULL flags.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

from ._declare import Connection


@dataclass(frozen=True, slots=True)
class Source:
    """The table column an output passes on; `outer` when under an outer join's nullable side."""

    schema: str
    table: str
    column: str
    outer: bool


async def nullable_outputs(conn: Connection, statement: PreparedStatement) -> list[Source | None]:
    """For each result column, the table column it passes on when that can be NULL.

    Empty when there is no plan to read (an old server, a statement EXPLAIN refuses);
    None for a column that cannot be NULL or is not a plain table column.
    """
    plan = await _generic_plan(conn, statement)
    outputs = plan.get("Output", []) if plan else []
    count = len(statement.get_attributes())
    if plan is None or len(outputs) < count:
        return []
    sources = [_resolve(plan, output) for output in outputs[:count]]
    plain = [s for s in sources if s is not None]
    not_null = dict(zip(plain, await _not_null(conn, plain), strict=True)) if plain else {}
    return [s if s is not None and (s.outer or not_null[s] is False) else None for s in sources]


async def _generic_plan(conn: Connection, statement: PreparedStatement) -> dict[str, Any] | None:
    """The statement's generic plan (no parameter values), or None when the server will not say.

    EXPLAIN EXECUTE under `force_generic_plan` plans with unknown parameters, like
    EXPLAIN (GENERIC_PLAN) on PostgreSQL 16+, and works back to PostgreSQL 12.
    """
    count = len(statement.get_parameters())
    arguments = f"({', '.join(['NULL'] * count)})" if count else ""
    # The name is the checker's own `myapi_check_<hex>`: nothing from outside is interpolated.
    explain = f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {statement.get_name()}{arguments}"
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            # Prepared, not fetched: each text is new and would crowd the statement cache.
            text = await (await conn.prepare(explain)).fetchval()
    except asyncpg.PostgresError:
        return None
    plan: dict[str, Any] = json.loads(text)[0]["Plan"]
    return plan


_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_OUTPUT_COLUMN = re.compile(rf"(?:(?P<alias>{_IDENT})\.)?(?P<column>{_IDENT})")


def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident


def _resolve(node: Mapping[str, Any], output: str, outer: bool = False) -> Source | None:
    """The table column behind one plan output (`alias.column` or `column`), if it is one."""
    match = _OUTPUT_COLUMN.fullmatch(output)
    if match is None:
        return None  # an expression: COALESCE(...), count(*), a constant
    alias = _unquote(match["alias"]) if match["alias"] else None
    column = _unquote(match["column"])
    found = list(_scans(node, alias, outer))
    if len(found) != 1:
        return None
    scan, outer = found[0]
    if "Relation Name" in scan:
        return Source(scan.get("Schema", "public"), scan["Relation Name"], column, outer)
    if scan.get("Node Type") == "Subquery Scan" and scan.get("Plans"):
        child = scan["Plans"][0]
        same = [o for o in child.get("Output", []) if _column_of(o) == column]
        return _resolve(child, same[0], outer) if len(same) == 1 else None
    return None  # a function, a CTE, VALUES: not a table column


def _column_of(output: str) -> str | None:
    match = _OUTPUT_COLUMN.fullmatch(output)
    return _unquote(match["column"]) if match else None


def _scans(
    node: Mapping[str, Any], alias: str | None, outer: bool
) -> Iterator[tuple[Mapping[str, Any], bool]]:
    """Plan nodes named `alias` (unqualified: every table scan), and whether an outer join
    above them can turn their columns NULL."""
    named = node.get("Alias") == alias if alias else "Relation Name" in node
    if named:
        yield node, outer
    join = node.get("Join Type")
    for child in node.get("Plans", []):
        side = child.get("Parent Relationship")
        nullable = (join in ("Left", "Full") and side == "Inner") or (
            join in ("Right", "Full") and side == "Outer"
        )
        yield from _scans(child, alias, outer or nullable)


# The checker's own catalog lookup, not application SQL: which table columns are NOT NULL.
_NOT_NULL = """
SELECT s.i, a.attnotnull
  FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS s(nsp, rel, col, i)
  JOIN pg_namespace AS n ON n.nspname = s.nsp
  JOIN pg_class AS c ON c.relnamespace = n.oid AND c.relname = s.rel
  JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attname = s.col AND NOT a.attisdropped
"""


async def _not_null(conn: Connection, sources: Sequence[Source]) -> list[bool | None]:
    """For each source, whether its column is NOT NULL; None when the catalog does not say."""
    rows = await conn.fetch(
        _NOT_NULL,
        [s.schema for s in sources],
        [s.table for s in sources],
        [s.column for s in sources],
    )
    known = {row["i"]: row["attnotnull"] for row in rows}
    return [known.get(i) for i in range(1, len(sources) + 1)]
