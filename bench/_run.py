"""One benchmark run, phase by phase: start-up times, the database, the servers, the loads
(interleaved, so each ratio compares figures taken under the same conditions), logins, scale.
Everything it starts is stopped and every temporary directory removed, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from api.backend.config import Settings
from bench import _scale, _setup
from bench._load import Generator, Load, Sample, Summary, run_loads
from bench._procs import BenchError, MemorySampler, Server, api_admin, child_env, free_port
from bench._report import CONSTANT, DB_CEILING, PAGE_REFERENCE, Line, Report


@dataclass(frozen=True)
class Options:
    connections: tuple[int, ...]
    duration: float
    warmup: float
    repeat: int
    workers: int
    scale_workers: int
    login_connections: int
    mixed_connections: int
    rows: int
    dsn: str | None
    via: str | None
    cold_start: bool


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    server: Server
    load: Load


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _setting(name: str) -> int:
    """A numeric setting as our service reads it: the environment, else its default."""
    value = os.environ.get(f"API_{name.upper()}")
    default = Settings.model_fields[name].default
    return int(value) if value else int(default)


class Harness:
    def __init__(self, options: Options, generator: Generator, report: Report) -> None:
        self.options = options
        self.generator = generator
        self.report = report
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.sampler = MemorySampler()
        self._stack = contextlib.ExitStack()

    def run(self) -> None:
        try:
            with self._stack:
                self._stack.enter_context(self.sampler.running())
                self._run()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _run(self) -> None:
        o, r = self.options, self.report
        if o.cold_start:
            _log("cold start and warm restart of `api-admin serve` on a fresh data directory ...")
            cold, warm = _setup.cold_and_warm_start(self.workdir, timeout=180)
            r.figure("cold_start_s", cold, "s", "cold start to first /health 200 (real data)")
            r.figure("warm_restart_s", warm, "s", "warm restart to first /health 200")
        dsn = o.dsn or self._stack.enter_context(_setup.embedded_postgres(self.workdir))
        secret = secrets.token_urlsafe(48)
        # One token serves the whole run, however long it is told to take.
        day = str(24 * 60)
        self.env = child_env(
            DATABASE_URL=dsn, JWT_SECRET=secret, API_ACCESS_TOKEN_EXPIRE_MINUTES=day
        )
        _log("init-db, load-movies (the real file), create-user ...")
        seconds = _setup.load_real_movies(dsn, self.env, self.workdir)
        r.figure("load_real_s", seconds, "s", f"load-movies, real file ({_setup.REAL_ROWS:,} rows)")
        r.figure("load_real_rows_per_s", _setup.REAL_ROWS / seconds, "rows/s", "  the same, rate")
        email, password = _setup.create_account(self.env, self.workdir)
        served = dsn
        if o.via:
            # The servers measured talk to the database through `via` (e.g. PgBouncer in
            # transaction mode), with what that needs (README, Scaling out); the set-up
            # above and below talks to it directly.
            served = o.via
            self.env = self.env | {
                "DATABASE_URL": o.via,
                "API_STATEMENT_CACHE_SIZE": "0",
                "API_TOKEN_NOTIFICATIONS": "false",
            }
        ours = self._serve("ours", o.workers)
        scaled = self._serve("ours-scaled", o.scale_workers)
        constant = self._reference("constant", "bench.reference:constant_app", served)
        db_ref = self._reference(
            "db-ceiling", "bench.reference:create_db_app", served, factory=True
        )
        for server in (ours, scaled):
            server.wait_healthy(timeout=120)
        constant.wait_healthy("/", timeout=60)
        db_ref.wait_healthy(timeout=60)
        token = _setup.get_token(ours.port, email, password)
        ids = asyncio.run(_setup.movie_ids(dsn))
        movie = Load(
            "GET", tuple(f"/movies/{i}" for i in ids), {"Authorization": f"Bearer {token}"}
        )
        cases = self._cases(ours, scaled, constant, db_ref, movie)
        self._http(cases)
        self._logins(ours, movie, _setup.login_body(email, password))
        self._memory(ours, scaled)
        if o.rows:
            self._scale(dsn, ours, token, secret)

    def _serve(self, name: str, workers: int) -> Server:
        port = free_port()
        argv = [*api_admin(), "serve", f"--port={port}", f"--workers={workers}", "--no-access-log"]
        server = Server(name, argv, port=port, env=self.env, workdir=self.workdir, workers=workers)
        self._start(server)
        self.sampler.watch(server)
        return server

    def _reference(self, name: str, app: str, dsn: str, *, factory: bool = False) -> Server:
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", app, *(["--factory"] if factory else [])]
        argv += ["--host=127.0.0.1", f"--port={port}", "--workers=1", "--loop=uvloop"]
        argv += ["--http=httptools", "--no-access-log", "--log-level=warning"]
        env = self.env | {
            "BENCH_DSN": dsn,
            "BENCH_POOL_MIN_SIZE": str(_setting("pool_min_size")),
            "BENCH_POOL_MAX_SIZE": str(_setting("pool_max_size")),
            "BENCH_STATEMENT_CACHE_SIZE": self.env.get(
                "API_STATEMENT_CACHE_SIZE", str(_setting("statement_cache_size"))
            ),
        }
        server = Server(name, argv, port=port, env=env, workdir=self.workdir)
        self._start(server)
        return server

    def _start(self, server: Server) -> None:
        self._stack.callback(server.stop)
        server.start()

    def _cases(
        self, ours: Server, scaled: Server, constant: Server, db_ref: Server, movie: Load
    ) -> list[Case]:
        auth = movie.headers

        def get(path: str) -> Load:
            return Load("GET", (path,), auth)

        listing = "/movies?limit=20&min_rating=7&sort=-rating"
        top = "/movies/top?min_votes=1000&limit=20"
        since = "/movies/released-since?year=2000&min_rating=7&limit=20"
        ceiling = Load("GET", movie.paths)
        page = Load("GET", ("/page?limit=20&min_rating=7",))
        w = self.options.scale_workers
        return [
            Case(CONSTANT, "ceiling: constant JSON", constant, Load("GET", ("/",))),
            Case(DB_CEILING, "ceiling: movie by id (bare asyncpg)", db_ref, ceiling),
            Case(PAGE_REFERENCE, "reference: the page, bare asyncpg", db_ref, page),
            Case("movie", "GET /movies/{id}", ours, movie),
            Case("list", "GET /movies (20, filter, sort)", ours, get(listing)),
            Case("top", "GET /movies/top", ours, get(top)),
            Case("since", "GET /movies/released-since", ours, get(since)),
            Case("health", "GET /health", ours, Load("GET", ("/health",))),
            Case("movie_scaled", f"GET /movies/{{id}}, {w} workers", scaled, movie),
        ]

    def _loads(self, jobs: Sequence[tuple[Load, Server, int]], seconds: float) -> list[Sample]:
        specs = [(load, server.port, connections) for load, server, connections in jobs]
        return run_loads(self.generator, specs, seconds, self.workdir, self.env)

    def _http(self, cases: list[Case]) -> None:
        o = self.options
        for connections in o.connections:
            samples: dict[str, list[Sample]] = defaultdict(list)
            if o.warmup > 0:
                _log(f"{connections} connections: warming up ...")
                for case in cases:
                    self._loads([(case.load, case.server, connections)], o.warmup)
            for rep in range(o.repeat):
                for case in cases:
                    sample = self._loads([(case.load, case.server, connections)], o.duration)[0]
                    samples[case.key].append(sample)
                    _log(
                        f"  {connections:>3} conns, run {rep + 1}/{o.repeat}: {case.label:<40}"
                        f"{sample.rps:>9.0f} req/s  p99 {sample.p99_ms:.1f} ms"
                        + (f"  {sample.errors} errors" if sample.errors else "")
                    )
            for case in cases:
                line = Line(case.key, case.label, connections, Summary.of(samples[case.key]))
                self.report.lines.append(line)

    def _repeat(self, work: Callable[[], list[Sample]]) -> list[list[Sample]]:
        return [work() for _ in range(self.options.repeat)]

    def _logins(self, ours: Server, movie: Load, body: str) -> None:
        o, r = self.options, self.report
        rounds = _setting("bcrypt_rounds")
        per_hash = _setup.seconds_per_hash(rounds)
        limit = cores() / per_hash
        r.figure("bcrypt_s_per_hash", per_hash, "s", f"bcrypt, one hash at cost {rounds}")
        r.figure("bcrypt_limit_per_s", limit, "logins/s", f"bcrypt limit ({cores()} cores / hash)")
        threads = int(os.environ.get("API_BCRYPT_CONCURRENCY") or cores())
        parallel = _setup.hashes_per_second(rounds, threads)
        label = f"bcrypt on {threads} threads at once, alone"
        r.figure("bcrypt_parallel_per_s", parallel, "logins/s", label)
        login = Load(
            "POST", ("/token",), {"Content-Type": "application/x-www-form-urlencoded"}, body
        )
        _log(f"POST /token at {o.login_connections} connections, cost {rounds} ...")
        if o.warmup > 0:
            self._loads([(login, ours, o.login_connections)], o.warmup)
        runs = self._repeat(lambda: self._loads([(login, ours, o.login_connections)], o.duration))
        logins = Summary.of([run[0] for run in runs])
        self.report.lines.append(Line("login", "POST /token", o.login_connections, logins))
        r.figure("login_per_s", logins.rps, "logins/s", "POST /token throughput")
        r.figure("login_vs_limit", logins.rps / limit, "x", "  the same / bcrypt limit")
        r.figure("login_vs_parallel", logins.rps / parallel, "x", "  the same / bcrypt alone")
        _log(f"GET /movies/{{id}} at {o.mixed_connections} connections, quiet and under logins ...")
        quiet, loaded = [], []
        for _ in range(o.repeat):
            quiet.append(self._loads([(movie, ours, o.mixed_connections)], o.duration)[0])
            jobs = [(movie, ours, o.mixed_connections), (login, ours, o.login_connections)]
            loaded.append(self._loads(jobs, o.duration)[0])
        calm, busy = Summary.of(quiet), Summary.of(loaded)
        for key, label, summary in (
            ("quiet", "quiet", calm),
            ("under_logins", "under logins", busy),
        ):
            line = Line(
                f"movie_{key}", f"GET /movies/{{id}}, {label}", o.mixed_connections, summary
            )
            self.report.lines.append(line)
        r.figure("movie_p99_quiet_ms", calm.p99_ms, "ms", "GET /movies/{id} p99, quiet")
        r.figure("movie_p99_logins_ms", busy.p99_ms, "ms", "GET /movies/{id} p99, under logins")
        slower = busy.p99_ms / calm.p99_ms if calm.p99_ms and busy.rps else None
        r.figure("movie_p99_logins_x", slower, "x", "  under logins / quiet")

    def _memory(self, ours: Server, scaled: Server) -> None:
        self.sampler.sample()
        for name, server, workers in (
            ("rss_mb", ours, self.options.workers),
            ("rss_scaled_mb", scaled, self.options.scale_workers),
        ):
            peaks = self.sampler.peaks_mb(server.name)
            label = f"peak RSS per worker, {workers} worker(s): max of {len(peaks)}"
            self.report.figure(name, max(peaks) if peaks else None, "MB", label)

    def _scale(self, dsn: str, ours: Server, token: str, secret: str) -> None:
        o, r = self.options, self.report
        _log(f"--rows {o.rows:,}: generate, load-movies, keyset pages ...")
        result = asyncio.run(_scale.prepare_rows(dsn, o.rows, self.env, self.workdir))
        r.figure("rows_generate_s", result.generate_seconds, "s", f"generate {o.rows:,} rows + CSV")
        r.figure("rows_load_s", result.load_seconds, "s", f"load-movies, {o.rows:,}-row CSV")
        r.figure("rows_load_per_s", result.load_rows_per_second, "rows/s", "  the same, rate")
        if result.load_error:
            r.notes.append(f"load-movies of {o.rows:,} rows failed: {result.load_error}")
        key = _scale.service_cursor_key(secret, dsn)
        try:
            asyncio.run(
                _scale.keyset_pages(
                    result, dsn=dsn, port=ours.port, token=token, key=key, repeat=20
                )
            )
        except BenchError as exc:
            r.notes.append(f"keyset pages: {exc}")
        for sort, (first, last) in result.pages.items():
            r.figure(f"keyset_first_ms[{sort}]", first, "ms", f"keyset first page, sort={sort}")
            r.figure(f"keyset_last_ms[{sort}]", last, "ms", f"keyset last page, sort={sort}")
