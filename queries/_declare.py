"""Query declarations: a .sql file, its typed parameters, its row shape and its cardinality.

A service module declares its queries through one `SqlDir`; `SqlDir.verify()` at the
end of the module checks every declaration against its file (and finds orphan files)
and raises one `QueryDeclarationError` that lists every problem at once. Problems name
files from the project's top level: `queries/sql/<service>/<name>.sql`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel

from ._sqlfile import ScannedSql, SqlFileError, scan

RowT = TypeVar("RowT", bound=BaseModel)
ValueT = TypeVar("ValueT")
QueryT = TypeVar("QueryT", bound="Query")

# A connection, or the proxy a pool hands out: queries run on either.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

SQL_ROOT = Path(__file__).resolve().parent / "sql"


class QueryDeclarationError(Exception):
    """One or more declarations disagree with their .sql files."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class Query:
    """What every declaration knows: its file, the positional SQL and parameter order."""

    name: str
    path: Path
    params: Mapping[str, type]
    sql: str
    order: tuple[str, ...]

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The bound values in `$n` order; a caller's wrong keyword is a programming error."""
        if values.keys() != self.params.keys():
            raise TypeError(f"{self.path.name} takes {sorted(self.params)}, got {sorted(values)}")
        return [values[name] for name in self.order]


@dataclass(frozen=True, slots=True)
class One(Query, Generic[RowT]):
    """A statement that returns at most one row (`get_…`, or a write `… RETURNING`)."""

    row: type[RowT]

    async def __call__(self, conn: Connection, **values: Any) -> RowT | None:
        record = await conn.fetchrow(self.sql, *self.args(values))
        return None if record is None else self.row.model_validate(dict(record))


@dataclass(frozen=True, slots=True)
class Many(Query, Generic[RowT]):
    """A statement that returns any number of rows (`list_…`)."""

    row: type[RowT]

    async def __call__(self, conn: Connection, **values: Any) -> list[RowT]:
        records = await conn.fetch(self.sql, *self.args(values))
        validate = self.row.model_validate
        return [validate(dict(record)) for record in records]


@dataclass(frozen=True, slots=True)
class Value(Query, Generic[ValueT]):
    """A statement that returns one value (`count_…`, `exists_…`)."""

    kind: type[ValueT]

    async def __call__(self, conn: Connection, **values: Any) -> ValueT:
        result: ValueT = await conn.fetchval(self.sql, *self.args(values))
        return result


@dataclass(frozen=True, slots=True)
class Exec(Query):
    """A statement run for its effect (`insert_…`, DDL); returns the command status."""

    async def __call__(self, conn: Connection, **values: Any) -> str:
        status: str = await conn.execute(self.sql, *self.args(values))
        return status


# Every SqlDir by its directory. A module whose verify() raises fails its import and its
# namespace is gone; `api-admin check` still finds its sound declarations here.
_REGISTRY: dict[Path, SqlDir] = {}


def registered(service: str, root: Path = SQL_ROOT) -> SqlDir | None:
    """The `SqlDir` last made for `<root>/<service>`, whether or not its module loaded."""
    return _REGISTRY.get(root / service)


@dataclass
class SqlDir:
    """The .sql files of one service: `queries/sql/<service>/*.sql`."""

    service: str
    root: Path = SQL_ROOT
    declared: dict[str, Query] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _REGISTRY[self.directory] = self

    @property
    def directory(self) -> Path:
        return self.root / self.service

    def one(self, name: str, *, row: type[RowT], params: Mapping[str, type]) -> One[RowT]:
        scanned = self._load(name, params)
        query = One(name, self._path(name), params, scanned.sql, scanned.params, row)
        return self._register(query)

    def many(self, name: str, *, row: type[RowT], params: Mapping[str, type]) -> Many[RowT]:
        scanned = self._load(name, params)
        query = Many(name, self._path(name), params, scanned.sql, scanned.params, row)
        return self._register(query)

    def value(self, name: str, *, kind: type[ValueT], params: Mapping[str, type]) -> Value[ValueT]:
        scanned = self._load(name, params)
        query = Value(name, self._path(name), params, scanned.sql, scanned.params, kind)
        return self._register(query)

    def exec(self, name: str, *, params: Mapping[str, type]) -> Exec:
        scanned = self._load(name, params)
        query = Exec(name, self._path(name), params, scanned.sql, scanned.params)
        return self._register(query)

    def scanned(self, name: str, *, params: Mapping[str, type]) -> ScannedSql:
        """A base statement for a composed query (see `_compose`); it counts as declared."""
        scanned = self._load(name, params)
        self._register(Query(name, self._path(name), params, scanned.sql, scanned.params))
        return scanned

    def verify(self) -> None:
        """Raise one error naming every problem: mismatches, missing and orphan files."""
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.sql")):
                if path.stem not in self.declared:
                    self.problems.append(f"{self._rel(path)}: no declaration uses this file")
        if self.problems:
            raise QueryDeclarationError(self.problems)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.sql"

    def _rel(self, path: Path) -> str:
        """From the project's top level, as `api-admin check` names files."""
        try:
            return path.relative_to(self.root.parent.parent).as_posix()
        except ValueError:
            return str(path)

    def _register(self, query: QueryT) -> QueryT:
        if query.name in self.declared:
            self.problems.append(f"{self._rel(query.path)}: declared twice")
        self.declared[query.name] = query
        return query

    def _load(self, name: str, params: Mapping[str, type]) -> ScannedSql:
        path = self._path(name)
        where = self._rel(path)
        empty = ScannedSql(source=where, sql="", params=())
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problems.append(f"{where}: file not found")
            return empty
        try:
            scanned = scan(text, source=where)
        except SqlFileError as exc:
            self.problems.append(str(exc))
            return empty
        in_file, declared = set(scanned.params), set(params)
        if missing := sorted(in_file - declared):
            self.problems.append(
                f"{where}: parameters used in the file but not declared: "
                + ", ".join(f":{p}" for p in missing)
            )
        if unused := sorted(declared - in_file):
            self.problems.append(
                f"{where}: parameters declared but not in the file: "
                + ", ".join(f":{p}" for p in unused)
            )
        return scanned
