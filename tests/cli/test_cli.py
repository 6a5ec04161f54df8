"""`api-admin` as a user runs it: the installed script in a subprocess, against a real database.

Each test gets a fresh database with the schema and the 58,788 real movies (the
`database` fixture); HOME, the data directory and the working directory are the
test's temporary directory, so nothing touches the real home or a `.env` file.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import bcrypt
import pytest

from api.backend.config import Settings
from api.cli.commands import _without_password

ROOT = Path(__file__).resolve().parents[2]
MOVIES_FILE = ROOT / "api" / "data" / "imdb-movies.csv.gz"
MOVIE_COUNT = 58_788
PASSWORD = "a long enough password"
CLOSED_PORT_DSN = "postgresql://postgres@127.0.0.1:1/x"
MD5_MOVIES = "SELECT md5(string_agg(m::text, '|' ORDER BY movie_id)) FROM myapi.movies m"


def _admin_script() -> str:
    # The script installed next to this interpreter first: a PATH lookup could find
    # another installation of the project.
    beside = Path(sys.executable).parent / "api-admin"
    if beside.exists():
        return str(beside)
    found = shutil.which("api-admin")
    assert found, "the api-admin script is not installed"
    return found


ADMIN = _admin_script()


# --- running the command and looking at the database -------------------------------------


def _settings_env_names() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    return names | {"DATABASE_URL", "JWT_SECRET"}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def error_line(self) -> str:
        """The one line a failing command prints on stderr."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.stderr}"
        return lines[0]


