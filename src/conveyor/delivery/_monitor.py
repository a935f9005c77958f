"""``conveyor monitor``: compare live traffic with the training reference and, when it drifted,
retrain through :func:`~conveyor.delivery.deliver`.

The server's sampled request logs (Parquet) are the live side; the reference is the training
data named in ``deploy: monitor: reference:``. The comparison is the checks package's drift
tests: each input feature (``feature_drift``) and the predictions (``label_drift`` of what the
serving version predicts on the reference against what it predicted live). The report is
written as JSON, Markdown and HTML; an alarm (more features drifted than
``max_drift_share``, or the predictions drifted) starts a delivery when ``retrain`` is on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, UsageError

if TYPE_CHECKING:
    from conveyor.delivery._deliver import DeliveryReport
    from conveyor.workspace import Workspace

PREDICTION = "prediction"


class DriftAlarm(ConveyorError):
    """Live traffic drifted from the reference and no retraining released a new version."""

    exit_code = 1


@dataclass
class MonitorReport:
    model: str
    version: str | None  # the serving version whose traffic was compared
    rows: int  # live rows compared
    reference_rows: int = 0
    drifted: list[str] = field(default_factory=list)  # drifted features
    features: int = 0
    predictions_drifted: bool = False
    alarm: bool = False
    judged: bool = True  # False: too few live rows to say anything
    reason: str = ""
    reports: dict[str, str] = field(default_factory=dict)
    delivery: DeliveryReport | None = None
    delivery_error: str | None = None

    @property
    def drift_share(self) -> float:
        return len(self.drifted) / self.features if self.features else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "drifted": self.drifted,
            "features": self.features,
            "drift_share": round(self.drift_share, 4),
            "predictions_drifted": self.predictions_drifted,
            "alarm": self.alarm,
            "judged": self.judged,
            "reason": self.reason,
            "reports": self.reports,
            "delivery": None if self.delivery is None else self.delivery.to_json(),
            "delivery_error": self.delivery_error,
        }


def monitor(
    *,
    model: str | None = None,
    reference: str | None = None,
    logs: str | None = None,
    since: float | None = None,
    label: str | None = None,
    max_drift_share: float | None = None,
    min_rows: int | None = None,
    retrain: bool | None = None,
    reports: str | None = None,
    workspace: Workspace | None = None,
    **deliver_options: Any,
) -> MonitorReport:
    """Compare the live requests logged since ``since`` (a Unix time; all by default) with the
    reference; on an alarm, deliver (retrain) when ``retrain``. Options default to
    ``conveyor.yaml``'s ``deploy: monitor:``."""
    from conveyor.checks import read_table, run_suite
    from conveyor.delivery._config import load_deploy_config
    from conveyor.registry import Registry
    from conveyor.serving import request_log_dir
    from conveyor.serving._requestlog import PREDICTION as LOGGED_PREDICTION
    from conveyor.serving._requestlog import VERSION as LOGGED_VERSION
    from conveyor.serving._requestlog import read_request_logs
    from conveyor.serving._slot import conform
    from conveyor.workspace import Workspace, private_dir

    ws = workspace or Workspace.find()
    config = load_deploy_config(ws.root)
    settings = config.monitor
    model = model or config.model
    reference = reference or settings.reference
    if not model or not reference:
        raise UsageError(
            "monitor needs the model's name and the reference data it was trained on",
            hint="set deploy: {model: NAME, monitor: {reference: PATH}} in conveyor.yaml (or --model, --reference)",
        )
    label = label if label is not None else settings.label
    threshold = settings.max_drift_share if max_drift_share is None else max_drift_share
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"max drift share {threshold} is outside [0, 1]", hint="for example 0.3")
    needed = settings.min_rows if min_rows is None else min_rows
    retrain = settings.retrain if retrain is None else retrain
    if logs is not None:
        folder = Path(logs).absolute()  # as the user typed it: from where the command runs
    elif settings.logs is not None:
        folder = ws.root / settings.logs  # conveyor.yaml's paths are the workspace's
    else:
        folder = request_log_dir(ws, model)
    live = read_request_logs(folder, since=since)
    with Registry.open(ws, create=False) as registry:
        version = registry.get(f"{model}@{config.alias}")
        served = registry.load(version)
    if LOGGED_VERSION in live.columns:  # only what the serving version answered (not a canary's)
        live = live[live[LOGGED_VERSION] == version.version].reset_index(drop=True)
    report = MonitorReport(model, version.ref, len(live))
    if len(live) < needed:
        report.judged = False
        report.reason = (
            f"not judged: {len(live)} rows answered by {version.ref} are logged in {folder}; "
            f"at least {needed} are needed"
        )
        return report
    frame = read_table(ws.root / reference if not Path(reference).is_absolute() else reference)
    if label is not None and label in frame.columns:
        frame = frame.drop(columns=label)
    signature = version.signature
    features = [c.name for c in signature.inputs] if signature and signature.inputs else list(frame.columns)
    missing = [c for c in features if c not in frame.columns or c not in live.columns]
    if missing:
        side = "the reference" if missing[0] not in frame.columns else "the request logs"
        raise UsageError(
            f"column '{missing[0]}' of {version.ref}'s inputs is not in {side}",
            hint="--reference must be the data the model was trained on",
        )
    reference_frame = conform(frame[features], signature).reset_index(drop=True)
    live_frame = conform(live[features], signature).reset_index(drop=True)
    from conveyor.serving._slot import Loaded

    reference_frame[PREDICTION], _ = Loaded(version, served).predict(reference_frame[features])
    live_frame[PREDICTION] = live[LOGGED_PREDICTION].to_numpy()
    report.reference_rows = len(reference_frame)
    out = Path(reports) if reports else private_dir(ws.conveyor_dir, "serving") / model / "monitor"
    out = out / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    suite = {
        "name": "monitoring",
        "checks": [
            {"feature_drift": {"conditions": {"max_drifted_share": {"warn": 0.0, "fail": threshold}}}},
            {"label_drift": {"conditions": {"no_label_drift": {"fail": 0}}}},
        ],
    }
    result = run_suite(suite, train=reference_frame, test=live_frame, label=PREDICTION, reports=out)
    report.reports = {k: str(v) for k, v in result.reports.items()}
    by_check = {r.check: r for r in result.results}
    feature = by_check.get("feature_drift")
    if feature is not None and feature.details.get("by_feature"):
        rows = feature.details["by_feature"]
        report.features = len(rows)
        report.drifted = [name for name, row in rows.items() if row["drifted"]]
    prediction = by_check.get("label_drift")
    report.predictions_drifted = bool(prediction is not None and prediction.values.get("drifted"))
    report.alarm = not result.passed
    if report.alarm:
        parts = []
        if report.drift_share > threshold:
            parts.append(
                f"{len(report.drifted)} of {report.features} features drifted "
                f"({report.drift_share:.0%} > {threshold:.0%}): {', '.join(report.drifted[:5])}"
            )
        if report.predictions_drifted:
            parts.append("the predictions drifted")
        report.reason = "; ".join(parts) or "the monitoring suite failed"
    else:
        report.reason = f"{len(report.drifted)} of {report.features} features drifted; within {threshold:.0%}"
    if report.alarm and retrain:
        from conveyor.delivery._deliver import DeliveryStopped, deliver

        try:
            report.delivery = deliver(workspace=ws, reason=f"retrained: {report.reason}", **deliver_options)
        except DeliveryStopped as exc:
            report.delivery = exc.report
            report.delivery_error = exc.format_message()
        except ConveyorError as exc:
            report.delivery_error = exc.format_message()
    return report
