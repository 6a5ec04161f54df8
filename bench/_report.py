"""What a run found, as a table on stdout and a JSON file; the differences between two files.

The JSON keeps every repetition, so a later look can tell noise from change.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._load import Summary

CONSTANT = "constant"
DB_CEILING = "db_ceiling"
# The page GET /movies answers, served by a bare FastAPI + asyncpg handler (reference.py).
PAGE_REFERENCE = "page_reference"


@dataclass(frozen=True)
class Line:
    """One load at one connection count: the median of its repetitions."""

    key: str
    label: str
    connections: int
    summary: Summary


@dataclass(frozen=True)
class Target:
    """A goal from issue 5: what it asks, what was measured, whether it was met (None: not run)."""

    name: str
    goal: str
    measured: str
    met: bool | None
    line: tuple[str, int] | None = None  # the table line it belongs to, if any


@dataclass
class Report:
    meta: dict[str, Any]
    lines: list[Line] = field(default_factory=list)
    # name -> (value, unit, label); None when that part did not run or failed
    figures: dict[str, tuple[float | None, str, str]] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str, value: float | None, unit: str, label: str) -> None:
        self.figures[name] = (value, unit, label)

    def value(self, name: str) -> float | None:
        return self.figures.get(name, (None, "", ""))[0]

    def line(self, key: str, connections: int) -> Line | None:
        return next((x for x in self.lines if (x.key, x.connections) == (key, connections)), None)

    def ratio(self, line: Line, ceiling: str) -> float | None:
        base = self.line(ceiling, line.connections)
        if base is None or base.summary.rps == 0:
            return None
        return line.summary.rps / base.summary.rps


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def _met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def render(report: Report) -> str:
    out = [_header(report), ""]
    widths = (40, 6, 9, 9, 9, 7, 10, 12)
    titles = ("target", "conns", "req/s", "p50 ms", "p99 ms", "errors", "/constant", "/db ceiling")
    out.append(
        f"{titles[0]:<{widths[0]}}"
        + "".join(f"{t:>{w}}" for t, w in zip(titles[1:], widths[1:], strict=True))
        + "  target met?"
    )
    by_line = {t.line: t for t in report.targets if t.line is not None}
    for line in report.lines:
        s = line.summary
        cells = (
            str(line.connections),
            _num(s.rps, 0) if s.rps >= 100 else _num(s.rps, 1),
            _num(s.p50_ms, 1),
            _num(s.p99_ms, 1),
            str(s.errors),
            _num(report.ratio(line, CONSTANT)),
            _num(report.ratio(line, DB_CEILING)),
        )
        target = by_line.get((line.key, line.connections))
        mark = f"  {_met(target.met)} ({target.goal})" if target else ""
        out.append(
            f"{line.label:<{widths[0]}}"
            + "".join(f"{c:>{w}}" for c, w in zip(cells, widths[1:], strict=True))
            + mark
        )
    out += ["", f"{'figure':<52}{'value':>14}  unit"]
    for value, unit, label in report.figures.values():
        out.append(f"{label:<52}{_num(value):>14}  {unit}")
    out += ["", f"{'target (issue 5)':<46}{'met?':>5}  measured  (goal)"]
    for t in report.targets:
        out.append(f"{t.name:<46}{_met(t.met):>5}  {t.measured}  ({t.goal})")
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out)


def _header(report: Report) -> str:
    m = report.meta
    return (
        f"python -m bench, {m.get('started', '?')}, commit {m.get('commit', '?')}: "
        f"{m.get('cores', '?')} cores, load generator {m.get('generator', '?')}, "
        f"{m.get('duration', '?')} s x {m.get('repeat', '?')} (median), "
        f"our service with {m.get('workers', '?')} worker(s)"
    )


def to_json(report: Report) -> dict[str, Any]:
    lines = []
    for x in report.lines:
        s = x.summary
        lines.append(
            {
                "key": x.key,
                "label": x.label,
                "connections": x.connections,
                "rps": s.rps,
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "errors": s.errors,
                "ratio_constant": report.ratio(x, CONSTANT),
                "ratio_db_ceiling": report.ratio(x, DB_CEILING),
                "repetitions": [asdict(r) for r in s.runs],
            }
        )
    return {
        "meta": report.meta,
        "lines": lines,
        "figures": {
            k: {"value": v, "unit": u, "label": label}
            for k, (v, u, label) in report.figures.items()
        },
        "targets": [asdict(t) for t in report.targets],
        "notes": report.notes,
    }


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(report), indent=2) + "\n")


def _change(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if a == 0:
        return "-" if b == 0 else "new"
    return f"{(b - a) / a * 100:+.1f}%"


def _run_of(meta: dict[str, Any]) -> str:
    return (
        f"{meta.get('started')}, commit {meta.get('commit')}, {meta.get('generator')}, "
        f"{meta.get('duration')} s x {meta.get('repeat')}"
    )


def compare(path_a: Path, path_b: Path) -> str:
    """The figures of two JSON files side by side, with the change from A to B."""
    a, b = json.loads(path_a.read_text()), json.loads(path_b.read_text())
    out = [f"{name}: {path} ({_run_of(data['meta'])})" for name, path, data in (
        ("A", path_a, a), ("B", path_b, b))]  # fmt: skip
    out += [
        "",
        f"{'target':<46}{'conns':>5}{'req/s A':>10}{'req/s B':>10}{'change':>9}"
        f"{'p99 A':>9}{'p99 B':>9}{'change':>9}",
    ]
    lines_b = {(x["key"], x["connections"]): x for x in b["lines"]}
    for x in a["lines"]:
        y = lines_b.get((x["key"], x["connections"]))
        if y is None:
            continue
        out.append(
            f"{x['label']:<46}{x['connections']:>5}{_num(x['rps'], 0):>10}{_num(y['rps'], 0):>10}"
            f"{_change(x['rps'], y['rps']):>9}{_num(x['p99_ms']):>9}{_num(y['p99_ms']):>9}"
            f"{_change(x['p99_ms'], y['p99_ms']):>9}"
        )
    out += ["", f"{'figure':<52}{'A':>12}{'B':>12}{'change':>9}  unit"]
    for name, fa in a["figures"].items():
        fb = b["figures"].get(name)
        if fb is None:
            continue
        out.append(
            f"{fa['label']:<52}{_num(fa['value']):>12}{_num(fb['value']):>12}"
            f"{_change(fa['value'], fb['value']):>9}  {fa['unit']}"
        )
    return "\n".join(out)