@dataclass
class Admin:
    """Runs `api-admin` with a clean environment pointed at one database."""

    dsn: str
    home: Path
    jwt_secret: str

    def env(self, dsn: str | None = None) -> dict[str, str]:
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k.upper() not in _settings_env_names()
            and not k.upper().startswith("API_")
            and k not in ("TEST_DATABASE_URL", "PGPASSWORD", "PGSERVICE")
        }
        return inherited | {
            "DATABASE_URL": dsn or self.dsn,
            "JWT_SECRET": self.jwt_secret,
            "API_BCRYPT_ROUNDS": "4",
            "API_DATA_DIR": str(self.home / "data"),
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "COLUMNS": "120",
            "NO_COLOR": "1",
        }

    def __call__(self, *args: str, stdin: str = "", dsn: str | None = None) -> Result:
        done = subprocess.run(
            [ADMIN, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(dsn),
            cwd=self.home,
            timeout=120,
            check=False,
            # No controlling terminal: a hidden prompt reads the piped stdin, never /dev/tty.
            start_new_session=True,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def typing(self, *args: str, answers: Sequence[str]) -> Result:
        """Run with standard input on a terminal (but no controlling one, so never the
        terminal pytest runs in), typing each answer once its prompt is shown."""
        primary, secondary = pty.openpty()
        process = subprocess.Popen(
            [ADMIN, *args],
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(),
            cwd=self.home,
            start_new_session=True,
        )
        try:
            assert process.stderr is not None
            shown = b""
            for asked, answer in enumerate(answers, start=1):
                shown += _read_until_prompts(process.stderr.fileno(), asked, shown)
                os.write(primary, answer.encode())
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:  # a prompt that never came: do not wait for it
                process.kill()
                process.communicate()
            os.close(secondary)
            os.close(primary)
        return Result(process.returncode, out.decode(), (shown + err).decode())


# A hidden prompt as click and getpass write it; getpass has turned the terminal's echo
# off (discarding what was typed before) by the time the trailing space appears.
_PROMPT = re.compile(rb"(?:[Pp]assword|confirmation): ")
EOF_KEY = "\x04"  # Ctrl-D at the start of a line: the end of input on a terminal


def _read_until_prompts(fd: int, count: int, shown: bytes) -> bytes:
    """Read `fd` until `count` prompts have been shown in all; what was read."""
    read = b""
    deadline = time.monotonic() + 60
    while len(_PROMPT.findall(shown + read)) < count:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            pytest.fail(f"prompt {count} never came; stderr so far: {(shown + read)!r}")
        read += chunk
    return read


@pytest.fixture
def admin(database: str, settings: Settings, tmp_path: Path) -> Admin:
    # conftest's settings carry its TEST_SECRET (imported here it would depend on
    # pytest's import mode).
    assert settings.jwt_secret is not None
    home = tmp_path / "home"
    home.mkdir()
    return Admin(dsn=database, home=home, jwt_secret=settings.jwt_secret.get_secret_value())


def sql(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def value(dsn: str, query: str, *args: Any) -> Any:
    rows = sql(dsn, query, *args)
    assert len(rows) == 1, f"{query!r} returned {len(rows)} rows"
    return rows[0][0]


def movies_md5(dsn: str) -> str:
    digest: str = value(dsn, MD5_MOVIES)
    return digest


def movie_count(dsn: str) -> int:
    count: int = value(dsn, "SELECT count(*) FROM myapi.movies")
    return count


def user_count(dsn: str) -> int:
    count: int = value(dsn, "SELECT count(*) FROM myapi.users")
    return count


def assert_clean_failure(result: Result, *fragments: str) -> str:
    """Non-zero exit, one line on stderr naming what is wrong, no traceback."""
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.output, result.output
    line = result.error_line()
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    return line


# --- help and init-db ------------------------------------------------------------------------


def test_help_lists_every_command(admin: Admin) -> None:
    result = admin("--help")
    assert result.returncode == 0, result.output
    for command in ("serve", "init-db", "load-movies", "create-user", "check", "psql"):
        assert command in result.stdout


def test_init_db_twice_keeps_the_data(admin: Admin) -> None:
    before = movies_md5(admin.dsn)
    for _ in range(2):
        result = admin("init-db")
        assert result.returncode == 0, result.output
        assert "Schema applied" in result.stdout
    assert movie_count(admin.dsn) == MOVIE_COUNT
    assert movies_md5(admin.dsn) == before


class _Janitor(Protocol):
    def __enter__(self) -> object: ...
    def __exit__(self, *exc: object) -> None: ...


class _PgServer(Protocol):
    """conftest's PgServer, as far as these tests use it."""

    def dsn(self, dbname: str) -> str: ...
    def janitor(self, dbname: str) -> _Janitor: ...


@pytest.fixture
def empty_database(pg_server: _PgServer) -> Iterator[str]:
    """A database without the schema."""
    name = f"myapi_empty_{uuid.uuid4().hex[:12]}"
    with pg_server.janitor(name):
        yield pg_server.dsn(name)


def test_init_db_creates_the_schema_on_an_empty_database(admin: Admin, empty_database: str) -> None:
    early = admin(
        "create-user",
        "--email",
        "a@example.com",
        "--name",
        "A",
        "--password",
        PASSWORD,
        dsn=empty_database,
    )
    assert_clean_failure(early, "init-db")
    for _ in range(2):
        result = admin("init-db", dsn=empty_database)
        assert result.returncode == 0, result.output
    assert movie_count(empty_database) == 0  # init-db never seeds
    user = admin(
        "create-user",
        "--email",
        "a@example.com",
        "--name",
        "A",
        "--password",
        PASSWORD,
        dsn=empty_database,
    )
    assert user.returncode == 0, user.output
    assert user_count(empty_database) == 1


# --- create-user -----------------------------------------------------------------------------


def test_create_user_stores_a_bcrypt_hash_and_default_scope(admin: Admin) -> None:
    result = admin(
        "create-user",
        "--email",
        "Ada@Example.com",
        "--name",
        "Ada Lovelace",
        "--password",
        PASSWORD,
    )
    assert result.returncode == 0, result.output
    assert "ada@example.com" in result.stdout
    assert PASSWORD not in result.output
    row = sql(admin.dsn, "SELECT * FROM myapi.users")
    assert len(row) == 1
    user = row[0]
    assert user["email"] == "ada@example.com"
    assert user["name"] == "Ada Lovelace"
    assert user["password_hash"].startswith("$2b$04$")  # API_BCRYPT_ROUNDS=4 is honoured
    assert user["password_hash"] != PASSWORD
    assert bcrypt.checkpw(PASSWORD.encode(), user["password_hash"].encode())
    assert user["scopes"] == ["movies:read"]
    assert user["is_active"] is True


def test_create_user_with_scopes(admin: Admin) -> None:
    result = admin(
        "create-user",
        "--email",
        "root@example.com",
        "--name",
        "Root",
        "--password",
        PASSWORD,
        "--scope",
        "movies:read",
        "--scope",
        "users:admin",
    )
    assert result.returncode == 0, result.output
    scopes = value(admin.dsn, "SELECT scopes FROM myapi.users WHERE email = 'root@example.com'")
    assert sorted(scopes) == ["movies:read", "users:admin"]


def test_duplicate_email_in_another_case_is_refused(admin: Admin) -> None:
    first = admin(
        "create-user", "--email", "Ada@Example.com", "--name", "Ada", "--password", PASSWORD
    )
    assert first.returncode == 0, first.output
    second = admin(
        "create-user",
        "--email",
        "ada@EXAMPLE.COM",
        "--name",
        "Impostor",
        "--password",
        PASSWORD + "2",
    )
    assert_clean_failure(second, "ada@example.com", "already exists")
    assert PASSWORD not in second.output
    assert user_count(admin.dsn) == 1
    assert value(admin.dsn, "SELECT name FROM myapi.users") == "Ada"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "not-an-email", "--name", "X", "--password", PASSWORD], "not an e-mail"),
        (["--email", "x@example.com", "--name", "X", "--password", "short7!"], "at least 8"),
        (
            [
                "--email",
                "x@example.com",
                "--name",
                "X",
                "--password",
                PASSWORD,
                "--scope",
                "movies:delete",
            ],
            "movies:delete",
        ),
        (["--email", "x@example.com", "--name", "   ", "--password", PASSWORD], "name"),
    ],
    ids=["invalid-email", "short-password", "unknown-scope", "blank-name"],
)
def test_invalid_user_data_writes_nothing(admin: Admin, args: list[str], message: str) -> None:
    result = admin("create-user", *args)
    assert_clean_failure(result, message)
    assert PASSWORD not in result.output
    assert user_count(admin.dsn) == 0


