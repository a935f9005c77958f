"""``conveyor deliver``: the whole continuous-delivery pipeline in one call.

pull → run the stale stages (check stages are gates: a failing one stops here) → register the
model the run produced → promote it to ``staging`` (the registry's policy judges it) → roll it
out on the running server as a canary or shadow, where the server promotes it to
``production`` or rolls it back by its objectives → or, with no server, promote it directly.

Every step is reported as it ends; a step that stops the delivery raises
:class:`DeliveryStopped` carrying the whole report, so the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.delivery._config import DeployConfig
    from conveyor.registry import ModelVersion, Registry
    from conveyor.serving._rollout import RolloutSettings
    from conveyor.workspace import Workspace

OUTCOMES = ("released", "unchanged", "stopped", "rolled-back")


@dataclass
class Step:
    name: str  # pull, run, register, staging, build, rollout, production
    status: str  # ok, skipped, failed
    detail: str
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "seconds": round(self.seconds, 3)}


@dataclass
class DeliveryReport:
    model: str
    steps: list[Step] = field(default_factory=list)
    version: str | None = None  # the version delivered (NAME:N)
    outcome: str = "stopped"
    run_id: str | None = None
    bundle: str | None = None  # the folder of the version's bundle, when built

    @property
    def ok(self) -> bool:
        return self.outcome in ("released", "unchanged")

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "outcome": self.outcome,
            "run_id": self.run_id,
            "bundle": self.bundle,
            "steps": [s.to_json() for s in self.steps],
        }

    def summary(self) -> str:
        what = self.version or self.model
        return {
            "released": f"{what} released",
            "unchanged": f"{what} unchanged: nothing new to deliver",
            "stopped": f"delivery of {what} stopped",
            "rolled-back": f"{what} rolled back",
        }[self.outcome]


class DeliveryStopped(ConveyorError):
    """A gate stopped the delivery (a stage or check failed, the policy refused, the rollout
    breached its objectives); the report says which step and why."""

    exit_code = 1

    def __init__(self, report: DeliveryReport, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


def deliver(
    *,
    model: str | None = None,
    artifact: str | None = None,
    server: str | None = None,
    pull: bool | None = None,
    force: bool = False,
    rollout_timeout: float | None = None,
    reason: str = "",
    on_step: Callable[[Step], None] | None = None,
    workspace: Workspace | None = None,
) -> DeliveryReport:
    """Deliver the model the pipeline produces, from ``conveyor.yaml``'s ``deploy:`` section
    (``model``, ``artifact``, ``server``; the arguments win). ``pull``: fetch inputs from the
    default remote first (default: when one is configured). ``force``: re-run every stage.
    Returns the report when the version was released or nothing changed; raises
    :class:`DeliveryStopped` when a gate stopped it."""
    from conveyor.delivery._config import load_deploy_config
    from conveyor.workspace import Workspace

    ws = workspace or Workspace.find()
    config = load_deploy_config(ws.root)
    model = model or config.model
    artifact = artifact or config.artifact
    if not model or not artifact:
        raise UsageError(
            "deliver needs the model's name and the pipeline output that is the model",
            hint="set deploy: {model: NAME, artifact: PATH} in conveyor.yaml, or pass --model and --artifact",
        )
    report = DeliveryReport(model)
    timer = _Steps(report, on_step)
    _pull(ws, pull, timer)
    _run(ws, force, timer)
    from conveyor.registry import Registry

    with Registry.open(ws) as registry:
        version = _register(registry, model, artifact, report, timer, config)
        if version is None:
            return report
        _build(ws, registry, version, config, timer, report)
        _promote(registry, version, config.staging, reason or "delivered", timer, report, step="staging")
        url = server or config.server
        serving = registry.aliases(model).get(config.alias)
        if url is not None and serving is not None and _answers(url):
            _roll_out(registry, version, config, url, rollout_timeout, timer, report)
        else:
            why = (
                "no server is configured"
                if url is None
                else f"nothing serves '{config.alias}' yet"
                if serving is None
                else f"no server answers at {url}"
            )
            timer.add("rollout", "skipped", f"{why}: promoted directly")
            _promote(registry, version, config.alias, reason or "delivered", timer, report, step="production")
    report.outcome = "released"
    return report


class _Steps:
    """Times each step and reports it when it ends."""

    def __init__(self, report: DeliveryReport, on_step: Callable[[Step], None] | None) -> None:
        self.report = report
        self.on_step = on_step
        self.started = time.perf_counter()

    def add(self, name: str, status: str, detail: str) -> Step:
        now = time.perf_counter()
        step = Step(name, status, detail, now - self.started)
        self.started = now
        self.report.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)
        return step

    def stop(self, name: str, detail: str, *, hint: str | None = None, outcome: str = "stopped") -> DeliveryStopped:
        self.add(name, "failed", detail)
        self.report.outcome = outcome
        return DeliveryStopped(self.report, f"{self.report.summary()} at {name}: {detail}", hint=hint)


def _pull(ws: Workspace, pull: bool | None, timer: _Steps) -> None:
    from conveyor.remote._config import remotes

    configured = remotes(ws)
    if pull is False or (pull is None and not configured):
        timer.add("pull", "skipped", "no remote is configured" if not configured else "not asked for")
        return
    from conveyor.remote import pull as pull_data

    try:
        result = pull_data(workspace=ws)
    except ConveyorError as exc:
        raise timer.stop("pull", exc.format_message()) from exc
    timer.add("pull", "ok", _describe(result))


def _describe(result: Any) -> str:
    if not result.objects:
        return f"everything already here ({result.present} objects)"
    return f"{result.objects} objects ({result.bytes:,} bytes) from '{result.remote}'"


def _run(ws: Workspace, force: bool, timer: _Steps) -> None:
    from conveyor.pipeline import run
    from conveyor.pipeline._runner import StageFailedError

    try:
        result = run(force=force, quiet=True, workspace=ws)
    except StageFailedError as exc:
        raise timer.stop(
            "run", exc.message, hint="the stage's log is under .conveyor/logs; fix it and deliver again"
        ) from exc
    except ConveyorError as exc:
        raise timer.stop("run", exc.format_message()) from exc
    timer.report.run_id = result.run_id
    ran = result.with_status("ran")
    restored = result.with_status("restored")
    detail = (
        f"{len(ran)} stage{'s' * (len(ran) != 1)} ran"
        + (f", {len(restored)} restored from the run cache" if restored else "")
        if ran or restored
        else "every stage up to date"
    )
    checks = [s.name for s in result.stages if s.status in ("ran", "restored") and _is_check(ws, s.name)]
    if checks:
        detail += f"; gates passed: {', '.join(checks)}"
    timer.add("run", "ok", detail)


def _is_check(ws: Workspace, stage: str) -> bool:
    from conveyor.pipeline._spec import load_pipeline

    try:
        found = load_pipeline(ws).stages.get(stage)
    except ConveyorError:
        return False
    return found is not None and found.call == "conveyor.checks._stage:run"


def _register(
    registry: Registry, model: str, artifact: str, report: DeliveryReport, timer: _Steps, config: DeployConfig
) -> ModelVersion | None:
    """The version of the run's artifact: an existing one with the same content, else a new one;
    None (and the outcome ``unchanged``) when it is what already serves."""
    from conveyor.versioning._hashing import hash_file

    assert registry.ws is not None
    path = registry.ws.root / artifact
    if not path.is_file():
        raise timer.stop(
            "register",
            f"the pipeline did not produce {artifact}",
            hint="deploy: artifact: must name a file output of a stage in conveyor.yaml",
        )
    digest, _size = hash_file(path)
    existing = []
    try:
        existing = [v for v in registry.versions(model) if v.artifact_hash == digest]
    except UsageError:
        pass  # no such model yet: its first version
    serving = registry.aliases(model).get(config.alias) if existing else None
    if existing:
        version = existing[-1]
        if serving == version.version:
            timer.add("register", "ok", f"{artifact} is {version.ref}, already '{config.alias}'")
            report.version, report.outcome = version.ref, "unchanged"
            return None
        timer.add("register", "ok", f"{artifact} is already registered as {version.ref}")
    else:
        try:
            version = registry.register(
                model, str(path), signature=_signature(registry.ws, config), description="delivered by conveyor deliver"
            )
        except ConveyorError as exc:
            raise timer.stop("register", exc.format_message()) from exc
        timer.add("register", "ok", f"{artifact} registered as {version.ref}")
    report.version = version.ref
    return version


def _signature(ws: Workspace, config: DeployConfig) -> Any:
    """The signature of a delivered version, from the training data ``deploy: monitor:`` names
    (its ``reference`` and ``label``); None without one (the server then checks nothing)."""
    reference, label = config.monitor.reference, config.monitor.label
    if reference is None or not (ws.root / reference).is_file():
        return None
    from conveyor.registry import Signature

    return Signature.from_file(str(ws.root / reference), label=label)


def _promote(
    registry: Registry,
    version: ModelVersion,
    alias: str,
    reason: str,
    timer: _Steps,
    report: DeliveryReport,
    *,
    step: str,
) -> None:
    if registry.aliases(version.model).get(alias) == version.version:
        timer.add(step, "ok", f"{version.ref} is already '{alias}'")
        return
    try:
        registry.promote(version.ref, to=alias, reason=reason)
    except ConveyorError as exc:
        raise timer.stop(step, exc.message, hint=exc.hint) from exc
    timer.add(step, "ok", f"{version.ref} promoted to '{alias}'")


def _build(
    ws: Workspace,
    registry: Registry,
    version: ModelVersion,
    config: DeployConfig,
    timer: _Steps,
    report: DeliveryReport,
) -> None:
    """The build step: the version that passed its gates, packaged as what is deployed, before
    any alias moves to it."""
    settings = config.bundle
    if not settings.enabled:
        timer.add("build", "skipped", "deploy: bundle: false")
        return
    from conveyor.build import build_bundle
    from conveyor.build._bundle import sha256_of

    folder = (ws.root / settings.dir / f"{version.model}-{version.version}").absolute()
    shown = _shown(ws, folder)
    if folder.exists():
        archive = folder.parent / f"{folder.name}.tar.gz"
        recorded = {b.sha256 for b in registry.bundles(version)}
        if archive.is_file() and sha256_of(archive) in recorded and (folder / "bundle.json").is_file():
            timer.add("build", "ok", f"{version.ref} is already built: {shown}")
            report.bundle = str(folder)
            return
        raise timer.stop(
            "build",
            f"{shown} exists but is not a bundle built of {version.ref}",
            hint="remove it (and its .tar.gz) and deliver again",
        )
    image = settings.image.replace("{version}", str(version.version)) if settings.image else None
    try:
        bundle = build_bundle(version.ref, folder, image=image, base_image=settings.base_image, workspace=ws)
    except ConveyorError as exc:
        raise timer.stop("build", exc.message, hint=exc.hint) from exc
    report.bundle = str(bundle.folder)
    timer.add("build", "ok", f"{_shown(ws, bundle.archive)}, sha256 {bundle.sha256[:12]}")


def _shown(ws: Workspace, path: Path) -> str:
    try:
        return ws.relpath(path)
    except ValueError:  # deploy: bundle: dir outside the workspace
        return str(path)


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url.rstrip("/") + "/v2/health/ready", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _roll_out(
    registry: Registry,
    version: ModelVersion,
    config: DeployConfig,
    url: str,
    timeout: float | None,
    timer: _Steps,
    report: DeliveryReport,
) -> None:
    """Put ``version`` on trial on the server and wait for the server's verdict, read from the
    registry: the alias moved to it (promoted) or its trial aborted (rolled back)."""
    from conveyor.delivery._deploy import ServerClient

    rollout: RolloutSettings = config.rollout
    try:
        live = ServerClient(url).status()
        candidate_alias = str(live.get("candidate_alias") or rollout.candidate_alias)
        mode = str((live.get("rollout") or {}).get("mode", rollout.mode))
    except ConveyorError:
        candidate_alias, mode = rollout.candidate_alias, rollout.mode
    since = time.time()
    try:
        registry.promote(version.ref, to=candidate_alias, reason=f"{mode} by conveyor deliver")
    except ConveyorError as exc:
        raise timer.stop("rollout", exc.message, hint=exc.hint) from exc
    waited = timeout if timeout is not None else config.timeout
    deadline = time.monotonic() + waited
    while time.monotonic() < deadline:
        time.sleep(0.25)
        moves = [m for m in registry.history(version.model) if m.at >= since]
        for move in moves:
            if move.alias == config.alias and move.action == "promote" and move.to_version == version.version:
                timer.add("rollout", "ok", f"{mode} on {url} passed: {move.reason}")
                timer.add("production", "ok", f"{version.ref} is '{config.alias}' (promoted by {move.actor})")
                return
            if move.alias == candidate_alias and move.action == "abort":
                raise timer.stop("rollout", move.reason, outcome="rolled-back")
    try:
        registry.abort(
            version.model,
            alias=candidate_alias,
            reason=f"no verdict from {url} within {waited:g} s",
            expect_current=version.version,
        )
    except ConveyorError:
        pass
    raise timer.stop(
        "rollout",
        f"the server at {url} gave no verdict in time: taken off trial",
        hint="does the server get traffic, and does it promote by itself (no --no-auto-promote)?",
        outcome="rolled-back",
    )
