"""Check every declaration against a live database: each statement prepares, and its columns and
parameters fit the declared row model and types. Used by `api-admin check` and at start-up.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement
from asyncpg.types import Attribute, Type

from ._catalog import (
    Catalog,
    Declaration,
    Finding,
    ListingBase,
    RowField,
    Severity,
    collect_declarations,
    declaration_file,
    row_fields,
)
from ._declare import Connection, Exec, Many, One, Query
from ._declare import Value as ValueQuery
from ._plan import Source, nullable_outputs
from ._sqlfile import SqlFileError, top_level_words
from ._typefit import cast_for, fits, type_name, unwrap

# Callers take the whole check from here: what it checks, and what it finds.
__all__ = [
    "Catalog",
    "Declaration",
    "Finding",
    "ListingBase",
    "check_queries",
    "collect_declarations",
    "declaration_file",
]

# The schema every statement reads. Without it each one fails on its own; one finding says why.
SCHEMA = "myapi"


async def check_queries(conn: Connection, declarations: Iterable[Declaration]) -> list[Finding]:
    """Prepare every statement in one transaction, rolled back; return every problem found."""
    declared = list(declarations)
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", SCHEMA
    ):
        message = f"the database has no schema {SCHEMA!r}: there is nothing to check against"
        return [Finding("schema.sql", None, "error", message, "run `api-admin init-db`")]
    findings: list[Finding] = []
    transaction = conn.transaction()
    await transaction.start()
    try:
        await _create_temporary_tables(conn, declared)
        for declaration in declared:
            findings.extend(await _check(conn, declaration))
    finally:
        await transaction.rollback()
    return findings


_CREATE_TEMP = re.compile(r"CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?TEMP(?:ORARY)?\s+TABLE\b", re.I)
_LEADING_COMMENTS = re.compile(r"(?:\s+|--[^\n]*\n?|/\*.*?\*/)*", re.S)


async def _create_temporary_tables(conn: Connection, declared: Sequence[Declaration]) -> None:
    """Run the statements that create temporary tables: others read them (a bulk load's staging)."""
    for query in declared:
        start = _LEADING_COMMENTS.match(query.sql) if isinstance(query, Exec) else None
        if isinstance(query, Exec) and start and _CREATE_TEMP.match(query.sql, start.end()):
            try:
                async with conn.transaction():
                    await conn.execute(query.sql)
            except asyncpg.PostgresError:
                pass  # the statement's own check reports why it fails


async def _check(conn: Connection, declaration: Declaration) -> list[Finding]:
    query = declaration.query if isinstance(declaration, ListingBase) else declaration
    file = declaration_file(declaration)
    # A plain `Query` is the base a composed query (a `Listing`) wraps.
    findings = _check_base(file, query) if type(query) is Query else []
    findings += _check_session(file, query)
    return findings + await _check_statement(conn, file, declaration, query)


# Statements whose effect outlives their transaction on the connection that ran them. Pool
# connections go back without asyncpg's reset query (api/backend/database.py), so such a
# statement would leak into the next request that borrows the connection.
_SESSION_COMMANDS = {"SET", "RESET", "LISTEN", "UNLISTEN", "DISCARD", "PREPARE", "DEALLOCATE"}


def _check_session(file: str, query: Query) -> list[Finding]:
    try:
        words = top_level_words(query.sql)
    except SqlFileError:
        return []
    if not words:
        return []
    first, *rest = sorted(words, key=words.__getitem__)
    # SET LOCAL ends with the transaction; "local" elsewhere (a value) does not count.
    if first not in _SESSION_COMMANDS or (first == "SET" and rest[:1] == ["LOCAL"]):
        return []
    message = (
        f"{first} changes the session, and pooled connections are not reset between "
        "requests: the change would leak into whichever request borrows the connection next"
    )
    hint = "use SET LOCAL (it ends with the transaction), or set it in schema.sql per role"
    return [Finding(file, None, "error", message, hint)]


# Clauses that sort or cut a statement's rows, by the word that starts them.
_ROW_CLAUSES = {"ORDER": "ORDER BY", "LIMIT": "LIMIT", "OFFSET": "OFFSET", "FETCH": "FETCH"}


def _check_base(file: str, query: Query) -> list[Finding]:
    """A listing filters, sorts and pages around its base: the base must return every row."""
    try:
        words = top_level_words(query.sql)
    except SqlFileError:
        return []  # scanned once already; a statement that does not scan is reported there
    found = sorted((offset, word) for word, offset in words.items() if word in _ROW_CLAUSES)
    if not found:
        return []
    line, column = _locate(query, found[0][0] + 1)
    clauses = ", ".join(_ROW_CLAUSES[word] for _, word in found)
    message = (
        f"a listing base must return every row, unsorted, but this one has {clauses} at its "
        f"top level (line {line}, column {column})"
    )
    hint = "remove it: the listing adds the client's filters, sort order and page around it"
    return [Finding(file, None, "error", message, hint)]


async def _check_statement(
    conn: Connection, file: str, declaration: Declaration, query: Query
) -> list[Finding]:
    expected = _expected(declaration)
    try:
        async with conn.transaction():
            # Named, so that EXPLAIN EXECUTE can plan it (an unnamed one cannot be).
            statement = await conn.prepare(query.sql, name=f"myapi_check_{uuid.uuid4().hex}")
    except asyncpg.PostgresError as exc:
        return [_prepare_failure(file, query, exc, expected or {})]
    findings = _check_parameters(file, query, statement.get_parameters())
    attributes = statement.get_attributes()
    if isinstance(query, ValueQuery):
        return findings + _check_value(file, query, attributes)
    if expected is None:
        return findings
    findings += _check_columns(file, declaration, expected, attributes)
    return findings + await _check_nullability(conn, file, statement, expected)


def _expected(declaration: Declaration) -> dict[str, RowField] | None:
    """The columns a row declaration needs, by name; None for statements without rows."""
    if isinstance(declaration, ListingBase):
        fields = row_fields(declaration.row) if declaration.row else {}
        return {c: fields.get(c, RowField(None, True)) for c in declaration.columns}
    if isinstance(declaration, One | Many):
        return row_fields(declaration.row)
    return None


def _model_name(declaration: Declaration) -> str:
    row = declaration.row if isinstance(declaration, ListingBase | One | Many) else None
    return row.__name__ if row else "the listing's columns"


def _check_columns(
    file: str, declaration: Declaration, expected: Mapping[str, RowField], got: Sequence[Attribute]
) -> list[Finding]:
    model = _model_name(declaration)
    names = [a.name for a in got]
    findings = [
        Finding(file, n, "error", f"column {n!r} appears more than once in the result")
        for n in sorted({n for n in names if names.count(n) > 1})
    ]
    findings += _missing_columns(file, expected, names)
    for attr in got:
        spec = expected.get(attr.name)
        if spec is None:
            message = f"column {attr.name!r} is not a field of {model}"
            hint = f"remove it from the select list, or add the field to {model}"
            findings.append(Finding(file, attr.name, "error", message, hint))
        elif spec.annotation is not None and not fits(attr.type, spec.annotation, into_py=True):
            message = (
                f"column {attr.name!r} is {attr.type.name}, which does not fit "
                f"the field's type {type_name(spec.annotation)}"
            )
            hint = "cast the column in the statement, or change the field's type"
            findings.append(Finding(file, attr.name, "error", message, hint))
    return findings


def _missing_columns(
    file: str, expected: Mapping[str, RowField], names: Sequence[str]
) -> list[Finding]:
    findings: list[Finding] = []
    returned = ", ".join(names) or "nothing"
    for name in (n for n in expected if n not in names):
        # A field with a default survives a missing column; the row is still not what it says.
        severity: Severity = "error" if expected[name].required else "warning"
        message = f"the statement returns no column {name!r} (it returns: {returned})"
        hint = f"select a column named {name!r}, or alias one: `... AS {name}`"
        findings.append(Finding(file, name, severity, message, hint))
    return findings


def _check_value(file: str, query: ValueQuery[Any], got: Sequence[Attribute]) -> list[Finding]:
    if len(got) != 1:
        message = f"a value query returns one column; this statement returns {len(got)}"
        return [Finding(file, None, "error", message)]
    if fits(got[0].type, query.kind, into_py=True):
        return []
    message = (
        f"the value (column {got[0].name!r}) is {got[0].type.name}, "
        f"which does not fit the declared kind {type_name(query.kind)}"
    )
    return [Finding(file, None, "error", message, "cast it in the statement, or change `kind`")]


def _check_parameters(file: str, query: Query, types: Sequence[Type]) -> list[Finding]:
    findings: list[Finding] = []
    for name, pg_type in zip(query.order, types, strict=False):
        declared = query.params.get(name)
        if pg_type.name == "unknown":
            message = f"PostgreSQL cannot tell the type of parameter :{name}"
            findings.append(Finding(file, f":{name}", "error", message, _cast_hint(query, name)))
        elif declared is not None and not fits(pg_type, declared, into_py=False):
            message = (
                f"parameter :{name} is declared {type_name(declared)} but PostgreSQL "
                f"expects {pg_type.name}"
            )
            hint = "change the declared type, or cast the parameter in the statement"
            findings.append(Finding(file, f":{name}", "warning", message, hint))
    return findings


def _cast_hint(query: Query, name: str) -> str:
    return f"add a cast, e.g. :{name}::{cast_for(query.params.get(name))}"


async def _check_nullability(
    conn: Connection, file: str, statement: PreparedStatement, expected: Mapping[str, RowField]
) -> list[Finding]:
    """Warn where a column that can be NULL feeds a field that cannot hold None."""
    findings: list[Finding] = []
    sources = await nullable_outputs(conn, statement)
    for attr, source in zip(statement.get_attributes(), sources, strict=False):
        spec = expected.get(attr.name)
        if source and spec and spec.annotation is not None and not unwrap(spec.annotation)[1]:
            findings.append(_nullable_finding(file, attr.name, spec, source))
    return findings


def _nullable_finding(file: str, name: str, spec: RowField, source: Source) -> Finding:
    column = f"{source.schema}.{source.table}.{source.column}"
    why = "is on the nullable side of an outer join" if source.outer else "can be NULL"
    plain = type_name(unwrap(spec.annotation)[0])
    message = f"column {name!r} comes from {column}, which {why}, but the field is {plain}"
    hint = f"make the field `{plain} | None`, COALESCE the column, or make it NOT NULL"
    return Finding(file, name, "warning", message, hint)


# --- a statement that does not prepare --------------------------------------------------------

_PARAM_NUMBER = re.compile(r"\$([0-9]+)")
_MISSING_COLUMN = re.compile(r'column (?:"?[^" ]+"?\.)?"?([^" .]+)"? does not exist')


def _prepare_failure(
    file: str, query: Query, exc: asyncpg.PostgresError, expected: Mapping[str, RowField]
) -> Finding:
    """PostgreSQL's message (first line), `$n` named back to `:name`, located in the file."""
    message = _named((exc.message or type(exc).__name__).splitlines()[0], query.order)
    hint = _named(exc.hint, query.order) if exc.hint else None
    field = None
    param = _untyped_parameter(query, exc)
    if param is not None:
        field, hint = f":{param}", _cast_hint(query, param)
    elif isinstance(exc, asyncpg.UndefinedColumnError):
        column = _MISSING_COLUMN.search(message)
        field = column[1] if column and column[1] in expected else None
    position = _position(query, exc, param)
    if position is not None:
        line, col = _locate(query, position)
        message += f" (line {line}, column {col})"
    return Finding(file, field, "error", message, hint)


def _untyped_parameter(query: Query, exc: asyncpg.PostgresError) -> str | None:
    """The parameter PostgreSQL cannot type, if that is the failure.

    `:p IS NULL` alone is indeterminate; `:p IS NULL OR col = :p` is "ambiguous".
    """
    if not isinstance(exc, asyncpg.IndeterminateDatatypeError | asyncpg.AmbiguousParameterError):
        return None
    number = _PARAM_NUMBER.search(exc.message or "")
    if number is None or not 0 < int(number[1]) <= len(query.order):
        return None
    return query.order[int(number[1]) - 1]


def _position(query: Query, exc: asyncpg.PostgresError, param: str | None) -> int | None:
    """The 1-based position in the statement sent: PostgreSQL's, else the parameter's first use
    (an indeterminate parameter comes without one)."""
    if exc.position and exc.position.isdigit():
        return int(exc.position)
    if param is None:
        return None
    use = re.search(rf"\${query.order.index(param) + 1}(?![0-9])", query.sql)
    return use.start() + 1 if use else None


def _named(text: str, order: Sequence[str]) -> str:
    def name(match: re.Match[str]) -> str:
        n = int(match[1])
        return f":{order[n - 1]}" if 0 < n <= len(order) else match[0]

    return _PARAM_NUMBER.sub(name, text)


_FILE_PARAM = re.compile(r":'?[A-Za-z_][A-Za-z0-9_]*'?")


def _locate(query: Query, position: int) -> tuple[int, int]:
    """Line and column in the file of a 1-based position in the statement sent.

    The statement is the file with each `:name` replaced by `$n`, so the two are walked
    side by side, skipping one parameter in each at the same time.
    """
    try:
        text = query.path.read_text(encoding="utf-8")
    except OSError:
        text = query.sql
    sql, i, j = query.sql, 0, 0
    while i < position - 1 and i < len(sql) and j < len(text):
        param = _PARAM_NUMBER.match(sql, i) if sql[i] == "$" else None
        named = _FILE_PARAM.match(text, j) if param else None
        if param and named:
            i, j = param.end(), named.end()
        else:
            i, j = i + 1, j + 1
    return text.count("\n", 0, j) + 1, j - text.rfind("\n", 0, j)