PAT = ("create-user", "--email", "pat@example.com", "--name", "Pat")


def test_password_prompt_asks_twice_on_a_terminal(admin: Admin) -> None:
    result = admin.typing(*PAT, answers=[f"{PASSWORD}\n", f"{PASSWORD}\n"])
    assert result.returncode == 0, result.output
    assert result.stderr.count("Password: ") == 1, result.stderr
    assert PASSWORD not in result.output
    hashed = value(admin.dsn, "SELECT password_hash FROM myapi.users")
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())


def test_password_prompt_mismatch_then_end_of_input_creates_nobody(admin: Admin) -> None:
    result = admin.typing(*PAT, answers=[f"{PASSWORD}\n", f"{PASSWORD}-typo\n", EOF_KEY])
    assert result.returncode != 0, result.output
    assert "Traceback" not in result.output
    assert "do not match" in result.output
    assert PASSWORD not in result.output
    assert user_count(admin.dsn) == 0


def test_password_prompt_mismatch_asks_again(admin: Admin) -> None:
    second = PASSWORD + " again"
    result = admin.typing(
        *PAT, answers=[f"{PASSWORD}\n", f"{PASSWORD}-typo\n", f"{second}\n", f"{second}\n"]
    )
    assert result.returncode == 0, result.output
    assert "do not match" in result.output
    assert PASSWORD not in result.output
    hashed = value(admin.dsn, "SELECT password_hash FROM myapi.users")
    assert bcrypt.checkpw(second.encode(), hashed.encode())


def test_unreachable_database_is_one_clear_line(admin: Admin) -> None:
    result = admin(
        "create-user",
        "--email",
        "a@example.com",
        "--name",
        "A",
        "--password",
        PASSWORD,
        dsn=CLOSED_PORT_DSN,
    )
    assert_clean_failure(result, "cannot reach the database")
    assert PASSWORD not in result.output


