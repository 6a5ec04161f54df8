"""What the check checks: the declarations of every query module, gathered by importing them,
and the problems found on the way (a module that fails its declarations, an orphan .sql file).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel

import queries

from ._compose import Listing
from ._declare import SQL_ROOT, Query, QueryDeclarationError, SqlDir, registered

Severity: TypeAlias = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: the file (`queries/sql/<service>/<name>.sql`), the row field or `:param`."""

    file: str
    field: str | None
    severity: Severity
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        """`file: field 'title': error: message`, and the hint on an indented line."""
        where = self.file
        if self.field and self.field.startswith(":"):
            where += f": parameter {self.field}"
        elif self.field:
            where += f": field {self.field!r}"
        line = f"{where}: {self.severity}: {self.message}"
        return line + (f"\n    hint: {self.hint}" if self.hint else "")


@dataclass(frozen=True, slots=True)
class ListingBase:
    """A `Listing`'s base statement: the columns it must return, and their row model if known."""

    query: Query
    columns: tuple[str, ...]
    row: type[BaseModel] | None


Declaration: TypeAlias = Query | ListingBase


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every declaration of the query modules that load; the problems of those that do not."""

    declarations: tuple[Declaration, ...]
    problems: tuple[Finding, ...]


# --- collecting the declarations ------------------------------------------------------------


def collect_declarations() -> Catalog:
    """Import every public module of `queries` and gather its declarations.

    A module that fails its declarations is reported, and the declarations of it that read
    a file are still gathered; so are .sql files outside every service's folder.
    """
    declarations: list[Declaration] = []
    problems: list[Finding] = []
    folders: set[Path] = set()
    for info in pkgutil.iter_modules(queries.__path__):
        if not info.name.startswith("_"):
            sql_dir, found, trouble = _gather(info.name)
            declarations.extend(found)
            problems.extend(trouble)
            folders |= {sql_dir.directory} if sql_dir else set()
    problems.extend(_orphan_files(folders))
    return Catalog(tuple(declarations), tuple(problems))


def _gather(name: str) -> tuple[SqlDir | None, list[Declaration], list[Finding]]:
    """One module's `SqlDir`, declarations and problems."""
    try:
        module = importlib.import_module(f"queries.{name}")
    except QueryDeclarationError as exc:
        problems = [_declaration_problem(problem) for problem in exc.problems]
        # The import failed at verify(), after every declaration: they are in the registry.
        sql_dir = registered(name)
        sound: list[Declaration] = (
            [q for q in sql_dir.declared.values() if q.sql] if sql_dir else []
        )
        return sql_dir, sound, problems
    except Exception as exc:
        # Reported, not raised: the check's one job is to list what is wrong.
        summary = (str(exc).splitlines() or [""])[0]
        message = f"the module does not load: {type(exc).__name__}: {summary}"
        return None, [], [Finding(f"queries/{name}.py", None, "error", message)]
    sql_dir = getattr(module, "SQL", None)
    if not isinstance(sql_dir, SqlDir):
        return None, [], [Finding(f"queries/{name}.py", None, "error", "no SqlDir named SQL")]
    return sql_dir, list(_module_declarations(module, sql_dir)), []


def _orphan_files(folders: set[Path]) -> list[Finding]:
    """The .sql files outside every service's folder (`SqlDir.verify()` reports those inside)."""
    return [_orphan(p) for p in sorted(SQL_ROOT.rglob("*.sql")) if p.parent not in folders]


def _orphan(path: Path) -> Finding:
    parts = path.relative_to(SQL_ROOT).parts
    where = display_path(path.parent)
    if len(parts) == 1:
        why = f"it is directly in {where}/, outside every service's folder"
        hint = "move it to queries/sql/<service>/ and declare it in queries/<service>.py"
    elif len(parts) == 2:
        why = f"no module declares the folder {where}/"
        module = f'queries/{parts[0]}.py (`SQL = SqlDir("{parts[0]}")`)'
        hint = f"declare it in {module}, or remove it"
    else:
        why = f"it is in {where}/, below a service's folder"
        hint = "move it up into its service's folder and declare it, or remove it"
    return Finding(display_path(path), None, "error", f"no declaration uses this file: {why}", hint)


def _module_declarations(module: ModuleType, sql_dir: SqlDir) -> Iterator[Declaration]:
    listings = [v for v in vars(module).values() if isinstance(v, Listing)]
    for query in sql_dir.declared.values():
        listing = next((v for v in listings if v.base.sql == query.sql), None)
        if type(query) is Query and listing is not None:
            yield ListingBase(query, listing.columns, _row_model(module, listing.columns))
        else:
            yield query


def _row_model(module: ModuleType, columns: Sequence[str]) -> type[BaseModel] | None:
    """The module's own model whose fields are exactly the listing's columns, if one is."""
    models = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, BaseModel)
        and v.__module__ == module.__name__
        and set(row_fields(v)) == set(columns)
    ]
    return models[0] if len(models) == 1 else None


_PROBLEM = re.compile(
    r"(?P<file>[^:]+?\.sql)(?::(?P<line>\d+):(?P<column>\d+))?: (?P<text>.*)", re.S
)


def _declaration_problem(problem: str) -> Finding:
    """A `QueryDeclarationError` line, e.g. `queries/sql/movies/x.sql:3:5: ...`, as a finding."""
    match = _PROBLEM.fullmatch(problem)
    if match is None:
        return Finding("queries", None, "error", problem)
    text = match["text"]
    if match["line"]:
        text += f" (line {match['line']}, column {match['column']})"
    return Finding(match["file"], None, "error", text)


def display_path(path: Path) -> str:
    """`queries/sql/<service>/<name>.sql`: from the project's top level, as declarations say.

    A path elsewhere (a test's copy) keeps its last four parts: the package, `sql`, the
    service and the file.
    """
    try:
        return path.relative_to(SQL_ROOT.parent.parent).as_posix()
    except ValueError:
        return Path(*path.parts[-4:]).as_posix()


def declaration_file(declaration: Declaration) -> str:
    """The file a declaration reads, as findings name it."""
    query = declaration.query if isinstance(declaration, ListingBase) else declaration
    return display_path(query.path)


@dataclass(frozen=True, slots=True)
class RowField:
    """A row model's field as the check sees it: its type, and whether it has no default."""

    annotation: Any  # None: not known (a listing without a row model)
    required: bool


def row_fields(model: type[BaseModel]) -> dict[str, RowField]:
    """Each field under the key a record must have (its alias if it has one)."""
    found: dict[str, RowField] = {}
    for name, info in model.model_fields.items():
        key = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        found[key or name] = RowField(info.annotation, info.is_required())
    return found
