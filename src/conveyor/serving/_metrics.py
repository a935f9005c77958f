"""Prometheus metrics of one server process, served at ``/metrics``.

Requests, errors and latency per model version and role (primary or candidate), rows
predicted, the distribution of predicted labels, swaps, load failures, rollouts and shadow
disagreements. Each process keeps its own registry: with ``--workers N`` a scrape sees the
worker that answered it, as with any multi-process Prometheus target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_MAX_LABEL_VALUES = 50  # distinct predicted labels tracked per version; the rest count as "other"


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "conveyor_requests", "Requests answered", ["model", "version", "role", "endpoint", "code"], registry=r
        )
        self.latency = Histogram(
            "conveyor_request_duration_seconds",
            "Time to answer a prediction request",
            ["model", "version", "role"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("conveyor_predicted_rows", "Rows predicted", ["model", "version", "role"], registry=r)
        self.predictions = Counter(
            "conveyor_predictions", "Predicted labels (classifiers)", ["model", "version", "label"], registry=r
        )
        self.prediction_values = Histogram(
            "conveyor_prediction_value", "Predicted values (regressors)", ["model", "version"], registry=r
        )
        self.swaps = Counter("conveyor_model_swaps", "Versions swapped in", ["model", "role"], registry=r)
        self.load_failures = Counter(
            "conveyor_model_load_failures", "Versions that failed to load or warm up", ["model", "role"], registry=r
        )
        self.rollouts = Counter("conveyor_rollouts", "Rollouts concluded", ["model", "outcome"], registry=r)
        self.disagreements = Counter(
            "conveyor_shadow_disagreements", "Rows where a shadow candidate disagreed", ["model", "version"], registry=r
        )
        self.served_version = Gauge(
            "conveyor_served_version", "Version served (0: none)", ["model", "role"], registry=r
        )
        self._labels_seen: dict[str, set[str]] = {}

    def predicted(self, model: str, version: str, role: str, labels: np.ndarray) -> None:
        import numpy as np

        self.rows.labels(model, version, role).inc(len(labels))
        if labels.dtype.kind == "f" and len(labels) and not np.all(np.mod(labels, 1) == 0):
            histogram = self.prediction_values.labels(model, version)
            for value in labels[:1000]:
                histogram.observe(float(value))
            return
        seen = self._labels_seen.setdefault(version, set())
        values, counts = np.unique(labels.astype(str), return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            if value not in seen:
                if len(seen) >= _MAX_LABEL_VALUES:
                    value = "other"
                else:
                    seen.add(value)
            self.predictions.labels(model, version, value).inc(count)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