def test_serve_stops_at_once_when_the_database_cannot_be_reached(admin: Admin) -> None:
    result = admin("serve", "--port", "1", dsn=CLOSED_PORT_DSN)
    assert result.returncode == 1
    assert_clean_failure(result, "cannot reach the database")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("mysql://u:secretpw@h/d", "must start with postgresql://"),
        ("postgresql://u:secretpw@[::1/x", "not a valid url"),
        ("postgresql://u:secretpw@h/d?sslmode=bogus", "invalid DATABASE_URL"),
    ],
)
def test_bad_database_url_is_one_clear_line(admin: Admin, dsn: str, message: str) -> None:
    result = admin("init-db", dsn=dsn)
    assert_clean_failure(result, message)
    assert "secretpw" not in result.output


def test_bad_setting_is_one_clear_line(admin: Admin, tmp_path: Path) -> None:
    env = admin.env() | {"API_CORS_ORIGINS": "notjson"}
    done = subprocess.run(
        [ADMIN, "init-db"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert_clean_failure(Result(done.returncode, done.stdout, done.stderr), "cors_origins")


def test_data_dir_that_is_a_file_is_one_clear_line(admin: Admin, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    env = {k: v for k, v in admin.env().items() if k not in ("DATABASE_URL", "JWT_SECRET")}
    env["API_DATA_DIR"] = str(blocker)
    done = subprocess.run(
        [ADMIN, "init-db"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    # The first line says which data directory; the last says what went wrong.
    assert done.stderr.splitlines()[-1].startswith("error: could not start the embedded")


# --- load-movies: the real file ------------------------------------------------------------


def _imdb_rows() -> tuple[list[str], list[list[str]]]:
    with gzip.open(MOVIES_FILE, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def test_load_the_real_file_into_an_empty_table_then_again(admin: Admin) -> None:
    header, rows = _imdb_rows()
    as_built = movies_md5(admin.dsn)  # the template, loaded by the library
    sql(admin.dsn, "TRUNCATE myapi.movies RESTART IDENTITY")
    assert movie_count(admin.dsn) == 0

    first = admin("load-movies", str(MOVIES_FILE))
    assert first.returncode == 0, first.output
    assert f"{MOVIE_COUNT:,} added, 0 changed" in first.stdout
    dsn = admin.dsn
    assert movie_count(dsn) == len(rows) == MOVIE_COUNT
    assert value(dsn, "SELECT count(*) FROM myapi.movies WHERE rating = 10.0") == 3
    assert value(dsn, "SELECT count(*) FROM myapi.movies WHERE title = 'Alice in Wonderland'") == 7
    assert value(dsn, "SELECT title FROM myapi.movies WHERE movie_id = 1") == "$"
    budget, mpaa = header.index("budget"), header.index("mpaa")
    assert rows[0][budget] == "NA"
    assert rows[0][mpaa] == ""
    movie_1 = sql(dsn, "SELECT budget, mpaa FROM myapi.movies WHERE movie_id = 1")[0]
    assert movie_1["budget"] is None
    assert movie_1["mpaa"] is None
    na_budgets = sum(1 for row in rows if row[budget] == "NA")
    no_mpaa = sum(1 for row in rows if row[mpaa] == "")
    assert value(dsn, "SELECT count(*) FROM myapi.movies WHERE budget IS NULL") == na_budgets
    assert value(dsn, "SELECT count(*) FROM myapi.movies WHERE mpaa IS NULL") == no_mpaa
    loaded = movies_md5(dsn)
    assert loaded == as_built

    second = admin("load-movies", str(MOVIES_FILE))
    assert second.returncode == 0, second.output
    assert "0 added, 0 changed" in second.stdout
    assert f"{MOVIE_COUNT:,} movies" in second.stdout
    assert movies_md5(dsn) == loaded


# --- load-movies: plain CSVs ---------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_plain_csv_loads_once_however_often_it_is_loaded(admin: Admin, tmp_path: Path) -> None:
    path = write(
        tmp_path / "new.csv",
        "title,released,rating\nBrand New Film,2024,7.5\nAnother New Film,2023,6\n",
    )
    first = admin("load-movies", str(path))
    assert first.returncode == 0, first.output
    assert "2 added, 0 changed" in first.stdout
    assert movie_count(admin.dsn) == MOVIE_COUNT + 2
    rows = sql(
        admin.dsn,
        "SELECT movie_id, rating FROM myapi.movies "
        "WHERE title = 'Brand New Film' AND released = 2024",
    )
    assert len(rows) == 1
    assert rows[0]["movie_id"] > MOVIE_COUNT  # a new id past the real movies
    assert float(rows[0]["rating"]) == 7.5
    after_first = movies_md5(admin.dsn)

    second = admin("load-movies", str(path))
    assert second.returncode == 0, second.output
    assert "0 added, 0 changed" in second.stdout
    assert movie_count(admin.dsn) == MOVIE_COUNT + 2
    assert movies_md5(admin.dsn) == after_first


def test_plain_csv_updates_a_known_movie_without_wiping_other_columns(
    admin: Admin, tmp_path: Path
) -> None:
    """A title,released,rating row for a known film changes its rating, nothing it lacks."""
    before = sql(admin.dsn, "SELECT * FROM myapi.movies WHERE movie_id = 1")[0]
    assert (before["title"], before["released"], before["votes"]) == ("$", 1971, 348)
    path = write(tmp_path / "rate.csv", "title,released,rating\n$,1971,7.1\n")
    result = admin("load-movies", str(path))
    assert result.returncode == 0, result.output
    assert movie_count(admin.dsn) == MOVIE_COUNT
    after = sql(admin.dsn, "SELECT * FROM myapi.movies WHERE movie_id = 1")[0]
    assert float(after["rating"]) == 7.1
    # The file has no votes column: the 348 votes must survive (length, budget,
    # mpaa and genres do, through COALESCE in update_unkeyed.sql).
    for column in ("votes", "length_minutes", "budget", "mpaa", "genres"):
        assert after[column] == before[column], column


def test_csv_mixing_rows_with_and_without_ids_loads(admin: Admin, tmp_path: Path) -> None:
    """A keyed row with the next free id and an unkeyed new row in one file."""
    next_id = MOVIE_COUNT + 1
    path = write(
        tmp_path / "mixed.csv",
        f"movie_id,title,released,rating\n{next_id},Keyed Film,2020,5.0\n,Unkeyed Film,2021,6.0\n",
    )
    before = movies_md5(admin.dsn)
    result = admin("load-movies", str(path))
    assert result.returncode == 0, result.output
    assert movie_count(admin.dsn) == MOVIE_COUNT + 2
    assert (
        value(admin.dsn, "SELECT title FROM myapi.movies WHERE movie_id = $1", next_id)
        == "Keyed Film"
    )
    assert movies_md5(admin.dsn) != before


def test_csv_with_a_byte_order_mark_loads(admin: Admin, tmp_path: Path) -> None:
    """Spreadsheets save "CSV UTF-8" with a BOM before the first header name."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftitle,released,rating\r\nSpreadsheet Film,2022,8.0\r\n")
    result = admin("load-movies", str(path))
    assert result.returncode == 0, result.output
    assert movie_count(admin.dsn) == MOVIE_COUNT + 1


# --- load-movies: files that must not load -------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A malformed file: the text before the offending record, the record, and after it."""

    before: str
    bad: str
    after: str = ""
    message: str = ""

    def content(self) -> bytes:
        return (self.before + self.bad + self.after).encode("utf-8", "surrogateescape")

    @property
    def line(self) -> int:
        # The physical line the offending record starts on, whatever spans lines before it.
        return self.before.count("\n") + 1


_PLAIN = "title,released,rating\n"
_OK = "First,2001,5.0\nSecond,2002,6.0\nThird,2003,7.0\n"
_IMDB_HEADER = (
    ",title,year,length,budget,rating,votes,r1,r2,r3,r4,r5,r6,r7,r8,r9,r10,mpaa,"
    "Action,Animation,Comedy,Drama,Documentary,Romance,Short\n"
)
_IMDB_ROW = '{id},"{title}",1999,90,NA,6.1,100,0,0,0,0,0,0,0,0,0,0,{mpaa},0,0,1,0,0,0,0\n'

BAD_FILES = {
    "rating-abc-on-line-5": Bad(_PLAIN + _OK, "Fourth,2004,abc\n", "Fifth,2005,5\n", "rating"),
    "too-many-fields": Bad(_PLAIN + "First,2001,5.0\n", "Second,2002,6.0,extra\n", _OK, "fields"),
    "too-few-fields": Bad(_PLAIN + _OK, "Fourth,2004\n", message="fields"),
    "year-1700": Bad(_PLAIN + "First,2001,5.0\nSecond,2002,6.0\n", "Old,1700,5.0\n", _OK, "1700"),
    "rating-above-10": Bad(_PLAIN, "Loud,2000,10.5\n", _OK, "rating"),
    "duplicate-id": Bad(
        "movie_id,title,released,rating\n1,A,2001,5\n2,B,2002,5\n", "1,C,2003,5\n", message="twice"
    ),
    "duplicate-title-and-year": Bad(_PLAIN + "Same,2001,5\n", "Same,2001,6\n", message="twice"),
    "after-multi-line-titles": Bad(
        _PLAIN + 'First,2001,5\n"Two\nline title",2002,6\n"Three\nline\ntitle",2003,7\n',
        "Bad,2004,abc\n",
        message="rating",
    ),
    "multi-line-record-itself": Bad(
        _PLAIN + "First,2001,5\n", '"Spans\ntwo lines",1700,5\n', _OK, "1700"
    ),
    "after-blank-lines": Bad(
        _PLAIN + "First,2001,5\n\n\nSecond,2002,6\n", "Bad,2003,x\n", message="rating"
    ),
    "crlf-line-ends": Bad(
        _PLAIN.replace("\n", "\r\n") + _OK.replace("\n", "\r\n"),
        "Bad,2004,abc\r\n",
        message="rating",
    ),
    "unterminated-quote": Bad(_PLAIN + _OK, '"Never closed,2004,5\nMore,2005,5\n', message=""),
    "imdb-format-unknown-mpaa": Bad(
        _IMDB_HEADER
        + "".join(_IMDB_ROW.format(id=i, title=f"Film {i}", mpaa="") for i in range(1, 11)),
        _IMDB_ROW.format(id=11, title="Rated X", mpaa="X"),
        message="mpaa",
    ),
    "invalid-utf8-far-down": Bad(
        _PLAIN + "".join(f"Film number {i},2000,5.0\n" for i in range(1000)),
        "Bad \udcff title,2001,5.0\n",
        _OK,
    ),
}


def _check_refused(admin: Admin, path: Path, bad: Bad) -> None:
    before = movies_md5(admin.dsn)
    result = admin("load-movies", str(path))
    line = assert_clean_failure(result, bad.message)
    assert f"line {bad.line}:" in line, f"expected line {bad.line}: {line}"
    assert "nothing was loaded" in line
    assert movie_count(admin.dsn) == MOVIE_COUNT
    assert movies_md5(admin.dsn) == before


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_malformed_file_names_its_line_and_writes_nothing(
    admin: Admin, tmp_path: Path, case: str
) -> None:
    bad = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_bytes(bad.content())
    _check_refused(admin, path, bad)


@pytest.mark.parametrize(
    "case", ["rating-abc-on-line-5", "after-multi-line-titles", "invalid-utf8-far-down"]
)
def test_malformed_gzip_file_names_its_line_and_writes_nothing(
    admin: Admin, tmp_path: Path, case: str
) -> None:
    bad = BAD_FILES[case]
    path = tmp_path / "bad.data"  # gzip is told by its first bytes, not the name
    path.write_bytes(gzip.compress(bad.content()))
    _check_refused(admin, path, bad)


def _valid_gzip() -> bytes:
    return gzip.compress((_PLAIN + "".join(f"Film {i},2000,5.0\n" for i in range(3000))).encode())


def test_truncated_gzip_is_refused(admin: Admin, tmp_path: Path) -> None:
    data = _valid_gzip()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    before = movies_md5(admin.dsn)
    assert_clean_failure(admin("load-movies", str(path)), "nothing was loaded")
    assert movies_md5(admin.dsn) == before


def test_corrupt_gzip_is_refused_without_a_traceback(admin: Admin, tmp_path: Path) -> None:
    data = bytearray(_valid_gzip())
    for index in range(30, 60):  # inside the deflate stream, past the 10-byte header
        data[index] ^= 0xFF
    path = tmp_path / "corrupt.csv.gz"
    path.write_bytes(bytes(data))
    before = movies_md5(admin.dsn)
    assert_clean_failure(admin("load-movies", str(path)), str(path))
    assert movies_md5(admin.dsn) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"title,released,rating\n", "no rows"),
        (b"name,year,score\nA,2001,5\n", "header lacks title"),
        (b"foo,bar,baz\n1,2,3\n", "title, released, rating"),
    ],
    ids=["empty-file", "header-only", "unknown-header-with-year", "unknown-header"],
)
def test_file_without_movies_is_refused(
    admin: Admin, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "movies.csv"
    path.write_bytes(content)
    before = movies_md5(admin.dsn)
    assert_clean_failure(admin("load-movies", str(path)), message, "nothing was loaded")
    assert movies_md5(admin.dsn) == before


def test_nonexistent_path_is_refused(admin: Admin, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.csv"
    assert_clean_failure(admin("load-movies", str(missing)), str(missing), "no such file")
    assert movie_count(admin.dsn) == MOVIE_COUNT


# --- a broken declaration ------------------------------------------------------------------


def _broken_project(tmp_path: Path) -> Path:
    """A copy of the project whose get_movie.sql uses a parameter nobody declared."""
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "data")
    for package in ("api", "queries"):
        shutil.copytree(ROOT / package, project / package, ignore=ignore)
    shutil.copy(ROOT / "schema.sql", project / "schema.sql")
    get_movie = project / "queries" / "sql" / "movies" / "get_movie.sql"
    get_movie.write_text(get_movie.read_text().rstrip().rstrip(";") + " AND votes > :min_votes;\n")
    return project


@pytest.mark.parametrize(
    "args",
    [
        ["init-db"],
        ["serve"],
        ["create-user", "--email", "a@example.com", "--name", "A", "--password", PASSWORD],
        ["load-movies", str(MOVIES_FILE)],
    ],
    ids=["init-db", "serve", "create-user", "load-movies"],
)
def test_a_broken_declaration_is_listed_not_a_traceback(
    admin: Admin, tmp_path: Path, args: list[str]
) -> None:
    project = _broken_project(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=admin.env() | {"PYTHONPATH": str(project)},
        cwd=admin.home,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    # The problem is named as `api-admin check` names it.
    assert done.stderr.splitlines() == [
        "error: the .sql files do not fit their declarations:",
        "queries/sql/movies/get_movie.sql: parameters used in the file but not declared: "
        ":min_votes",
    ]
    assert movie_count(admin.dsn) == MOVIE_COUNT


# --- psql ------------------------------------------------------------------------------------


def test_psql_runs_a_command_on_the_database(admin: Admin) -> None:
    result = admin("psql", "-X", "-A", "-t", "-c", "SELECT count(*) FROM myapi.movies")
    assert result.returncode == 0, result.output
    assert result.stdout == f"{MOVIE_COUNT}\n"


def test_psql_runs_a_project_file_with_its_parameters(admin: Admin) -> None:
    """The README's example: a .sql file run unchanged, its parameters given with -v."""
    released_since = ROOT / "queries" / "sql" / "movies" / "list_released_since.sql"
    result = admin(
        "psql", "-X", "-A", "-t", "-v", "year=2000", "-v", "min_rating=8", "-v", "lim=5",
        "-f", str(released_since),
    )  # fmt: skip
    assert result.returncode == 0, result.output
    rows = [line.split("|") for line in result.stdout.splitlines()]
    assert len(rows) == 5
    assert all(int(row[2]) >= 2000 and float(row[3]) >= 8 for row in rows)


def test_psql_reads_stdin_and_passes_its_exit_code_on(admin: Admin) -> None:
    ok = admin("psql", "-X", "-A", "-t", stdin="SELECT 40 + 2;\n")
    assert (ok.returncode, ok.stdout) == (0, "42\n"), ok.output
    # psql exits with 3 when a script fails under ON_ERROR_STOP: the code is psql's own.
    failed = admin(
        "psql", "-X", "-v", "ON_ERROR_STOP=1", stdin="SELECT 1;\nSELECT * FROM myapi.nope;\n"
    )
    assert failed.returncode == 3, failed.output
    assert 'relation "myapi.nope" does not exist' in failed.stderr


def test_psql_error_exits_non_zero(admin: Admin) -> None:
    result = admin("psql", "-X", "-c", "SELECT * FROM myapi.nope")
    assert result.returncode != 0
    assert 'relation "myapi.nope" does not exist' in result.stderr
    assert "Traceback" not in result.output


def test_psql_on_an_unreachable_database_is_psql_s_error(admin: Admin) -> None:
    result = admin("psql", "-X", "-c", "SELECT 1", dsn=CLOSED_PORT_DSN)
    assert result.returncode == 2, result.output  # psql: the connection failed
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://u:p%40ss@h:5432/d?sslmode=require",
            ("postgresql://u@h:5432/d?sslmode=require", {"PGPASSWORD": "p@ss"}),
        ),
        ("postgresql://u@h/d", ("postgresql://u@h/d", {})),
        (
            "postgresql://postgres@/myapi?host=/tmp/a%20b&port=5432",
            ("postgresql://postgres@/myapi?host=/tmp/a%20b&port=5432", {}),
        ),
        ("postgresql://:secret@h/d", ("postgresql://h/d", {"PGPASSWORD": "secret"})),
    ],
)
def test_psql_gets_the_password_from_the_environment(
    dsn: str, expected: tuple[str, dict[str, str]]
) -> None:
    """Not on its command line, which every local user can read."""
    assert _without_password(dsn) == expected


# --- the embedded database -------------------------------------------------------------------


def test_check_and_psql_leave_the_embedded_database_as_they_found_it(
    admin: Admin, tmp_path: Path
) -> None:
    env = {k: v for k, v in admin.env().items() if k not in ("DATABASE_URL", "JWT_SECRET")}
    env["API_DATA_DIR"] = str(tmp_path / "embedded")

    def run(*args: str) -> Result:
        done = subprocess.run(
            [ADMIN, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        return Result(done.returncode, done.stdout, done.stderr)

    # A new embedded database has no schema: one finding, and check does not create it.
    for _ in range(2):
        check = run("check", "--json")
        assert check.returncode == 1, check.output
        report = json.loads(check.stdout)
        assert [(f["file"], f["hint"]) for f in report["findings"]] == [
            ("schema.sql", "run `api-admin init-db`")
        ]
    psql = run(
        "psql", "-X", "-A", "-t", "-c", "SELECT current_database(), to_regnamespace('myapi')"
    )
    assert psql.returncode == 0, psql.output
    assert psql.stdout == "myapi|\n"


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.DuplicatePreparedStatementError('prepared statement "__asyncpg_stmt_1__" exists'),
        asyncpg.InvalidSQLStatementNameError('prepared statement "__asyncpg_stmt_2__" is gone'),
    ],
)
def test_a_statement_cache_behind_pgbouncer_is_named_in_one_line(error: Exception) -> None:
    """Seen through PgBouncer in transaction mode with asyncpg's cache on: the one line
    names the setting, also when the error comes wrapped (schema.sql's SchemaError)."""
    from api.backend.database import SchemaError
    from api.cli._base import _failure_message

    wrapped = SchemaError("schema.sql: " + str(error))
    wrapped.__cause__ = error
    for exc in (error, wrapped):
        message = _failure_message(exc, ())
        assert message is not None
        assert "API_STATEMENT_CACHE_SIZE=0" in message
        assert "\n" not in message
