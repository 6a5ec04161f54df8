"""`api-admin users ...`: manage users, each named by e-mail in any letter case."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli._base import _count, _fail, _ready_dsn, _settings, _with_database, app

# What imports the query modules is imported where it is used: `check` must report a
# broken declaration, and a module that fails its declarations fails its import (which
# `main` turns into the list of problems for every other command).
if TYPE_CHECKING:
    from api.backend.database import Database
    from queries.users import UserRow


users_app = typer.Typer(
    help="Manage users, each named by e-mail in any letter case: create, list, show, disable, "
    "enable, set a password or scopes, log out, unlock, delete.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")


def _utf8(value: str) -> str:
    """`value`, if it is text: an argument that is not UTF-8 holds lone surrogates."""
    try:
        value.encode()
    except UnicodeEncodeError:
        _fail(f"{value!a} is not valid UTF-8")
    return value


_Email = Annotated[
    str, typer.Argument(help="The user's e-mail address, in any letter case.", callback=_utf8)
]
_Password = Annotated[
    str | None,
    typer.Option(help="The password. Omit to be prompted (this option leaks into shell history)."),
]
_PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (without its newline).",
    ),
]
_Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _change_user(email: str, change: Callable[[Database, UserRow], Awaitable[UserRow]]) -> UserRow:
    """Find the user by e-mail and apply `change`: the changed row."""
    from api.services import users

    async def work(db: Database) -> UserRow:
        return await change(db, await users.find_user(db, email))

    return _with_database(work)


def _terminal() -> bool:
    """Whether there is a terminal for a hidden prompt: the one getpass reads, the process's
    own (/dev/tty) or standard input when it is one. Without either, getpass would read
    standard input with a warning that the password may be echoed."""
    if sys.stdin is not None and sys.stdin.isatty():
        return True
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def _new_password(password: str | None, *, from_stdin: bool, prompt: str) -> str:
    """From --password, the first line of stdin, or a hidden prompt asked twice."""
    if password is not None and from_stdin:
        _fail("give --password or --password-stdin, not both")
    try:
        if from_stdin:
            line = sys.stdin.readline() if sys.stdin is not None else ""
            if not line:
                _fail("--password-stdin: nothing on standard input")
            password = line.removesuffix("\n")
        elif password is None:
            if not _terminal():
                _fail("no terminal to prompt for the password on; use --password-stdin")
            password = typer.prompt(prompt, hide_input=True, confirmation_prompt=True, err=True)
        # Undecodable input arrives as lone surrogates, which no hash can take.
        password.encode()
    except UnicodeError:
        _fail("the password is not valid UTF-8")
    return password


def _shown(text: str) -> str:
    """`text` safe for a terminal: unprintable characters (escape sequences) escaped."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def _who(user: UserRow) -> str:
    return f"{user.user_id}: {_shown(user.email)}"


@users_app.command("create")
def create_user(
    email: Annotated[str, typer.Option(help="E-mail address; the login name.", callback=_utf8)],
    name: Annotated[str, typer.Option(help="Display name.", callback=_utf8)],
    password: _Password = None,
    password_stdin: _PasswordStdin = False,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            # Spelled out: reading auth.DEFAULT_SCOPES here would import the query modules.
            help="A scope to grant; repeat for several. Default: movies:read."
        ),
    ] = None,
) -> None:
    """Create a user who can log in with POST /token."""
    from api.services import auth

    secret = _new_password(password, from_stdin=password_stdin, prompt="Password")
    scopes = tuple(scope) if scope else auth.DEFAULT_SCOPES
    rounds = _settings().bcrypt_rounds
    user = _with_database(
        lambda db: auth.register_user(
            db, email=email, name=name, password=secret, scopes=scopes, rounds=rounds
        )
    )
    typer.echo(f"Created user {_who(user)} (scopes: {' '.join(user.scopes)})")


# The older spelling, kept for scripts that use it.
app.command("create-user", help="Create a user who can log in (the same as `users create`).")(
    create_user
)


def _user_cells(user: UserRow) -> list[str]:
    created = user.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    active = "yes" if user.is_active else "no"
    scopes = ",".join(user.scopes) or "-"
    return [str(user.user_id), _shown(user.email), _shown(user.name), active, scopes, created]


def _user_json(user: UserRow) -> dict[str, object]:
    from api.schemas.users import UserOut

    return UserOut.from_row(user).model_dump(mode="json")  # the shape of GET /users/me


@users_app.command("list")
def list_users(as_json: _Json = False) -> None:
    """Every user in id order: id, e-mail, name, active, scopes, created."""
    from api.services import users

    async def work(db: Database) -> list[UserRow]:
        found: list[UserRow] = []
        after: int | None = 0
        while after is not None:
            page = await users.list_users(db, after=after, limit=users.MAX_PAGE)
            found += page.items
            after = page.next_after
        return found

    everyone = _with_database(work)
    if as_json:
        typer.echo(json.dumps([_user_json(user) for user in everyone], indent=2))
    elif not everyone:
        typer.echo("No users.")
    else:
        header = ["ID", "E-MAIL", "NAME", "ACTIVE", "SCOPES", "CREATED"]
        for line in _columns([header, *map(_user_cells, everyone)]):
            typer.echo(line)


