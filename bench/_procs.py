"""The child processes of a benchmark run: commands, servers, their memory; all stopped for good.

Every child runs in a session of its own, so stopping one (and anything it spawned, such
as uvicorn's workers) never touches a process the harness did not start.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psutil

HOST = "127.0.0.1"
PROJECT = Path(__file__).resolve().parent.parent
# Settings the harness decides itself: whatever the caller's shell holds must not leak in.
_OWN = ("DATABASE_URL", "API_DATABASE_URL", "JWT_SECRET", "API_JWT_SECRET", "API_DATA_DIR")


class BenchError(RuntimeError):
    """A step of the run failed; the message says which and why."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def api_admin() -> list[str]:
    """The `api-admin` script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).with_name("api-admin")
    return [str(beside)] if beside.exists() else ["api-admin"]


def child_env(**settings: str) -> dict[str, str]:
    """The caller's environment without the harness's own settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in _OWN}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
    return env | settings


def run_command(argv: Sequence[str], env: dict[str, str], cwd: Path, timeout: float) -> float:
    """Run a command to completion; the seconds it took. `BenchError` with its output on failure."""
    started = time.perf_counter()
    try:
        done = subprocess.run(  # noqa: S603 - our own commands, no shell
            list(argv), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`{' '.join(argv[:3])}` took more than {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(argv[:3])}` failed: {(done.stderr or done.stdout)[-2000:]}")
    return time.perf_counter() - started


def http_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """The status of GET `path`, or None when nothing answers."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class Server:
    """A server process on a loopback port, its log in a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        env: dict[str, str],
        workdir: Path,
        workers: int = 1,
    ) -> None:
        self.name = name
        self.port = port
        self._workers = workers
        self._argv = list(argv)
        self._env = env
        self._workdir = workdir
        self._log = workdir / f"{name.replace(' ', '-')}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawned = 0.0

    def start(self) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our own commands, no shell
                self._argv,
                env=self._env,
                cwd=self._workdir,  # not the project: a .env there must not configure it
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._spawned = time.perf_counter()

    def wait_healthy(self, path: str = "/health", timeout: float = 120.0) -> float:
        """Seconds from spawn to the first 200 from `path`."""
        deadline = self._spawned + timeout
        while time.perf_counter() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise BenchError(f"{self.name} exited while starting:\n{self.log_tail()}")
            if http_status(self.port, path, timeout=1.0) == 200:
                return time.perf_counter() - self._spawned
            time.sleep(0.02)
        raise BenchError(
            f"{self.name} gave no 200 on {path} in {timeout:.0f} s:\n{self.log_tail()}"
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def workers(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn's workers, or the server itself."""
        if self._proc is None or self._proc.poll() is not None:
            return []
        try:
            main = psutil.Process(self._proc.pid)
            spawned = [
                child
                for child in main.children(recursive=True)
                if "spawn_main" in " ".join(child.cmdline())
            ]
        except psutil.Error:
            return []
        # With one worker uvicorn serves in the main process; with more, only in the
        # spawned ones (the main process supervises them).
        return spawned if self._workers > 1 else [main]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL for the whole session if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        # The session is the child's own (start_new_session): its id is the child's pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self._log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class MemorySampler:
    """Samples the resident memory of servers' worker processes; keeps each one's peak."""

    def __init__(self, interval: float = 0.2) -> None:
        self._interval = interval
        self._servers: list[Server] = []
        self._peaks: dict[str, dict[int, int]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def watch(self, server: Server) -> None:
        with self._lock:
            self._servers.append(server)
            self._peaks.setdefault(server.name, {})

    def peaks_mb(self, name: str) -> list[float]:
        """Peak RSS of each worker process the server has had, in MB."""
        with self._lock:
            return [rss / 2**20 for _, rss in sorted(self._peaks.get(name, {}).items())]

    def sample(self) -> None:
        with self._lock:
            servers = list(self._servers)
        for server in servers:
            for proc in server.workers():
                with contextlib.suppress(psutil.Error):
                    rss = proc.memory_info().rss
                    with self._lock:
                        peaks = self._peaks[server.name]
                        peaks[proc.pid] = max(peaks.get(proc.pid, 0), rss)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.sample()

    @contextlib.contextmanager
    def running(self) -> Iterator[MemorySampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stopped.set()
            self._thread.join(5)
