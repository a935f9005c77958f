"""``pipeline_status``: which stages are stale and why, without running anything."""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.pipeline._dag import Dag
from conveyor.pipeline._freshness import Facts, Reason, stale_reasons
from conveyor.pipeline._lock import LOCK_FILE, Lock
from conveyor.pipeline._spec import load_pipeline
from conveyor.versioning._repo import Repo
from conveyor.workspace import Workspace


@dataclass(slots=True)
class StageStatus:
    """One stage: ``up-to-date``, ``stale``, ``frozen`` or ``always-run``, with the reasons."""

    name: str
    state: str
    reasons: list[Reason] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        return self.state in ("stale", "always-run")


@dataclass(slots=True)
class PipelineStatus:
    stages: list[StageStatus] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(s.stale for s in self.stages)

    @property
    def stale(self) -> list[StageStatus]:
        return [s for s in self.stages if s.stale]


def compute_status(dag: Dag, lock: Lock, facts: Facts, selected: list[str], *, force: bool = False) -> PipelineStatus:
    """The state of each of ``selected`` (in topological order); a stale stage makes its
    downstream stages stale too, since they will see new inputs."""
    report = PipelineStatus()
    stale: set[str] = set()
    for name in selected:
        stage = dag.stage(name)
        if stage.frozen:
            report.stages.append(StageStatus(name, "frozen"))
            continue
        reasons, _deps, _params = stale_reasons(stage, lock.get(name), facts)
        if force:
            reasons.insert(0, Reason("forced", "forced"))
        for up in sorted(dag.upstream[name] & stale):
            reasons.append(Reason("upstream", f"upstream stage {up!r} will run"))
        if stage.always_run:
            report.stages.append(StageStatus(name, "always-run", [*reasons, Reason("always-run", "always_run is set")]))
            stale.add(name)
        elif reasons:
            report.stages.append(StageStatus(name, "stale", reasons))
            stale.add(name)
        else:
            report.stages.append(StageStatus(name, "up-to-date"))
    return report


def pipeline_status(targets: list[str] | None = None, *, workspace: Workspace | None = None) -> PipelineStatus:
    """Which stages of ``conveyor.yaml`` (all, or ``targets`` and their upstream) are stale, and why."""
    ws = workspace or Workspace.find()
    pipeline = load_pipeline(ws)
    dag = Dag.build(pipeline)
    selected = dag.select(dag.normalize_targets(ws, targets))
    lock = Lock.read(ws.root / LOCK_FILE, conveyor_dir=ws.conveyor_dir)
    with Repo(ws) as repo:
        return compute_status(dag, lock, Facts(repo), selected)
