"""What a check found, its conditions and their verdicts, and a suite's outcome.

A check measures (``values``: plain numbers, JSON-ready) and explains (``details``: small
tables; ``figures``: data for the report's plots). Conditions turn measures into verdicts:
each compares one value with a ``warn`` and a ``fail`` threshold. A check's status is its
worst condition; a check that could not run is ``error`` (it raised) or ``skipped`` (an
input it needs was not given), with the reason, and never stops the other checks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "error", "skipped"]
# worst last; a skipped check does not make a passing suite look otherwise
STATUS_ORDER: dict[str, int] = {"skipped": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}
_ORDERED: tuple[tuple[Status, int], ...] = (("skipped", 0), ("pass", 1), ("warn", 2), ("error", 3), ("fail", 4))
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Condition:
    """``measure`` must stay at most (``direction="max"``) or at least (``"min"``) each threshold."""

    name: str
    measure: str
    direction: Literal["max", "min"]
    warn: float | None
    fail: float | None
    description: str

    def judge(self, value: float | None) -> Status:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "pass"  # nothing measured (no column of that kind): nothing to object to
        if self.fail is not None and self._beyond(value, self.fail):
            return "fail"
        if self.warn is not None and self._beyond(value, self.warn):
            return "warn"
        return "pass"

    def _beyond(self, value: float, threshold: float) -> bool:
        return value > threshold if self.direction == "max" else value < threshold

    def with_thresholds(self, warn: float | None, fail: float | None) -> Condition:
        return Condition(self.name, self.measure, self.direction, warn, fail, self.description)

    def text(self) -> str:
        sign = "≤" if self.direction == "max" else "≥"
        parts = []
        if self.fail is not None:
            parts.append(f"fail unless {sign} {_number(self.fail)}")
        if self.warn is not None:
            parts.append(f"warn unless {sign} {_number(self.warn)}")
        return f"{self.description}: " + ", ".join(parts) if parts else self.description


@dataclass
class ConditionResult:
    name: str
    description: str
    measure: str
    value: float | None
    direction: str
    warn: float | None
    fail: float | None
    status: Status


@dataclass
class Figure:
    """Data for one plot of the HTML report (never raw rows: summaries only)."""

    kind: Literal["bars", "histograms", "matrix", "line"]
    title: str
    data: dict[str, Any]


@dataclass
class CheckResult:
    """One check's outcome: its status, a one-line summary, the measured values, each
    condition's verdict, details for the report, and why it could not run (``reason``)."""

    check: str
    title: str
    status: Status
    summary: str
    values: dict[str, Any] = field(default_factory=dict)
    conditions: list[ConditionResult] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    reason: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("figures")
        return _plain(out)


@dataclass
class SuiteResult:
    """A suite run: every check's result; ``passed`` is the gate's verdict."""

    suite: str
    results: list[CheckResult]
    inputs: dict[str, Any] = field(default_factory=dict)  # names and sizes of what was checked
    seconds: float = 0.0
    reports: dict[str, str] = field(default_factory=dict)  # format -> path, when written

    @property
    def status(self) -> Status:
        worst = max((STATUS_ORDER[r.status] for r in self.results), default=0)
        found: Status = next(s for s, order in _ORDERED if order == worst)
        return found

    @property
    def passed(self) -> bool:
        """No condition failed and every check ran (a check that errored is not a pass)."""
        return all(r.status in ("pass", "warn", "skipped") for r in self.results)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUS_ORDER, 0)
        for result in self.results:
            counts[result.status] += 1
        return counts

    def get(self, check: str) -> CheckResult:
        for result in self.results:
            if result.check == check:
                return result
        raise KeyError(check)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status in ("fail", "error")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "suite": self.suite,
            "status": self.status,
            "passed": self.passed,
            "counts": self.counts(),
            "inputs": _plain(self.inputs),
            "seconds": round(self.seconds, 4),
            # every number measured, by check: what a check stage records as metrics with the run
            "values": {
                r.check: {k: v for k, v in _plain(r.values).items() if isinstance(v, (int, float))}
                for r in self.results
                if r.values
            },
            "checks": [r.to_dict() for r in self.results],
        }


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


def _number(value: float) -> str:
    return f"{value:g}"
