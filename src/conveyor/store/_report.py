"""Comparing runs, and the text ``conveyor runs`` prints: tables built from run records.

Kept out of the CLI so that other front ends (a web page, a CI comment) show the same rows.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from conveyor.store._records import RunRecord

METRIC_COLUMNS = 3  # metrics shown as columns of ``runs list``


@dataclass
class ValueChange:
    """One param or metric in two runs."""

    key: str
    a: Any  # None also when absent from A: see ``change``
    b: Any
    change: str  # "same", "changed", "added" (only in B), "removed" (only in A)
    delta: float | None = None  # b - a, when both are numbers
    relative: float | None = None  # delta / |a|, when both are numbers and a is not 0


@dataclass
class StageChange:
    """One stage in two runs: status and duration in each (None where it did not take part)."""

    name: str
    a_status: str | None
    b_status: str | None
    a_duration: float | None
    b_duration: float | None
    delta: float | None = None
    relative: float | None = None


@dataclass
class RunComparison:
    a: RunRecord
    b: RunRecord
    params: list[ValueChange]  # every param of either run, sorted by key
    metrics: list[ValueChange]
    stages: list[StageChange]  # in B's order, then stages only A had

    def to_json(self, *, all_params: bool = True) -> dict[str, Any]:
        from dataclasses import asdict

        params = self.params if all_params else [p for p in self.params if p.change != "same"]
        return {
            "a": self.a.id,
            "b": self.b.id,
            "params": [asdict(p) for p in params],
            "metrics": [asdict(m) for m in self.metrics],
            "stages": [asdict(s) for s in self.stages],
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _change(a: float, b: float) -> tuple[float | None, float | None]:
    try:
        delta = float(b) - float(a)
    except OverflowError:
        return None, None
    if not math.isfinite(delta):
        return None, None
    relative = delta / abs(a) if a != 0 else None
    return delta, relative


def _compare_values(a: dict[str, Any], b: dict[str, Any]) -> list[ValueChange]:
    changes: list[ValueChange] = []
    for key in sorted(a.keys() | b.keys()):
        if key not in b:
            changes.append(ValueChange(key, a[key], None, "removed"))
        elif key not in a:
            changes.append(ValueChange(key, None, b[key], "added"))
        else:
            va, vb = a[key], b[key]
            same = _same(va, vb)
            change = ValueChange(key, va, vb, "same" if same else "changed")
            if _is_number(va) and _is_number(vb):
                change.delta, change.relative = _change(va, vb)
            changes.append(change)
    return changes


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def compare_runs(a: RunRecord, b: RunRecord) -> RunComparison:
    """Params, metrics and stages of run ``a`` against run ``b`` (changes are B minus A)."""
    stages_a = {s.name: s for s in a.stages}
    stages_b = {s.name: s for s in b.stages}
    names = [s.name for s in b.stages] + [s.name for s in a.stages if s.name not in stages_b]
    stages: list[StageChange] = []
    for name in names:
        sa, sb = stages_a.get(name), stages_b.get(name)
        change = StageChange(
            name,
            sa.status if sa else None,
            sb.status if sb else None,
            sa.duration if sa else None,
            sb.duration if sb else None,
        )
        if sa and sb and sa.status == sb.status == "ran":  # a skipped or restored stage took no time of its own
            change.delta, change.relative = _change(sa.duration, sb.duration)
        stages.append(change)
    return RunComparison(a, b, _compare_values(a.params, b.params), _compare_values(a.metrics, b.metrics), stages)


# -- formatting -----------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_time(stamp: float, *, seconds: bool = False) -> str:
    """Local time: ``2026-11-27 09:30`` (with ``seconds``, ``2026-11-27 09:30:12 CET``)."""
    local = time.localtime(stamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M", local)


def format_value(value: Any, *, digits: int | None = None) -> str:
    """A param or metric for a table: strings bare, numbers short, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and digits is not None:
        return f"{value:.{digits}g}"
    return json.dumps(value, sort_keys=True)


def format_change(delta: float | None, relative: float | None, *, seconds: bool = False) -> str:
    """``+0.02 (+2.2%)``: B minus A, and that relative to A; empty when there is none."""
    if delta is None or delta == 0:
        return ""
    text = f"{'+' if delta > 0 else '-'}{format_duration(abs(delta))}" if seconds else f"{delta:+.4g}"
    if relative is not None:
        text += f" ({relative:+.0%})" if abs(relative) >= 10 else f" ({relative:+.1%})"
    return text


def _change_cell(change: ValueChange) -> str:
    if change.change == "changed" and change.delta is None:
        return "changed"
    if change.change in ("added", "removed"):
        return change.change
    return format_change(change.delta, change.relative)


def short_commit(run: RunRecord) -> str:
    if run.commit is None:
        return "-"
    return run.commit[:8] + ("*" if run.dirty else "")


def stage_summary(run: RunRecord) -> str:
    """``3 ran, 1 restored`` (and failures), from a run's stages."""
    counts: dict[str, int] = {}
    for stage in run.stages:
        counts[stage.status] = counts.get(stage.status, 0) + 1
    parts = [f"{counts.get('ran', 0)} ran", f"{counts.get('restored', 0)} restored"]
    parts += [f"{counts[s]} {s}" for s in ("failed", "interrupted") if counts.get(s)]
    return ", ".join(parts)


