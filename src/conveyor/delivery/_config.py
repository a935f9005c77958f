"""The ``deploy:`` section of ``conveyor.yaml``: what is delivered, how it is rolled out and
how the live traffic is monitored.

.. code-block:: yaml

    deploy:
      model: wine                   # the registered model's name
      artifact: models/model.skops  # the pipeline output deliver registers
      alias: production             # what serves (default production)
      staging: staging              # the alias a delivered version passes through (default staging)
      server: http://127.0.0.1:8080 # a running conveyor serve: deliver rolls out through it
      rollout: {mode: canary, share: 0.2, window: 100, max_error_rate: 0.01, max_p99_ms: 250, timeout: 120}
      monitor: {reference: data/train.csv, max_drift_share: 0.3, retrain: true}

Every field is optional; the CLI's options win over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.serving._rollout import MODES, RolloutSettings, Slo

_FIELDS = ("model", "artifact", "alias", "staging", "server", "rollout", "monitor", "bundle")
_BUNDLE_FIELDS = ("dir", "image", "base_image")
_ROLLOUT_FIELDS = (
    "mode",
    "share",
    "window",
    "candidate_alias",
    "auto_promote",
    "max_error_rate",
    "max_p99_ms",
    "max_disagreement",
    "timeout",
)
_MONITOR_FIELDS = ("reference", "logs", "label", "max_drift_share", "min_rows", "retrain")


@dataclass(frozen=True)
class BundleConfig:
    """``deploy: bundle:``: where deliver builds the bundle of each version it promotes (``false``: it
    builds none)."""

    enabled: bool = True
    dir: str = "bundles"  # relative to the workspace; each version in DIR/NAME-VERSION
    image: str | None = None  # the manifests' image; {version} is replaced (default NAME:vVERSION)
    base_image: str | None = None


@dataclass(frozen=True)
class MonitorConfig:
    reference: str | None = None  # the training data live inputs are compared with
    logs: str | None = None  # the request logs (default: the server's, under .conveyor/serving)
    label: str | None = None  # the reference's label column (left out of the comparison)
    max_drift_share: float = 0.3  # share of features drifting above which monitoring alarms
    min_rows: int = 100  # fewer logged rows than this: too few to judge
    retrain: bool = True  # alarm -> conveyor deliver


@dataclass(frozen=True)
class DeployConfig:
    model: str | None = None
    artifact: str | None = None
    alias: str = "production"
    staging: str = "staging"
    server: str | None = None
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    timeout: float = 300.0  # seconds deliver waits for a rollout's verdict
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    bundle: BundleConfig = field(default_factory=BundleConfig)


def load_deploy_config(root: Path) -> DeployConfig:
    """The ``deploy:`` section of the workspace at ``root`` (defaults without one)."""
    from conveyor.pipeline._spec import PIPELINE_FILE
    from conveyor.pipeline._yaml import SpecError, load

    try:
        text = (root / PIPELINE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return DeployConfig()
    doc = load(text, PIPELINE_FILE)
    top = doc.value if isinstance(doc.value, dict) else {}
    section = top.get("deploy")
    if section is None:
        return DeployConfig()

    def fail(where: tuple[str | int, ...], message: str, hint: str, *, key: bool = False) -> ConveyorError:
        return SpecError(f"{doc.mark(where, key=key)}: {message}", hint=hint)

    def mapping(value: Any, where: tuple[str, ...], fields: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise fail(where, f"'{where[-1]}' must be a mapping", f"it takes {', '.join(fields)}")
        for key in value:
            if key not in fields:
                from conveyor._suggest import did_you_mean

                hint = did_you_mean(str(key), fields) or f"'{where[-1]}' takes {', '.join(fields)}"
                raise fail((*where, key), f"unknown field '{key}'", hint, key=True)
        return value

    def typed(value: Any, where: tuple[str, ...], kind: type | tuple[type, ...], example: str) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise fail(where, f"'{where[-1]}' must be {example.split(':')[0]}", example)
        if value is not None and not isinstance(value, kind):
            raise fail(where, f"'{where[-1]}' has the wrong type", f"for example {where[-1]}: {example}")
        return value

    deploy = mapping(section, ("deploy",), _FIELDS)
    text_fields = {}
    for name in ("model", "artifact", "alias", "staging", "server"):
        text_fields[name] = typed(deploy.get(name), ("deploy", name), str, "a text value")
    rollout_doc = mapping(deploy.get("rollout") or {}, ("deploy", "rollout"), _ROLLOUT_FIELDS)
    r = ("deploy", "rollout")
    number = (int, float)
    mode = typed(rollout_doc.get("mode", "canary"), (*r, "mode"), str, "canary")
    if mode not in MODES:
        raise fail((*r, "mode"), f"unknown rollout mode '{mode}'", "choose canary or shadow")
    try:
        rollout = RolloutSettings(
            mode=mode,
            share=float(typed(rollout_doc.get("share", 0.1), (*r, "share"), number, "0.1")),
            window=int(typed(rollout_doc.get("window", 200), (*r, "window"), int, "200")),
            candidate_alias=typed(rollout_doc.get("candidate_alias", "canary"), (*r, "candidate_alias"), str, "canary"),
            auto_promote=typed(rollout_doc.get("auto_promote", True), (*r, "auto_promote"), bool, "true"),
            slo=Slo(
                max_error_rate=float(
                    typed(rollout_doc.get("max_error_rate", 0.01), (*r, "max_error_rate"), number, "0.01")
                ),
                max_p99_ms=typed(rollout_doc.get("max_p99_ms"), (*r, "max_p99_ms"), number, "250"),
                max_disagreement=typed(rollout_doc.get("max_disagreement"), (*r, "max_disagreement"), number, "0.1"),
            ),
        )
    except ConveyorError as exc:
        raise fail(r, exc.message, exc.hint or "see docs/serving.md") from None
    timeout = float(typed(rollout_doc.get("timeout", 300), (*r, "timeout"), number, "300"))
    monitor_doc = mapping(deploy.get("monitor") or {}, ("deploy", "monitor"), _MONITOR_FIELDS)
    m = ("deploy", "monitor")
    monitor = MonitorConfig(
        reference=typed(monitor_doc.get("reference"), (*m, "reference"), str, "data/train.csv"),
        logs=typed(monitor_doc.get("logs"), (*m, "logs"), str, ".conveyor/serving/wine/requests"),
        label=typed(monitor_doc.get("label"), (*m, "label"), str, "target"),
        max_drift_share=float(typed(monitor_doc.get("max_drift_share", 0.3), (*m, "max_drift_share"), number, "0.3")),
        min_rows=int(typed(monitor_doc.get("min_rows", 100), (*m, "min_rows"), int, "100")),
        retrain=typed(monitor_doc.get("retrain", True), (*m, "retrain"), bool, "true"),
    )
    bundle_doc = deploy.get("bundle", True)
    b = ("deploy", "bundle")
    if isinstance(bundle_doc, bool):
        bundle = BundleConfig(enabled=bundle_doc)
    else:
        bundle_doc = mapping(bundle_doc if bundle_doc is not None else {}, b, _BUNDLE_FIELDS)
        bundle = BundleConfig(
            dir=typed(bundle_doc.get("dir") or "bundles", (*b, "dir"), str, "bundles"),
            image=typed(bundle_doc.get("image"), (*b, "image"), str, "registry.example.com/iris:v{version}"),
            base_image=typed(bundle_doc.get("base_image"), (*b, "base_image"), str, "python:3.11-slim"),
        )
    return DeployConfig(
        model=text_fields["model"],
        artifact=text_fields["artifact"],
        alias=text_fields["alias"] or "production",
        staging=text_fields["staging"] or "staging",
        server=text_fields["server"],
        rollout=rollout,
        timeout=timeout,
        monitor=monitor,
        bundle=bundle,
    )
