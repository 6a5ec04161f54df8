"""`api-admin users ...` as an admin runs it: the installed script, a real database.

Runs the script the way test_cli.py does (its `Admin` runner, a fresh database per test,
bcrypt at cost 4) and checks every command by the rows it leaves behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from rich.cells import cell_len

from api.backend.config import Settings
from api.backend.database import Database, create_pool
from api.services import auth, throttle
from tests.cli.test_cli import (
    ADMIN,
    CLOSED_PORT_DSN,
    EOF_KEY,
    PASSWORD,
    Admin,
    Result,
    assert_clean_failure,
    sql,
    user_count,
    value,
)

ADA = "ada@example.com"
NEW_PASSWORD = "another long password"
ADDRESS = "192.0.2.7"
COMMANDS = (
    "create", "list", "show", "disable", "enable", "set-password", "set-scopes", "logout",
    "unlock", "delete",
)  # fmt: skip


@pytest.fixture
def admin(database: str, settings: Settings, tmp_path: Path) -> Admin:
    """test_cli.py's runner on this test's database (a fixture is not shared by import)."""
    assert settings.jwt_secret is not None
    home = tmp_path / "home"
    home.mkdir()
    return Admin(dsn=database, home=home, jwt_secret=settings.jwt_secret.get_secret_value())


def add_user(
    dsn: str,
    email: str = ADA,
    *,
    name: str = "Ada Lovelace",
    scopes: Sequence[str] = ("movies:read",),
    active: bool = True,
) -> int:
    """A user written straight to the table, with the password PASSWORD."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    user_id: int = value(
        dsn,
        "INSERT INTO myapi.users (email, name, password_hash, scopes, is_active)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING user_id",
        email, name, hashed, list(scopes), active,
    )  # fmt: skip
    return user_id


def user_row(dsn: str, user_id: int) -> dict[str, Any]:
    rows = sql(dsn, "SELECT * FROM myapi.users WHERE user_id = $1", user_id)
    assert len(rows) == 1, f"user {user_id}: {len(rows)} rows"
    return dict(rows[0])


