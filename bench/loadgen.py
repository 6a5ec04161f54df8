"""A small HTTP/1.1 load generator: keep-alive raw-socket connections, one request in flight each.

Used by `python -m bench` when wrk is not installed; prints one JSON line with the
same figures the wrk script reports. `python -m bench.loadgen SPEC.json --url ... ` where
SPEC.json holds a bench._load.Load. An HTTP client library would saturate before the server.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import uvloop

from bench._load import Load, Sample, percentile


def encode_requests(load: Load, host: str) -> list[bytes]:
    """Every request of the rotation, ready to write to a socket."""
    body = load.body.encode()
    headers = {"Host": host, **load.headers}
    if body:
        headers["Content-Length"] = str(len(body))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return [f"{load.method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body for path in load.paths]


class _Run:
    """Shared state of one run: the rotation, the clock, the results."""

    def __init__(self, requests: list[bytes], deadline: float) -> None:
        self.requests = requests
        self.deadline = deadline
        self.next = 0
        self.latencies: list[float] = []
        self.non_2xx = 0
        self.socket_errors = 0

    def take(self) -> bytes:
        request = self.requests[self.next]
        self.next = (self.next + 1) % len(self.requests)
        return request


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send, read one response (Content-Length framed), repeat."""

    def __init__(self, run: _Run, closed: asyncio.Future[None]) -> None:
        self._run = run
        self._closed = closed
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._needed: int | None = None
        self._status = 0
        self.sent_at: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self._transport is not None  # noqa: S101 - set in connection_made
        if time.perf_counter() >= self._run.deadline:
            self.sent_at = None
            self._transport.close()
            return
        self.sent_at = time.perf_counter()
        self._transport.write(self._run.take())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self.sent_at is not None:
            if self._needed is None and not self._parse_head():
                return
            assert self._needed is not None  # noqa: S101 - set by _parse_head
            if len(self._buffer) < self._needed:
                return
            self._buffer = self._buffer[self._needed :]
            self._needed = None
            self._run.latencies.append(time.perf_counter() - self.sent_at)
            if not 200 <= self._status < 300:
                self._run.non_2xx += 1
            self._send()

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self._buffer[:end].lower()
        self._status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        self._needed = end + 4 + length
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sent_at is not None:  # the server closed with a request in flight
            self._run.socket_errors += 1
        if not self._closed.done():
            self._closed.set_result(None)


async def _connection(run: _Run, host: str, port: int, grace: float) -> None:
    """Keep one connection busy until the deadline, reconnecting if the server closes it."""
    loop = asyncio.get_running_loop()
    while time.perf_counter() < run.deadline:
        closed: asyncio.Future[None] = loop.create_future()
        try:
            transport, _ = await loop.create_connection(
                functools.partial(_Connection, run, closed), host, port
            )
        except OSError:
            run.socket_errors += 1
            await asyncio.sleep(0.05)
            continue
        remaining = run.deadline - time.perf_counter() + grace
        try:
            await asyncio.wait_for(asyncio.shield(closed), max(remaining, 0.01))
        except TimeoutError:
            run.socket_errors += 1  # a request outlived the timeout
            transport.abort()
            return


async def drive(load: Load, url: str, connections: int, seconds: float, grace: float) -> Sample:
    """Run the load; a request still unanswered `grace` seconds after the end is an error."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    started = time.perf_counter()
    run = _Run(encode_requests(load, f"{host}:{port}"), started + seconds)
    await asyncio.gather(*(_connection(run, host, port, grace) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies = sorted(run.latencies)
    return Sample(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        non_2xx=run.non_2xx,
        socket_errors=run.socket_errors,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", type=Path, help="a JSON file holding the load")
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    options = parser.parse_args()
    load = Load.from_json(options.spec.read_text())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        sample = runner.run(
            drive(load, options.url, options.connections, options.duration, options.timeout)
        )
    print(json.dumps(asdict(sample)))


if __name__ == "__main__":
    main()
