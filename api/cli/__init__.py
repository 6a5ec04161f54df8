"""The `api-admin` command: serve the API, set up the database, load movies, manage users,
check the SQL against the database, open psql on it.

With no DATABASE_URL every command uses the embedded PostgreSQL in the data directory,
so `serve` in one terminal and `users create` in another share the same data.
"""

from __future__ import annotations

import sys

import typer

from api.cli import commands, users  # noqa: F401 - registering the commands
from api.cli._base import _Failed, app
from queries._declare import QueryDeclarationError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `api-admin` script: an expected failure is a message and exit 1."""
    try:
        app()
    except _Failed as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except QueryDeclarationError as exc:
        # A command whose query modules do not load: the same problems `check` lists.
        typer.echo("error: the .sql files do not fit their declarations:", err=True)
        for problem in exc.problems:
            typer.echo(problem, err=True)
        sys.exit(1)
