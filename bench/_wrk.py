"""wrk as the load generator: a Lua script per load sets the method, headers and body, rotates
the paths, and prints the figures as one parseable line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench._load import REQUEST_TIMEOUT, Load, Sample
from bench._procs import HOST, BenchError

# Each wrk thread has a Lua state of its own; each starts the rotation at another place.
_SCRIPT = """\
local paths = {%(paths)s}
local count = #paths
local index = 0
local threads = 0
wrk.method = %(method)s
wrk.body = %(body)s
%(headers)s
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
-- Every request formatted once, in init: formatting one per request cost wrk enough of
-- the CPU it shares with the servers to hide what a second worker adds.
local formatted = {}
function init(args)
  index = (id * 7919) %% count
  for i = 1, count do
    formatted[i] = wrk.format(nil, paths[i])
  end
end
function request()
  index = index %% count + 1
  return formatted[index]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\": %%d, \\"microseconds\\": %%d, \\"non_2xx\\": %%d, " ..
    "\\"socket_errors\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua(text: str) -> str:
    """A Lua string literal; any byte but printable ASCII as a decimal escape (\\ddd)."""
    return '"' + "".join(_lua_char(c) for c in text) + '"'


def _lua_char(char: str) -> str:
    if " " <= char <= "~" and char not in '"\\':
        return char
    return "".join(f"\\{byte:03d}" for byte in char.encode())


def script(load: Load) -> str:
    headers = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in load.headers.items())
    return _SCRIPT % {
        "paths": ", ".join(_lua(p) for p in load.paths),
        "method": _lua(load.method),
        "body": _lua(load.body) if load.body else "nil",
        "headers": headers,
    }


class WrkGenerator:
    name = "wrk"

    def __init__(self, threads: int = 1) -> None:
        # One thread keeps up with any server here; more would take CPU from the server.
        self._threads = threads

    def command(
        self, load: Load, port: int, connections: int, seconds: float, workdir: Path
    ) -> list[str]:
        lua = workdir / f"load-{abs(hash(load.to_json()))}.lua"
        lua.write_text(script(load))
        return [
            "wrk",
            f"--threads={min(self._threads, connections)}",
            f"--connections={connections}",
            f"--duration={max(1, round(seconds))}s",
            f"--timeout={REQUEST_TIMEOUT:.0f}s",
            f"--script={lua}",
            f"http://{HOST}:{port}{load.paths[0]}",
        ]

    def parse(self, output: str) -> Sample:
        for line in output.splitlines():
            if line.startswith("BENCH "):
                data = json.loads(line[6:])
                return Sample(
                    requests=data["requests"],
                    seconds=data["microseconds"] / 1e6,
                    p50_ms=data["p50_us"] / 1000,
                    p99_ms=data["p99_us"] / 1000,
                    non_2xx=data["non_2xx"],
                    socket_errors=data["socket_errors"],
                )
        raise BenchError(f"wrk printed no result: {output[-500:]}")


def install() -> None:
    """Install wrk from the OS packages (apt-get, as root); a message if that cannot be done."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        print("wrk is not installed and cannot be installed here (needs apt-get as root)")
        return
    print("installing wrk with apt-get ...", flush=True)
    # The package lists may be missing or stale: update them when a first try fails.
    for steps in ([_INSTALL], [["apt-get", "update"], _INSTALL]):
        for argv in steps:
            try:
                subprocess.run(argv, capture_output=True, timeout=600, check=True)  # noqa: S603
            except (subprocess.SubprocessError, OSError) as exc:
                print(f"`{' '.join(argv)}` failed: {exc}")
        if shutil.which("wrk") is not None:
            return


_INSTALL = ["apt-get", "install", "-y", "wrk"]