def _columns(rows: list[list[str]]) -> list[str]:
    """Rows as lines of left-aligned columns (wide characters count as two)."""
    from rich.cells import cell_len

    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


@users_app.command("show")
def show_user(email: _Email, as_json: _Json = False) -> None:
    """One user, and how many failed logins count against them now."""
    from api.services import users

    window = _settings().login_window_seconds

    async def work(db: Database) -> tuple[UserRow, int]:
        user = await users.find_user(db, email)
        return user, await users.failed_logins(db, user, window_seconds=window)

    user, failures = _with_database(work)
    if as_json:
        typer.echo(json.dumps(_user_json(user) | {"failed_logins": failures}, indent=2))
        return
    labels = ["id", "e-mail", "name", "active", "scopes", "created", "failed logins"]
    for label, cell in zip(labels, [*_user_cells(user), str(failures)], strict=True):
        typer.echo(f"{label + ':':<15}{cell}")


@users_app.command("disable")
def disable_user(email: _Email) -> None:
    """Disable a user: no more logins, and every token they hold stops working."""
    from api.services import users

    user = _change_user(email, lambda db, u: users.set_active(db, u.user_id, active=False))
    typer.echo(f"Disabled user {_who(user)}; their tokens no longer work.")


@users_app.command("enable")
def enable_user(email: _Email) -> None:
    """Enable a disabled user (tokens revoked by disabling stay revoked)."""
    from api.services import users

    user = _change_user(email, lambda db, u: users.set_active(db, u.user_id, active=True))
    typer.echo(f"Enabled user {_who(user)}.")


@users_app.command("set-password")
def set_password(
    email: _Email, password: _Password = None, password_stdin: _PasswordStdin = False
) -> None:
    """Give a user a new password; every token they hold stops working."""
    from api.services import users

    secret = _new_password(password, from_stdin=password_stdin, prompt="New password")
    rounds = _settings().bcrypt_rounds
    user = _change_user(
        email, lambda db, u: users.set_password(db, u.user_id, secret, rounds=rounds)
    )
    typer.echo(f"Set a new password for user {_who(user)}; their earlier tokens no longer work.")


@users_app.command("set-scopes")
def set_scopes(
    email: _Email,
    scopes: Annotated[
        list[str], typer.Argument(help="The scopes the user has from now on (replacing theirs).")
    ],
) -> None:
    """Replace a user's scopes (movies:read, movies:write, users:admin); taking one away
    also ends every token they hold."""
    from api.services import users

    async def work(db: Database) -> tuple[UserRow, UserRow]:
        user = await users.find_user(db, email)
        return user, await users.set_scopes(db, user.user_id, scopes)

    before, after = _with_database(work)
    ended = (
        "; their earlier tokens no longer work" if set(before.scopes) - set(after.scopes) else ""
    )
    typer.echo(f"User {_who(after)} now has the scopes: {' '.join(after.scopes)}{ended}.")


@users_app.command("logout")
def logout_user(email: _Email) -> None:
    """Log a user out everywhere: every token issued so far stops working."""
    from api.services import users

    user = _change_user(email, lambda db, u: users.revoke_tokens(db, u.user_id))
    typer.echo(f"Logged out user {_who(user)}; every token issued so far no longer works.")


@users_app.command("unlock")
def unlock_user(email: _Email) -> None:
    """Forgive the failed logins counting against a user's account."""
    from api.services import users

    window = _settings().login_window_seconds

    async def work(db: Database) -> tuple[UserRow, int]:
        user = await users.find_user(db, email)
        return user, await users.unlock(db, user, window_seconds=window)

    user, failures = _with_database(work)
    typer.echo(f"Unlocked user {_who(user)} ({_count(failures, 'failed login')} forgiven).")


@users_app.command("delete")
def delete_user(
    email: _Email,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
) -> None:
    """Delete a user for good (their tokens stop working); asks first unless --yes."""
    from api.services import users

    if not yes and not (sys.stdin is not None and sys.stdin.isatty()):
        _fail("not deleting without confirmation: no terminal to ask on; add --yes")
    dsn = _ready_dsn(_settings())
    user = _with_database(lambda db: users.find_user(db, email), dsn=dsn)
    if not yes:
        # Not typer.confirm: its input() writes a space to stdout, where the result goes.
        typer.echo(f"Delete user {_who(user)} for good? [y/N]: ", nl=False, err=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            typer.echo("Nothing deleted.", err=True)
            raise typer.Exit(1)
    # By id: ids are never reused, so this is the user just confirmed or no one.
    deleted = _with_database(lambda db: users.delete_user(db, user.user_id), dsn=dsn)
    typer.echo(f"Deleted user {_who(deleted)}.")
