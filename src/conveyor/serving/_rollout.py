"""Rollouts: how a candidate version is tried on live traffic and judged.

A *canary* answers a share of the requests with the candidate; *shadow* answers every
request with the primary and sends a copy to the candidate, counting how often the two
disagree. Either way the candidate's requests fill a :class:`Window`; once it holds
``window`` requests the service-level objectives decide: pass (promote) or breach (roll
back). A window that can no longer pass (too many errors already) breaches at once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from conveyor.errors import UsageError

MODES = ("canary", "shadow")


@dataclass(frozen=True)
class Slo:
    """What a candidate must keep to over its window."""

    max_error_rate: float = 0.01  # share of its requests that failed in the model (not bad client input)
    max_p99_ms: float | None = None  # its 99th-percentile latency
    max_disagreement: float | None = None  # share of rows where it and the primary predict differently

    def to_json(self) -> dict[str, Any]:
        return {
            "max_error_rate": self.max_error_rate,
            "max_p99_ms": self.max_p99_ms,
            "max_disagreement": self.max_disagreement,
        }


@dataclass(frozen=True)
class RolloutSettings:
    """How a server tries candidates: which alias names them, how, and for how long."""

    mode: str = "canary"
    share: float = 0.1  # of requests a canary answers
    window: int = 200  # candidate requests judged before a verdict
    candidate_alias: str = "canary"
    auto_promote: bool = True  # a passed candidate becomes the primary alias by itself
    slo: Slo = field(default_factory=Slo)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"rollout mode '{self.mode}' is not known", hint="choose canary or shadow")
        if not 0.0 < self.share <= 1.0:
            raise UsageError(f"canary share {self.share} is outside (0, 1]", hint="for example 0.1 for 10%")
        if self.window < 1:
            raise UsageError(f"rollout window {self.window} must be at least 1 request", hint="for example 200")
        if not 0.0 <= self.slo.max_error_rate <= 1.0:
            raise UsageError(f"max error rate {self.slo.max_error_rate} is outside [0, 1]", hint="for example 0.01")
        if self.slo.max_disagreement is not None and not 0.0 <= self.slo.max_disagreement <= 1.0:
            raise UsageError(f"max disagreement {self.slo.max_disagreement} is outside [0, 1]", hint="for example 0.1")
        if self.slo.max_p99_ms is not None and self.slo.max_p99_ms <= 0:
            raise UsageError(f"max p99 {self.slo.max_p99_ms} ms must be positive", hint="for example 50")

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "share": self.share,
            "window": self.window,
            "candidate_alias": self.candidate_alias,
            "auto_promote": self.auto_promote,
            "slo": self.slo.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutSettings:
        slo = Slo(**data.get("slo", {}))
        return cls(**{**{k: v for k, v in data.items() if k != "slo"}, "slo": slo})


@dataclass(frozen=True)
class WindowVerdict:
    """What a window said: ``passed`` or not, and the figures behind it."""

    passed: bool
    requests: int
    errors: int
    p99_ms: float
    disagreement: float | None
    reasons: tuple[str, ...] = ()

    def summary(self) -> str:
        figures = f"{self.requests} requests, {self.errors} errors, p99 {self.p99_ms:.1f} ms"
        if self.disagreement is not None:
            figures += f", {self.disagreement:.1%} disagreement"
        return figures if self.passed else f"{'; '.join(self.reasons)} ({figures})"

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "requests": self.requests,
            "errors": self.errors,
            "p99_ms": round(self.p99_ms, 3),
            "disagreement": self.disagreement,
            "reasons": list(self.reasons),
        }


class Window:
    """The candidate's requests since its rollout began (thread-safe)."""

    def __init__(self, settings: RolloutSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []  # seconds
        self.compared_rows = 0
        self.disagreeing_rows = 0
        self.verdict: WindowVerdict | None = None

    def record(self, *, ok: bool, latency: float, rows: int = 0, disagreeing: int = 0) -> WindowVerdict | None:
        """Count one candidate request; returns the verdict the moment there is one (once)."""
        with self._lock:
            if self.verdict is not None:
                return None
            self.requests += 1
            self.errors += not ok
            self.latencies.append(latency)
            self.compared_rows += rows
            self.disagreeing_rows += disagreeing
            allowed_errors = math.floor(self.settings.slo.max_error_rate * self.settings.window)
            if self.requests >= self.settings.window or self.errors > allowed_errors:
                self.verdict = self._judge()
                return self.verdict
            return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "errors": self.errors,
                "window": self.settings.window,
                "p99_ms": round(_p99(self.latencies) * 1000, 3),
                "disagreement": self._disagreement(),
                "verdict": None if self.verdict is None else self.verdict.to_json(),
            }

    def _disagreement(self) -> float | None:
        return self.disagreeing_rows / self.compared_rows if self.compared_rows else None

    def _judge(self) -> WindowVerdict:
        slo = self.settings.slo
        error_rate = self.errors / self.requests
        p99_ms = _p99(self.latencies) * 1000
        disagreement = self._disagreement()
        reasons = []
        if error_rate > slo.max_error_rate:
            reasons.append(f"error rate {error_rate:.1%} above {slo.max_error_rate:.1%}")
        if slo.max_p99_ms is not None and p99_ms > slo.max_p99_ms:
            reasons.append(f"p99 latency {p99_ms:.1f} ms above {slo.max_p99_ms:g} ms")
        if slo.max_disagreement is not None and disagreement is not None and disagreement > slo.max_disagreement:
            reasons.append(f"disagreement {disagreement:.1%} above {slo.max_disagreement:.1%}")
        return WindowVerdict(not reasons, self.requests, self.errors, p99_ms, disagreement, tuple(reasons))


def _p99(latencies: list[float]) -> float:
    """The 99th percentile (nearest rank) of ``latencies``; 0 for none."""
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