def snapshot(dsn: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every user and every login count: what a refused command must leave alone."""
    users = sql(dsn, "SELECT * FROM myapi.users ORDER BY user_id")
    attempts = sql(dsn, "SELECT * FROM myapi.login_attempts ORDER BY key")
    return [dict(r) for r in users], [dict(r) for r in attempts]


def attempt_keys(dsn: str) -> set[str]:
    return {row["key"] for row in sql(dsn, "SELECT key FROM myapi.login_attempts")}


def fail_logins(settings: Settings, email: str, times: int) -> None:
    """Count `times` login attempts against `email` as POST /token does, before bcrypt."""

    async def run() -> None:
        assert settings.database_url is not None
        pool = await create_pool(settings.database_url.get_secret_value(), settings)
        try:
            counter = throttle.Throttle(Database(pool), settings)
            for _ in range(times):
                await counter.attempt(email=auth.normalise_email(email), address=ADDRESS)
        finally:
            await pool.close()

    asyncio.run(run())


def succeeded(result: Result, *fragments: str) -> str:
    """Exit 0 and one confirmation line on stdout that names `fragments`."""
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"expected one line on stdout, got:\n{result.stdout}"
    assert lines[0] == lines[0].strip(), f"stray output around {lines[0]!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def help_text(result: Result) -> str:
    """Help output as one line of words: rich wraps it in boxes at the terminal width."""
    assert result.returncode == 0, result.output
    return " ".join(result.stdout.replace("│", " ").split())


# --- help --------------------------------------------------------------------------------


def test_help_lists_the_users_commands(admin: Admin) -> None:
    assert "users" in admin("--help").stdout
    shown = admin("users", "--help").stdout
    listed = {line.strip("│ ").split(" ")[0] for line in shown.splitlines()}
    assert set(COMMANDS) <= listed, shown


@pytest.mark.parametrize(
    "command", [["create-user"], ["users", "create"], ["users", "set-password"]]
)
def test_password_option_says_it_leaks(admin: Admin, command: list[str]) -> None:
    text = help_text(admin(*command, "--help"))
    assert "--password-stdin" in text
    assert "leaks into shell history" in text


# --- create --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["create-user"], ["users", "create"]])
def test_create_reads_the_password_from_stdin_keeping_its_spaces(
    admin: Admin, command: list[str]
) -> None:
    secret = "  " + PASSWORD + " \t"
    result = admin(
        *command, "--email", "Ada@Example.com", "--name", "Ada", "--password-stdin",
        "--scope", "users:admin", "--scope", "movies:read",
        stdin=f"{secret}\nnot the password\n",
    )  # fmt: skip
    succeeded(result, "Created user", ADA)
    assert secret not in result.output
    (row,) = sql(admin.dsn, "SELECT * FROM myapi.users")
    assert (row["email"], row["name"]) == (ADA, "Ada")
    assert sorted(row["scopes"]) == ["movies:read", "users:admin"]
    assert row["password_hash"].startswith("$2b$04$")
    assert bcrypt.checkpw(secret.encode(), row["password_hash"].encode())


@pytest.mark.parametrize("command", [["create-user"], ["users", "create"]])
def test_create_refuses_an_email_taken_in_another_letter_case(
    admin: Admin, command: list[str]
) -> None:
    add_user(admin.dsn, ADA, name="Ada")
    before = snapshot(admin.dsn)
    result = admin(
        *command, "--email", "ADA@example.COM", "--name", "Impostor", "--password-stdin",
        stdin=NEW_PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 1
    assert_clean_failure(result, ADA, "already exists")
    assert snapshot(admin.dsn) == before


@pytest.mark.parametrize(
    ("password", "message"),
    [("short7!", "at least 8"), ("é" * 37, "72 bytes")],
    ids=["weak", "too-long"],
)
def test_create_refuses_a_weak_or_too_long_password(
    admin: Admin, password: str, message: str
) -> None:
    result = admin(
        "users", "create", "--email", ADA, "--name", "Ada", "--password-stdin",
        stdin=password + "\n",
    )  # fmt: skip
    assert_clean_failure(result, message)
    assert password not in result.output
    assert user_count(admin.dsn) == 0


@pytest.mark.parametrize(
    ("stdin", "extra", "message"),
    [
        ("", [], "nothing on standard input"),
        (PASSWORD + "\n", ["--password", PASSWORD], "not both"),
    ],
    ids=["empty-stdin", "both-options"],
)
def test_create_refuses_a_missing_or_doubled_password(
    admin: Admin, stdin: str, extra: list[str], message: str
) -> None:
    result = admin(
        "users", "create", "--email", ADA, "--name", "Ada", "--password-stdin", *extra,
        stdin=stdin,
    )  # fmt: skip
    assert_clean_failure(result, message)
    assert user_count(admin.dsn) == 0


def test_create_with_an_unknown_scope_writes_nothing(admin: Admin) -> None:
    result = admin(
        "users", "create", "--email", ADA, "--name", "Ada", "--password-stdin",
        "--scope", "movies:delete", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert_clean_failure(result, "movies:delete")
    assert user_count(admin.dsn) == 0


# --- list and show ----------------------------------------------------------------------------


def _created(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_list_prints_every_user_in_aligned_columns(admin: Admin) -> None:
    ada = add_user(admin.dsn, ADA)
    bob = add_user(
        admin.dsn, "bob@example.com", name="Bob 漢字", scopes=["movies:read", "users:admin"],
        active=False,
    )  # fmt: skip
    eve = add_user(admin.dsn, "eve@example.com", name="Eve\x1b[31m", scopes=[])
    result = admin("users", "list")
    assert result.returncode == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["ID", "E-MAIL", "NAME", "ACTIVE", "SCOPES", "CREATED"]
    expected = {
        ada: [ADA, "Ada Lovelace", "yes", "movies:read"],
        bob: ["bob@example.com", "Bob 漢字", "no", "movies:read,users:admin"],
        # A control character in a name is shown escaped, never sent to the terminal.
        eve: ["eve@example.com", "Eve\\x1b[31m", "yes", "-"],
    }
    assert "\x1b" not in result.stdout
    assert len(lines) == len(expected)
    for line, (user_id, cells) in zip(lines, expected.items(), strict=True):
        created = _created(user_row(admin.dsn, user_id)["created_at"])
        assert line.startswith(f"{user_id}  ")
        assert line.endswith(created)
        for cell in cells:
            assert cell in line
        # Each column starts where its heading does, counted in terminal cells.
        active = line.index(" yes " if cells[2] == "yes" else " no ") + 1
        assert cell_len(line[:active]) == header.index("ACTIVE"), line


def test_list_json_pages_through_every_user(admin: Admin) -> None:
    sql(
        admin.dsn,
        "INSERT INTO myapi.users (email, name, password_hash, is_active)"
        " SELECT 'user' || i || '@example.com', 'User ' || i, 'x', i % 3 > 0"
        " FROM generate_series(1, 450) AS i",
    )
    sql(admin.dsn, "DELETE FROM myapi.users WHERE user_id % 7 = 0")  # gaps across pages
    result = admin("users", "list", "--json")
    assert result.returncode == 0, result.output
    listed = json.loads(result.stdout)
    rows = sql(admin.dsn, "SELECT * FROM myapi.users ORDER BY user_id")
    assert len(rows) == 386  # more than one page of users.MAX_PAGE (200)
    assert [
        {**user, "created_at": datetime.fromisoformat(user["created_at"])} for user in listed
    ] == [
        {
            "user_id": r["user_id"],
            "email": r["email"],
            "name": r["name"],
            "is_active": r["is_active"],
            "scopes": r["scopes"],
            "created_at": r["created_at"],
        }
        for r in rows
    ]


def test_list_without_users(admin: Admin) -> None:
    assert admin("users", "list").stdout == "No users.\n"
    assert json.loads(admin("users", "list", "--json").stdout) == []


def test_show_prints_the_user_and_their_failed_logins(admin: Admin, settings: Settings) -> None:
    user_id = add_user(admin.dsn, ADA, scopes=["movies:read", "users:admin"])
    fail_logins(settings, "Ada@Example.com", 3)
    fail_logins(settings, "someone-else@example.com", 2)
    row = user_row(admin.dsn, user_id)

    shown = admin("users", "show", "ADA@example.COM", "--json")
    assert shown.returncode == 0, shown.output
    fields = json.loads(shown.stdout)
    assert datetime.fromisoformat(fields.pop("created_at")) == row["created_at"]
    assert fields == {
        "user_id": user_id,
        "email": ADA,
        "name": "Ada Lovelace",
        "is_active": True,
        "scopes": ["movies:read", "users:admin"],
        "failed_logins": 3,
    }

    text = admin("users", "show", ADA)
    assert text.returncode == 0, text.output
    lines = dict(line.split(":", 1) for line in text.stdout.splitlines())
    assert {k: v.strip() for k, v in lines.items()} == {
        "id": str(user_id),
        "e-mail": ADA,
        "name": "Ada Lovelace",
        "active": "yes",
        "scopes": "movies:read,users:admin",
        "created": _created(row["created_at"]),
        "failed logins": "3",
    }


def test_show_counts_only_the_current_window(admin: Admin, settings: Settings) -> None:
    add_user(admin.dsn, ADA)
    fail_logins(settings, ADA, 2)
    sql(admin.dsn, "UPDATE myapi.login_attempts SET window_started = now() - interval '1 day'")
    shown = admin("users", "show", ADA, "--json")
    assert shown.returncode == 0, shown.output
    assert json.loads(shown.stdout)["failed_logins"] == 0


# --- changes -------------------------------------------------------------------------------------


def test_disable_then_enable(admin: Admin) -> None:
    user_id = add_user(admin.dsn, ADA)
    before = user_row(admin.dsn, user_id)
    succeeded(admin("users", "disable", "Ada@EXAMPLE.com"), "Disabled", ADA)
    disabled = user_row(admin.dsn, user_id)
    assert disabled["is_active"] is False
    assert disabled["tokens_valid_after"] > before["tokens_valid_after"]

    succeeded(admin("users", "enable", ADA), "Enabled", ADA)
    enabled = user_row(admin.dsn, user_id)
    assert enabled["is_active"] is True
    # Tokens ended by disabling stay ended.
    assert enabled["tokens_valid_after"] == disabled["tokens_valid_after"]


def test_logout_revokes_every_earlier_token(admin: Admin) -> None:
    user_id = add_user(admin.dsn, ADA)
    other = add_user(admin.dsn, "bob@example.com")
    before = user_row(admin.dsn, user_id)
    untouched = user_row(admin.dsn, other)
    succeeded(admin("users", "logout", "ADA@example.com"), "Logged out", ADA)
    after = user_row(admin.dsn, user_id)
    assert after["tokens_valid_after"] > before["tokens_valid_after"]
    assert after["is_active"] is True
    assert user_row(admin.dsn, other) == untouched


def test_set_password_prompts_twice(admin: Admin) -> None:
    user_id = add_user(admin.dsn, ADA)
    before = user_row(admin.dsn, user_id)
    result = admin.typing(
        "users", "set-password", ADA, answers=[f"{NEW_PASSWORD}\n", f"{NEW_PASSWORD}\n"]
    )
    succeeded(result, "new password", ADA)
    assert NEW_PASSWORD not in result.output
    after = user_row(admin.dsn, user_id)
    assert bcrypt.checkpw(NEW_PASSWORD.encode(), after["password_hash"].encode())
    assert not bcrypt.checkpw(PASSWORD.encode(), after["password_hash"].encode())
    assert after["password_hash"].startswith("$2b$04$")
    assert after["tokens_valid_after"] > before["tokens_valid_after"]


def test_set_password_prompt_mismatch_changes_nothing(admin: Admin) -> None:
    add_user(admin.dsn, ADA)
    before = snapshot(admin.dsn)
    result = admin.typing(
        "users", "set-password", ADA,
        answers=[f"{NEW_PASSWORD}\n", f"{NEW_PASSWORD}!\n", EOF_KEY],
    )  # fmt: skip
    assert result.returncode != 0
    assert "do not match" in result.output
    assert "Traceback" not in result.output
    assert snapshot(admin.dsn) == before


@pytest.mark.parametrize(
    "command",
    [
        ["create-user", "--email", ADA, "--name", "Ada"],
        ["users", "create", "--email", ADA, "--name", "Ada"],
        ["users", "set-password", "bob@example.com"],
    ],
    ids=["create-user", "users-create", "set-password"],
)
@pytest.mark.parametrize(
    "stdin", ["", f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n"], ids=["no-input", "piped-input"]
)
def test_password_prompt_without_a_terminal_is_one_line(
    admin: Admin, command: list[str], stdin: str
) -> None:
    """No terminal to hide the input on: piped input is for --password-stdin, read once."""
    add_user(admin.dsn, "bob@example.com")
    before = snapshot(admin.dsn)
    result = admin(*command, stdin=stdin)
    assert result.returncode == 1
    assert result.stdout == ""
    line = assert_clean_failure(result)
    assert line == "error: no terminal to prompt for the password on; use --password-stdin"
    assert snapshot(admin.dsn) == before


def test_set_password_from_stdin_strips_only_the_newline(admin: Admin) -> None:
    user_id = add_user(admin.dsn, ADA)
    secret = " " + NEW_PASSWORD + "  "
    result = admin(
        "users", "set-password", ADA, "--password-stdin", stdin=f"{secret}\nsecond line\n"
    )
    succeeded(result, ADA)
    hashed = user_row(admin.dsn, user_id)["password_hash"].encode()
    assert bcrypt.checkpw(secret.encode(), hashed)
    assert not bcrypt.checkpw(NEW_PASSWORD.encode(), hashed)


@pytest.mark.parametrize(
    ("stdin", "extra", "message"),
    [
        ("short7!\n", [], "at least 8"),
        ("é" * 37 + "\n", [], "72 bytes"),
        ("", [], "nothing on standard input"),
        (NEW_PASSWORD + "\n", ["--password", NEW_PASSWORD], "not both"),
    ],
    ids=["weak", "too-long", "empty-stdin", "both-options"],
)
def test_set_password_refusals_change_nothing(
    admin: Admin, stdin: str, extra: list[str], message: str
) -> None:
    add_user(admin.dsn, ADA)
    before = snapshot(admin.dsn)
    result = admin("users", "set-password", ADA, "--password-stdin", *extra, stdin=stdin)
    assert_clean_failure(result, message)
    assert snapshot(admin.dsn) == before


def test_set_password_that_is_not_utf8_changes_nothing(admin: Admin) -> None:
    add_user(admin.dsn, ADA)
    before = snapshot(admin.dsn)
    done = subprocess.run(
        [ADMIN, "users", "set-password", ADA, "--password-stdin"],
        input=b"\xff\xfe" + NEW_PASSWORD.encode() + b"\n",
        capture_output=True,
        env=admin.env(),
        cwd=admin.home,
        timeout=120,
        check=False,
    )
    result = Result(done.returncode, done.stdout.decode(), done.stderr.decode())
    assert_clean_failure(result, "not valid UTF-8")
    assert snapshot(admin.dsn) == before


def test_set_scopes_replaces_them(admin: Admin) -> None:
    user_id = add_user(admin.dsn, ADA, scopes=["movies:read"])
    before = user_row(admin.dsn, user_id)
    line = succeeded(
        admin("users", "set-scopes", "ada@EXAMPLE.com", "users:admin", "movies:read"), ADA
    )
    assert "movies:read users:admin" in line
    added = user_row(admin.dsn, user_id)
    assert added["scopes"] == ["movies:read", "users:admin"]
    # Adding scopes leaves earlier tokens alone; taking one away ends them.
    assert added["tokens_valid_after"] == before["tokens_valid_after"]

    succeeded(admin("users", "set-scopes", ADA, "movies:write"), "movies:write")
    taken = user_row(admin.dsn, user_id)
    assert taken["scopes"] == ["movies:write"]
    assert taken["tokens_valid_after"] > added["tokens_valid_after"]


def test_set_scopes_refuses_an_unknown_scope(admin: Admin) -> None:
    add_user(admin.dsn, ADA, scopes=["movies:read"])
    before = snapshot(admin.dsn)
    result = admin("users", "set-scopes", ADA, "users:admin", "movies:delete")
    assert_clean_failure(result, "movies:delete", "known: movies:read")
    assert snapshot(admin.dsn) == before


def test_unlock_forgives_only_that_account(admin: Admin, settings: Settings) -> None:
    add_user(admin.dsn, ADA)
    add_user(admin.dsn, "bob@example.com")
    fail_logins(settings, ADA, 3)
    fail_logins(settings, "BOB@example.com", 2)
    before = attempt_keys(admin.dsn)
    result = admin("users", "unlock", "Ada@Example.COM")
    succeeded(result, "Unlocked", ADA, "3 failed logins")
    # Bob's count and the client address's count stay.
    assert attempt_keys(admin.dsn) == before - {throttle.account_key(ADA)}
    assert len(before) == 3


# --- delete --------------------------------------------------------------------------------------


def test_delete_with_yes(admin: Admin, settings: Settings) -> None:
    user_id = add_user(admin.dsn, ADA)
    other = add_user(admin.dsn, "bob@example.com")
    fail_logins(settings, ADA, 2)
    succeeded(admin("users", "delete", "ADA@example.com", "--yes"), "Deleted", ADA)
    assert [r["user_id"] for r in sql(admin.dsn, "SELECT user_id FROM myapi.users")] == [other]
    assert user_id != other
    assert throttle.account_key(ADA) not in attempt_keys(admin.dsn)


def test_delete_without_a_terminal_or_yes_refuses(admin: Admin) -> None:
    add_user(admin.dsn, ADA)
    before = snapshot(admin.dsn)
    result = admin("users", "delete", ADA, stdin="y\n")  # piped: no one to ask
    assert_clean_failure(result, "--yes")
    assert snapshot(admin.dsn) == before


@pytest.mark.parametrize(
    ("answer", "deleted"), [("y", True), ("YES", True), ("n", False), ("", False)]
)
def test_delete_asks_on_a_terminal(admin: Admin, answer: str, deleted: bool) -> None:
    user_id = add_user(admin.dsn, ADA)
    primary, secondary = pty.openpty()
    try:
        os.write(primary, f"{answer}\n".encode())
        done = subprocess.run(
            [ADMIN, "users", "delete", ADA],
            stdin=secondary,
            capture_output=True,
            text=True,
            env=admin.env(),
            cwd=admin.home,
            timeout=120,
            check=False,
            start_new_session=True,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert f"Delete user {user_id}: {ADA}" in done.stderr
    assert "Traceback" not in done.stderr
    assert user_count(admin.dsn) == (0 if deleted else 1)
    if deleted:
        succeeded(Result(done.returncode, done.stdout, done.stderr), "Deleted", ADA)
    else:
        assert (done.returncode, done.stdout) == (1, "")
        assert "Nothing deleted" in done.stderr


# --- failures shared by every command ------------------------------------------------------------

BY_EMAIL: dict[str, tuple[list[str], str]] = {
    "show": (["show", "{email}"], ""),
    "disable": (["disable", "{email}"], ""),
    "enable": (["enable", "{email}"], ""),
    "set-password": (["set-password", "{email}", "--password-stdin"], NEW_PASSWORD + "\n"),
    "set-scopes": (["set-scopes", "{email}", "movies:read"], ""),
    "logout": (["logout", "{email}"], ""),
    "unlock": (["unlock", "{email}"], ""),
    "delete": (["delete", "{email}", "--yes"], ""),
}


def _by_email(command: str, email: str) -> tuple[list[str], str]:
    args, stdin = BY_EMAIL[command]
    return ["users", *(arg.format(email=email) for arg in args)], stdin


@pytest.mark.parametrize("command", list(BY_EMAIL))
def test_unknown_user_is_one_line_and_changes_nothing(
    admin: Admin, settings: Settings, command: str
) -> None:
    add_user(admin.dsn, ADA)
    fail_logins(settings, "nobody@example.com", 1)
    before = snapshot(admin.dsn)
    args, stdin = _by_email(command, "Nobody@Example.com")
    result = admin(*args, stdin=stdin)
    assert result.returncode == 1
    assert_clean_failure(result, "no user", "nobody@example.com")
    assert snapshot(admin.dsn) == before


@pytest.mark.parametrize("command", [*BY_EMAIL, "list", "create"])
def test_unreachable_database_is_one_line(admin: Admin, command: str) -> None:
    if command == "list":
        args, stdin = ["users", "list"], ""
    elif command == "create":
        args = ["users", "create", "--email", ADA, "--name", "Ada", "--password-stdin"]
        stdin = PASSWORD + "\n"
    else:
        args, stdin = _by_email(command, ADA)
    result = admin(*args, stdin=stdin, dsn=CLOSED_PORT_DSN)
    assert result.returncode == 1
    assert_clean_failure(result, "cannot reach the database")


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("mysql://u:secretpw@h/d", "must start with postgresql://"),
        ("postgresql://u:secretpw@h/d?sslmode=bogus", "invalid DATABASE_URL"),
    ],
)
@pytest.mark.parametrize("command", ["list", "disable"])
def test_bad_database_url_is_one_line(admin: Admin, dsn: str, message: str, command: str) -> None:
    args = ["users", "list"] if command == "list" else _by_email(command, ADA)[0]
    result = admin(*args, dsn=dsn)
    assert_clean_failure(result, message)
    assert "secretpw" not in result.output


def test_email_that_is_not_utf8_is_one_line(admin: Admin) -> None:
    env = admin.env()
    done = subprocess.run(
        [ADMIN.encode(), b"users", b"disable", b"\xff@example.com"],
        capture_output=True,
        env=env,
        cwd=admin.home,
        timeout=120,
        check=False,
    )
    result = Result(done.returncode, done.stdout.decode(), done.stderr.decode())
    assert_clean_failure(result, "not valid UTF-8")
