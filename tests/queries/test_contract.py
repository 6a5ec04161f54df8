"""Every declared .sql file prepares against the real schema and returns its declared columns."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import asyncpg
import pytest

import queries
from queries._declare import SQL_ROOT, Many, One, Query, SqlDir


def _modules() -> list[ModuleType]:
    names = [m.name for m in pkgutil.iter_modules(queries.__path__) if not m.name.startswith("_")]
    return [importlib.import_module(f"queries.{name}") for name in names]


def _declarations() -> list[Query]:
    found: list[Query] = []
    for module in _modules():
        sql_dir = getattr(module, "SQL", None)
        assert isinstance(sql_dir, SqlDir), f"{module.__name__} has no SqlDir named SQL"
        found.extend(sql_dir.declared.values())
    return found


def test_every_sql_directory_belongs_to_a_module() -> None:
    services = {module.SQL.service for module in _modules()}
    directories = {path.name for path in SQL_ROOT.iterdir() if path.is_dir()}
    assert directories == services


def test_every_sql_file_is_declared_exactly_once() -> None:
    files = {p.relative_to(SQL_ROOT) for p in SQL_ROOT.rglob("*.sql")}
    declared = [q.path.relative_to(SQL_ROOT) for q in _declarations()]
    assert sorted(declared) == sorted(files)


@pytest.mark.parametrize("query", _declarations(), ids=lambda q: f"{q.path.parent.name}/{q.name}")
async def test_statement_prepares_and_matches_its_row(query: Query, database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        async with conn.transaction():
            # The load statements read the session's staging table.
            await conn.execute(importlib.import_module("queries.movies").create_staging.sql)
            statement = await conn.prepare(query.sql)
            assert len(statement.get_parameters()) == len(query.order)
            if isinstance(query, One | Many):
                columns = [attr.name for attr in statement.get_attributes()]
                assert columns == list(query.row.model_fields)
    finally:
        await conn.close()


async def test_listing_base_returns_the_columns_it_selects(database: str) -> None:
    import queries.movies as q

    conn = await asyncpg.connect(database)
    try:
        statement = await conn.prepare(q.list_movies.base.sql)
        assert [a.name for a in statement.get_attributes()] == list(q.list_movies.columns)
    finally:
        await conn.close()
