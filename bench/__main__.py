"""`python -m bench`: the service against its ceilings, in one run (issue 5's harness).

Starts, on loopback only, an embedded PostgreSQL (or uses --dsn) with the real movies, our
service (`api-admin serve`), a second instance with more workers, and two reference servers
(a constant JSON, one movie by id through bare asyncpg); drives each with wrk (or a Python
client) at several connection counts; measures logins against bcrypt's limit, cold start,
bulk loads, keyset pages at scale and memory. Prints a table, writes a JSON file, and stops
everything it started. `python -m bench --compare A.json B.json` shows what changed.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from bench import _report, _targets
from bench._load import pick_generator
from bench._procs import PROJECT, BenchError
from bench._run import Harness, Options, cores

MAX_CONNECTIONS = 10_000


def _connections(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or min(counts) < 1 or max(counts) > MAX_CONNECTIONS:
        raise argparse.ArgumentTypeError(f"connection counts must be 1 to {MAX_CONNECTIONS:,}")
    return counts


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:,} to {high:,}, got {value:,}")
        return value

    return parse


def _seconds(low: float, *, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            bound = f"{low:g} or more" if inclusive else f"more than {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound} seconds, got {text!r}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--connections",
        type=_connections,
        default=(1, 32, 64),
        metavar="N,N,...",
        help="connection counts for every endpoint (default: 1,32,64)",
    )
    add(
        "--duration",
        type=_seconds(0, inclusive=False),
        default=10.0,
        metavar="S",
        help="seconds per measurement (default: 10)",
    )
    add(
        "--warmup",
        type=_seconds(0, inclusive=True),
        default=3.0,
        metavar="S",
        help="seconds of warm-up per endpoint and connection count (default: 3)",
    )
    add(
        "--repeat",
        type=_count(1, 100),
        default=3,
        metavar="N",
        help="repetitions per measurement; the median is reported (default: 3)",
    )
    add(
        "--quick",
        action="store_true",
        help="a smoke run: 3 s per measurement, 1 s warm-up, 1 repetition",
    )
    add(
        "--workers",
        type=_count(1, 64),
        default=1,
        metavar="N",
        help="worker processes of our service (default: 1)",
    )
    add(
        "--scale-workers",
        type=_count(1, 64),
        default=2,
        metavar="N",
        help="workers of the second instance compared with the first (default: 2)",
    )
    add(
        "--login-connections",
        type=_count(1, 1_000),
        default=4,
        metavar="N",
        help="connections sending POST /token (default: 4)",
    )
    add(
        "--mixed-connections",
        type=_count(1, MAX_CONNECTIONS),
        default=32,
        metavar="N",
        help="connections of GET /movies/{id} while logins run (default: 32)",
    )
    add(
        "--rows",
        type=_count(0, 100_000_000),
        default=0,
        metavar="N",
        help="also load N generated movies (e.g. 1000000) and time keyset pages over them; "
        "this replaces the movies of the database",
    )
    add(
        "--dsn",
        metavar="URL",
        help="a scratch PostgreSQL to use instead of a throw-away embedded one (its myapi "
        "schema is applied, its movies replaced, a user added)",
    )
    add(
        "--via",
        metavar="URL",
        help="the servers measured reach the database through this URL instead, e.g. a "
        "PgBouncer in transaction mode in front of --dsn (their statement caches and "
        "token notifications are then off); set-up still uses --dsn",
    )
    add(
        "--no-cold-start",
        dest="cold_start",
        action="store_false",
        help="skip the cold start and warm restart of `api-admin serve`",
    )
    add(
        "--install-wrk",
        action="store_true",
        help="install wrk with apt-get (as root) when it is missing; without wrk a Python "
        "asyncio client generates the load",
    )
    add(
        "--python-client",
        action="store_true",
        help="use the Python client even when wrk is installed",
    )
    add(
        "--json",
        type=Path,
        metavar="PATH",
        help="where to write the results (default: bench/results/<timestamp>.json)",
    )
    add(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("A.json", "B.json"),
        help="print the differences between two result files, and run nothing",
    )
    return parser


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + ("+changes" if dirty else "")


def _terminate(signum: int, _frame: object) -> NoReturn:
    # SystemExit unwinds the run: every server stopped, every directory removed.
    raise SystemExit(128 + signum)


def main() -> None:
    options = _parser().parse_args()
    if options.compare:
        try:
            print(_report.compare(*options.compare))
        except (OSError, ValueError, KeyError) as exc:
            sys.exit(f"error: cannot compare {options.compare[0]} and {options.compare[1]}: {exc}")
        return
    if options.via and not options.dsn:
        sys.exit("error: --via needs --dsn: the PostgreSQL behind it, for the set-up")
    if options.quick:
        options.duration, options.warmup, options.repeat = 3.0, 1.0, 1
    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.now(UTC)
    generator = pick_generator(install=options.install_wrk, force_python=options.python_client)
    run = Options(
        connections=options.connections,
        duration=options.duration,
        warmup=options.warmup,
        repeat=max(1, options.repeat),
        workers=options.workers,
        scale_workers=options.scale_workers,
        login_connections=options.login_connections,
        mixed_connections=options.mixed_connections,
        rows=options.rows,
        dsn=options.dsn,
        via=options.via,
        cold_start=options.cold_start,
    )
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "commit": _commit(),
        "cores": cores(),
        "generator": generator.name,
        "through": "--via" if options.via else "direct",
    } | {k: v for k, v in vars(run).items() if k not in ("dsn", "via")}
    report = _report.Report(meta)
    clock = time.perf_counter()
    failed = None
    try:
        Harness(run, generator, report).run()
    except BenchError as exc:
        failed = f"the run stopped early: {exc}"
        report.notes.append(failed.splitlines()[0])
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
    report.meta["seconds"] = round(time.perf_counter() - clock)
    at = _targets.TARGET_CONNECTIONS
    _targets.evaluate(
        report,
        connections=at if at in run.connections else max(run.connections),
        workers=run.workers,
        scale_workers=run.scale_workers,
    )
    print(_report.render(report))
    path = options.json or PROJECT / "bench/results" / f"{started:%Y%m%d-%H%M%S}.json"
    _report.write_json(report, path)
    print(f"\nresults: {path}")
    if failed:
        print(f"error: {failed}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
