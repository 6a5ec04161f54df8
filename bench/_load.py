"""What a load is, what a run of it measured, and running one or several at once.

A load generator (wrk, or the Python client in bench/loadgen.py) is a separate process:
it does not share the harness's interpreter, and two loads can run side by side.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from bench._procs import HOST, BenchError

# How long a request may take before it counts as a timeout error.
REQUEST_TIMEOUT = 5.0


@dataclass(frozen=True)
class Load:
    """Requests to send, in turn: one per path, rotating; the same headers and body for each."""

    method: str
    paths: tuple[str, ...]
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Load:
        data = json.loads(text)
        return cls(data["method"], tuple(data["paths"]), data["headers"], data["body"])


@dataclass(frozen=True)
class Sample:
    """One run of a load: throughput, latency percentiles and failures."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


@dataclass(frozen=True)
class Summary:
    """The median of several runs' figures; errors are summed."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    runs: tuple[Sample, ...]

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> Summary:
        return cls(
            rps=statistics.median(s.rps for s in samples),
            p50_ms=statistics.median(s.p50_ms for s in samples),
            p99_ms=statistics.median(s.p99_ms for s in samples),
            errors=sum(s.errors for s in samples),
            runs=tuple(samples),
        )


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Generator(Protocol):
    name: str

    def command(
        self, load: Load, port: int, connections: int, seconds: float, workdir: Path
    ) -> list[str]: ...

    def parse(self, output: str) -> Sample: ...


class PythonGenerator:
    """The asyncio client in bench/loadgen.py, for machines without wrk."""

    name = "python"

    def command(
        self, load: Load, port: int, connections: int, seconds: float, workdir: Path
    ) -> list[str]:
        spec = workdir / f"load-{abs(hash(load.to_json()))}.json"
        spec.write_text(load.to_json())
        return [
            sys.executable,
            "-m",
            "bench.loadgen",
            str(spec),
            f"--url=http://{HOST}:{port}",
            f"--connections={connections}",
            f"--duration={seconds}",
            f"--timeout={REQUEST_TIMEOUT}",
        ]

    def parse(self, output: str) -> Sample:
        for line in output.splitlines():
            if line.startswith("{"):
                data = json.loads(line)
                return Sample(**data)
        raise BenchError(f"bench.loadgen printed no result: {output[-500:]}")


def run_loads(
    generator: Generator,
    jobs: Sequence[tuple[Load, int, int]],
    seconds: float,
    workdir: Path,
    env: dict[str, str],
) -> list[Sample]:
    """Run (load, port, connections) jobs at the same time for `seconds`; a sample each."""
    procs = []
    try:
        for load, port, connections in jobs:
            argv = generator.command(load, port, connections, seconds, workdir)
            procs.append(
                subprocess.Popen(  # noqa: S603 - our own commands, no shell
                    argv, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        samples = []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + REQUEST_TIMEOUT + 30)
            if proc.returncode != 0:
                raise BenchError(f"{generator.name} failed: {err.decode(errors='replace')[-800:]}")
            samples.append(generator.parse(out.decode(errors="replace")))
        return samples
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{generator.name} did not finish in time") from exc
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def pick_generator(*, install: bool, force_python: bool) -> Generator:
    """wrk when installed (or installable with `install`), else the Python client."""
    from bench import _wrk

    if force_python:
        return PythonGenerator()
    if shutil.which("wrk") is None and install:
        _wrk.install()
    if shutil.which("wrk") is not None:
        return _wrk.WrkGenerator()
    return PythonGenerator()
