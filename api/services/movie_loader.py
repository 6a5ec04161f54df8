"""Bulk loading of movies from CSV: the IMDb file (ggplot2movies) or a plain title/year/rating CSV.

The whole file is parsed and checked first, so a malformed row stops the load with its
line number before anything is written; then COPY fills a staging table and the rows are
moved into myapi.movies in the same transaction. Loading a file twice changes nothing.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import IO, Any, TextIO

import asyncpg

import queries.admin
import queries.movies as q

GENRES = ("Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short")
MPAA = frozenset({"G", "PG", "PG-13", "R", "NC-17"})
MISSING = frozenset({"", "NA"})
MAX_TITLE = 1000
COPY_CHUNK = 10_000

# Header name in a file -> staging column. "" is the IMDb file's unnamed row number.
_ALIASES = {
    "": "movie_id",
    "movie_id": "movie_id",
    "id": "movie_id",
    "title": "title",
    "year": "released",
    "released": "released",
    "rating": "rating",
    "votes": "votes",
    "length": "length_minutes",
    "length_minutes": "length_minutes",
    "budget": "budget",
    "mpaa": "mpaa",
}
_REQUIRED = ("title", "released", "rating")
_SURROGATE = re.compile("[\udc80-\udcff]")
# ASCII digits only: Python's int() would also take "1_999" and "١٩٩٩".
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")

Row = tuple[Any, ...]
Progress = Callable[[int], None]


class MalformedFile(ValueError):
    """The file cannot be loaded; `line` is the 1-based physical line, when known."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass(frozen=True, slots=True)
class LoadResult:
    rows: int  # data rows in the file
    added: int  # movies that were not there before
    changed: int  # movies that were there and now differ
    total: int  # movies in the database afterwards


def bundled_movies() -> Path:
    """The IMDb movies file shipped inside the package."""
    return Path(str(resources.files("api") / "data" / "imdb-movies.csv.gz"))


@contextmanager
def open_csv(path: Path) -> Iterator[TextIO]:
    """A text handle on a CSV file, gzip'd or not (told by its first bytes, not its name)."""
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        binary: IO[bytes] = gzip.GzipFile(fileobj=raw) if gzipped else raw  # type: ignore[assignment]
        # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte order mark.
        # surrogateescape: a bad byte is reported on its own line by _records, not
        # at the start of whichever 8 kB chunk the decoder was reading.
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        with binary, text:
            yield text


def parse_movies(handle: TextIO) -> list[Row]:
    """Every data row as a staging tuple (see queries.movies.STAGING_COLUMNS)."""
    reader = csv.reader(handle, strict=True)
    records = _records(reader)
    first = next(records, None)
    if first is None:
        raise MalformedFile("the file is empty", line=1)
    header = first[1]
    columns = _map_header(header)
    rows: list[Row] = []
    seen: set[Any] = set()
    for start, fields in records:
        if len(fields) != len(header):
            raise MalformedFile(f"expected {len(header)} fields, found {len(fields)}", line=start)
        try:
            row = _row(start, columns, fields)
        except ValueError as exc:
            raise MalformedFile(str(exc), line=start) from exc
        key = row[1] if row[1] is not None else (row[2], row[3])
        if key in seen:
            what = f"movie id {row[1]}" if row[1] is not None else f"{row[2]!r} ({row[3]})"
            raise MalformedFile(f"{what} appears twice in the file", line=start)
        seen.add(key)
        rows.append(row)
    if not rows:
        raise MalformedFile("the file has a header but no rows")
    return rows


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Non-empty records with the physical line each starts on (quoted fields may span lines)."""
    while True:
        start = reader.line_num + 1
        try:
            fields: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise MalformedFile(f"not valid CSV: {exc}", line=start) from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise MalformedFile(f"the file is damaged: {exc}", line=start) from exc
        if any(_SURROGATE.search(field) for field in fields):
            raise MalformedFile("not valid UTF-8 text", line=start)
        if fields:
            yield start, fields


def _map_header(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        stripped = name.strip()
        target = _ALIASES.get(stripped.lower()) or (stripped if stripped in GENRES else None)
        if target is not None:
            if target in columns:
                raise MalformedFile(f"column {target!r} appears twice in the header", line=1)
            columns[target] = index
    if missing := [c for c in _REQUIRED if c not in columns]:
        raise MalformedFile(
            "the header lacks "
            + ", ".join(missing)
            + " (expected the IMDb movies file or a CSV with title, released, rating)",
            line=1,
        )
    return columns


def _row(line: int, columns: dict[str, int], fields: list[str]) -> Row:
    def get(name: str) -> str:
        return fields[columns[name]].strip() if name in columns else ""

    title = fields[columns["title"]]
    if not title.strip() or len(title) > MAX_TITLE or "\x00" in title:
        raise ValueError(f"title must be 1 to {MAX_TITLE} characters, got {title[:40]!r}")
    genres = [g for g in GENRES if g in columns and _flag(g, get(g))]
    return (
        line,
        _int("movie_id", get("movie_id"), low=1, optional=True),
        title,
        _int("released", get("released"), low=1870, high=2100),
        _rating(get("rating")),
        _int("votes", get("votes"), low=0, optional=True),
        _int("length", get("length_minutes"), low=1, optional=True),
        _int("budget", get("budget"), low=0, high=2**63 - 1, optional=True),
        _mpaa(get("mpaa")),
        genres,
    )


def _int(
    name: str, text: str, *, low: int, high: int = 2**31 - 1, optional: bool = False
) -> int | None:
    if text in MISSING and optional:
        return None
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{name} must be a whole number, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _rating(text: str) -> Decimal:
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"rating must be a number, got {text[:40]!r}")
    value = Decimal(text)
    if not 0 <= value <= 10 or value != value.quantize(Decimal("0.1")):
        raise ValueError(f"rating must be 0 to 10 with at most one decimal, got {text!r}")
    return value


def _mpaa(text: str) -> str | None:
    if text in MISSING:
        return None
    if text not in MPAA:
        raise ValueError(f"mpaa must be one of {', '.join(sorted(MPAA))} or empty, got {text!r}")
    return text


def _flag(name: str, text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"{name} must be 0 or 1, got {text[:40]!r}")
    return text == "1"


def _chunks(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def load_movies(
    conn: asyncpg.Connection, rows: list[Row], *, progress: Progress | None = None
) -> LoadResult:
    """Write parsed rows in one transaction: all of them or, on any error, none."""
    written = 0
    async with conn.transaction():
        # Loads run one at a time: two concurrent loads of a file without ids would
        # each see the other's rows as new and insert them twice.
        await queries.admin.lock(conn, name="myapi.load")
        before = await q.count_movies(conn)
        await q.create_staging(conn)
        for chunk in _chunks(rows, COPY_CHUNK):
            await conn.copy_records_to_table(
                q.STAGING_TABLE, records=chunk, columns=q.STAGING_COLUMNS
            )
            if progress is not None:
                progress(len(chunk))
        written += _affected(await q.upsert_staged(conn))
        # Explicit ids may have passed the id generator; move it on before new rows.
        await q.sync_movie_id_sequence(conn)
        written += _affected(await q.update_unkeyed(conn))
        written += _affected(await q.insert_unkeyed(conn))
        total = await q.count_movies(conn)
    added = total - before
    return LoadResult(rows=len(rows), added=added, changed=written - added, total=total)


def _affected(status: str) -> int:
    # "INSERT 0 12" / "UPDATE 3": the last word is the row count.
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
