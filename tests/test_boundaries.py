"""The dependency points one way: api -> queries; services know nothing of HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("queries", {"api", "fastapi", "starlette"}),
        ("api/services", {"fastapi", "starlette"}),
        ("api/routers", {"queries"}),  # routers reach the SQL only through services
    ],
)
def test_import_boundaries(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & forbidden)
        for path in (ROOT / package).rglob("*.py")
        if _imports(path) & forbidden
    }
    assert offenders == {}


def test_routers_never_hold_sql() -> None:
    for path in (ROOT / "api" / "routers").rglob("*.py"):
        text = path.read_text().upper()
        assert "SELECT " not in text, path
        assert "INSERT " not in text, path