def format_table(header: list[str], rows: list[list[str]], *, right: frozenset[int] = frozenset()) -> list[str]:
    """Columns padded to their widest cell (right-aligned for the ``right`` indexes)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _metric_keys(runs: list[RunRecord], count: int) -> list[str]:
    keys: list[str] = []
    for run in runs:
        for key in sorted(run.metrics):
            if key not in keys:
                keys.append(key)
    return keys[:count]


def _short_keys(keys: list[str]) -> list[str]:
    """``metrics.json:accuracy`` as ``accuracy`` where that stays unambiguous."""
    tails = [key.rpartition(":")[2] for key in keys]
    return [tail if tails.count(tail) == 1 else key for key, tail in zip(keys, tails, strict=True)]


def runs_table(runs: list[RunRecord], *, metric_columns: int = METRIC_COLUMNS) -> list[str]:
    """The lines of ``conveyor runs list``: one row a run, the first metrics as columns."""
    keys = _metric_keys(runs, metric_columns)
    header = ["ID", "STARTED", "DURATION", "STATUS", "COMMIT", "STAGES", *_short_keys(keys)]
    rows = [
        [
            run.id,
            format_time(run.started_at),
            format_duration(run.duration),
            run.status,
            short_commit(run),
            stage_summary(run),
            *(format_value(run.metrics[k], digits=4) if k in run.metrics else "-" for k in keys),
        ]
        for run in runs
    ]
    return format_table(header, rows, right=frozenset({2, *range(6, 6 + len(keys))}))


def run_lines(run: RunRecord) -> list[str]:
    """The lines of ``conveyor runs show``."""
    lines = [f"run {run.id}"]
    fields = [
        ("status", run.status),
        ("started", format_time(run.started_at, seconds=True)),
        ("ended", "-" if run.ended_at is None else format_time(run.ended_at, seconds=True)),
        ("duration", format_duration(run.duration)),
        ("commit", "- (not in git)" if run.commit is None else run.commit + (" (with changes)" if run.dirty else "")),
        ("command", run.command or "-"),
        ("targets", " ".join(run.targets) or "(all)"),
    ]
    env = run.environment
    if env:
        python = f"{env.get('implementation', 'Python')} {env.get('python', '?')}"
        packages = env.get("packages", "")
        fields.append(("python", f"{python} on {env.get('platform', '?')}"))
        fields.append(("packages", f"{env.get('package_count', '?')} installed, fingerprint {packages[:12]}"))
        fields.append(("conveyor", env.get("conveyor", "?")))
    width = max(len(name) for name, _ in fields)
    lines += [f"  {name.ljust(width)}  {value}" for name, value in fields]
    for title, values in (("params", run.params), ("metrics", run.metrics)):
        lines.append(f"{title}:" if values else f"{title}: none")
        if values:
            key_width = max(len(k) for k in values)
            lines += [f"  {k.ljust(key_width)}  {format_value(v)}" for k, v in values.items()]
    if not run.stages:
        lines.append("stages: none")
        return lines
    lines.append("stages:")
    rows = [
        [
            s.name,
            s.status,
            format_duration(s.duration),
            str(s.attempts),
            time.strftime("%H:%M:%S", time.localtime(s.started_at)),
        ]
        for s in run.stages
    ]
    table = format_table(["NAME", "STATUS", "DURATION", "ATTEMPTS", "STARTED"], rows, right=frozenset({2, 3}))
    lines.append("  " + table[0])
    for stage, row_line in zip(run.stages, table[1:], strict=True):
        lines.append("  " + row_line)
        for path, digest in stage.outs.items():
            lines.append(f"      {digest.removeprefix('blake3:')[:12]}  {path}")
        if stage.error:
            lines += [f"      error: {line}" for line in stage.error.splitlines() or [""]]
    return lines


def comparison_lines(comparison: RunComparison, *, all_params: bool = False) -> list[str]:
    """The lines of ``conveyor runs compare``."""
    a, b = comparison.a, comparison.b
    lines = [
        f"{name}: {run.id}  {run.status}, started {format_time(run.started_at)}, commit {short_commit(run)}"
        for name, run in (("A", a), ("B", b))
    ]

    def cell(change: ValueChange, side: str) -> str:
        absent = change.change == ("added" if side == "a" else "removed")
        return "-" if absent else format_value(change.a if side == "a" else change.b)

    shown = comparison.params if all_params else [p for p in comparison.params if p.change != "same"]
    differ = sum(p.change != "same" for p in comparison.params)
    title = f"params ({differ} of {len(comparison.params)} differ)"
    lines.append("")
    if not shown:
        lines.append(title if comparison.params else "params: none")
    else:
        lines.append(title + ":")
        rows = [[p.key, cell(p, "a"), cell(p, "b"), _change_cell(p)] for p in shown]
        lines += ["  " + line for line in format_table(["PARAM", "A", "B", "CHANGE"], rows)]
    lines.append("")
    if not comparison.metrics:
        lines.append("metrics: none")
    else:
        lines.append("metrics:")
        rows = [[m.key, cell(m, "a"), cell(m, "b"), _change_cell(m)] for m in comparison.metrics]
        lines += ["  " + line for line in format_table(["METRIC", "A", "B", "CHANGE"], rows)]
    lines.append("")
    if not comparison.stages:
        lines.append("stages: none")
        return lines
    lines.append("stages:")
    rows = []
    for s in comparison.stages:
        side_a = "-" if s.a_status is None else f"{format_duration(s.a_duration)} {s.a_status}"
        side_b = "-" if s.b_status is None else f"{format_duration(s.b_duration)} {s.b_status}"
        rows.append([s.name, side_a, side_b, format_change(s.delta, s.relative, seconds=True)])
    lines += ["  " + line for line in format_table(["STAGE", "A", "B", "CHANGE"], rows)]
    return lines
