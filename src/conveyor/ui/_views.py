"""What each dashboard page shows, read from the workspace: plain data for the templates.

Every function here only reads (the pipeline, the lock, the run store, the registry); the
actions (promote, roll back) are in :mod:`conveyor.ui._app` and go through the same library
calls as the CLI, so the same policy decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.ui._charts import Chart, bar_chart, line_chart
from conveyor.ui._graph import MAX_DRAWN, Layout, layout
from conveyor.workspace import Workspace

PAGE_SIZE = 50
CHECK_STAGE = "conveyor.checks._stage:run"
# a stage's state on the DAG, from the run in progress, the last run and the workspace
STATES = ("up-to-date", "stale", "running", "failed", "frozen", "queued")


@dataclass
class StageView:
    name: str
    state: str
    reasons: list[str] = field(default_factory=list)
    kind: str = "cmd"  # cmd, call or check
    command: str = ""
    report: str | None = None  # a check stage's HTML report, relative to the workspace


@dataclass
class PipelineView:
    stages: list[StageView]
    layout: Layout | None  # None: too many stages to draw, or none
    running_run: str | None  # the run in progress
    error: str | None = None  # conveyor.yaml could not be read

    def states(self) -> dict[str, str]:
        return {s.name: s.state for s in self.stages}


def pipeline_view(ws: Workspace) -> PipelineView:
    """Every stage of ``conveyor.yaml`` with its state, and the DAG's layout."""
    from conveyor.pipeline._dag import Dag
    from conveyor.pipeline._freshness import Facts
    from conveyor.pipeline._live import live_run
    from conveyor.pipeline._lock import LOCK_FILE, Lock
    from conveyor.pipeline._spec import PIPELINE_FILE, load_pipeline
    from conveyor.pipeline._status import compute_status
    from conveyor.versioning._repo import Repo

    if not (ws.root / PIPELINE_FILE).is_file():
        return PipelineView([], None, None)
    try:
        pipeline = load_pipeline(ws)
        dag = Dag.build(pipeline)
        order = list(dag.order)
        lock = Lock.read(ws.root / LOCK_FILE, conveyor_dir=ws.conveyor_dir)
        with Repo(ws) as repo:
            status = {s.name: s for s in compute_status(dag, lock, Facts(repo), order).stages}
    except ConveyorError as exc:
        return PipelineView([], None, None, exc.format_message())
    live = live_run(ws.conveyor_dir)
    recorded: dict[str, str] = {}
    last = _latest_run(ws)
    if live is not None:
        current = _run_or_none(ws, live.run_id)
        recorded = {s.name: s.status for s in current.stages} if current is not None else {}
    elif last is not None:
        recorded = {s.name: s.status for s in last.stages if s.status in ("failed", "interrupted")}
    views = []
    for name in order:
        stage = dag.stage(name)
        st = status[name]
        state = "stale" if st.state in ("stale", "always-run") else st.state
        if live is not None and name in live.running:
            state = "running"
        elif recorded.get(name) == "failed" and state != "up-to-date":
            state = "failed"
        elif live is not None and name not in recorded and state == "stale":
            state = "queued"  # this run has yet to reach it
        elif live is not None and recorded.get(name) in ("ran", "restored", "up-to-date"):
            state = "up-to-date"
        kind = "check" if stage.call == CHECK_STAGE else ("call" if stage.call else "cmd")
        report = _report_of(stage) if kind == "check" else None
        views.append(StageView(name, state, [str(r) for r in st.reasons], kind, stage.command, report))
    drawn = layout(order, dag.upstream) if 0 < len(order) <= MAX_DRAWN else None
    return PipelineView(views, drawn, live.run_id if live is not None else None)


def _report_of(stage: Any) -> str | None:
    """A check stage's HTML report: the ``.html`` among its outputs."""
    return next((out.path for out in stage.outs if out.path.endswith(".html")), None)


def report_path(ws: Workspace, stage_name: str) -> Path | None:
    """The HTML report file of check stage ``stage_name``, if it exists (nothing else is served)."""
    from conveyor.pipeline._spec import load_pipeline

    try:
        stage = load_pipeline(ws).stages.get(stage_name)
    except ConveyorError:
        return None
    if stage is None or stage.call != CHECK_STAGE:
        return None
    rel = _report_of(stage)
    path = ws.root / rel if rel else None
    return path if path is not None and path.is_file() else None


# -- runs ------------------------------------------------------------------------------------


def _store(ws: Workspace) -> Any:
    from conveyor.store import RunStore

    return RunStore.open(ws, create=False)


def _latest_run(ws: Workspace) -> Any:
    with _store(ws) as store:
        runs = store.list_runs(limit=1)
    return runs[0] if runs else None


def _run_or_none(ws: Workspace, run_id: str) -> Any:
    with _store(ws) as store:
        runs = [r for r in store.list_runs(limit=5) if r.id == run_id]
    return runs[0] if runs else None


@dataclass
class RunsPage:
    runs: list[Any]
    total: int
    page: int
    pages: int
    param_keys: list[str]
    metric_keys: list[str]


def runs_page(
    ws: Workspace, *, status: str | None, search: str | None, sort: str, descending: bool, page: int
) -> RunsPage:
    """One page of runs (50), filtered and sorted in the database."""
    with _store(ws) as store:
        runs, total = store.query_runs(
            status=status or None,
            search=search or None,
            sort=sort,
            descending=descending,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
    for run in runs:  # nested params (a whole section of params.yaml) as one column per value
        run.params = flat(run.params)
    params = sorted({k for r in runs for k in r.params})
    metrics = sorted({k for r in runs for k in r.metrics})
    return RunsPage(runs, total, page, max(1, math.ceil(total / PAGE_SIZE)), params[:8], metrics[:8])


def run_detail(ws: Workspace, ref: str) -> tuple[Any, list[Any]]:
    """A run and the check results it recorded."""
    from conveyor.store._checks import recent_checks

    with _store(ws) as store:
        run = store.get_run(ref)
        checks = recent_checks(store.db, run_id=run.id, limit=200)
    return run, checks


@dataclass
class Row:
    key: str
    a: Any
    b: Any

    @property
    def differs(self) -> bool:
        return bool(self.a != self.b)


def compare(ws: Workspace, a: str, b: str) -> tuple[Any, Any, list[Row], list[Row], list[Row]]:
    """Two runs side by side: params, metrics and stages, each key once."""
    with _store(ws) as store:
        left, right = sorted((store.get_run(a), store.get_run(b)), key=lambda r: (r.started_at, r.id))  # older left

    def rows(x: dict[str, Any], y: dict[str, Any]) -> list[Row]:
        return [Row(k, x.get(k, "—"), y.get(k, "—")) for k in sorted(set(x) | set(y))]

    stages_a = {s.name: s.status for s in left.stages}
    stages_b = {s.name: s.status for s in right.stages}
    params = rows(flat(left.params), flat(right.params))
    return left, right, params, rows(flat(left.metrics), flat(right.metrics)), rows(stages_a, stages_b)


def flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"c": 1}}`` as ``{"train.c": 1}``: one row per value."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def metric_chart(ws: Workspace, key: str | None) -> tuple[list[str], str | None, Chart | None]:
    """The metric keys on record, the chosen one, and its values across runs."""
    with _store(ws) as store:
        keys = store.metric_keys()
        if not keys:
            return keys, None, None
        key = key if key in keys else keys[0]
        series = store.metric_series(key)
    points = [
        (at, value, f"{value:.6g} · run {run_id}" + (f" · {commit[:8]}" if commit else ""), f"/runs/{run_id}")
        for run_id, at, commit, value in series
    ]
    return keys, key, line_chart(points)


def checks_page(ws: Workspace, page: int) -> list[Any]:
    from conveyor.store._checks import recent_checks

    with _store(ws) as store:
        return list(recent_checks(store.db, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE))


# -- the registry and what serves -------------------------------------------------------------


def _registry(ws: Workspace) -> Any:
    from conveyor.registry import Registry

    return Registry.open(ws, create=False)


def models(ws: Workspace) -> list[Any]:
    with _registry(ws) as registry:
        return list(registry.models())


def model_detail(ws: Workspace, name: str) -> tuple[Any, list[Any], list[Any]]:
    """A model, its versions (newest first) and its alias history (newest first)."""
    with _registry(ws) as registry:
        info = registry.model(name)
        versions = list(reversed(registry.versions(name)))
        history = list(reversed(registry.history(name)))
    return info, versions, history


def version_detail(ws: Workspace, name: str, number: int) -> tuple[Any, list[Any]]:
    """A version, and the bundles built from it (newest first)."""
    with _registry(ws) as registry:
        version = registry.get(f"{name}:{number}")
        return version, registry.bundles(version)


@dataclass
class DeploymentView:
    model: str
    serving_alias: str
    candidate_alias: str
    status: dict[str, Any]
    versions: list[int]


def deployments(ws: Workspace) -> list[DeploymentView]:
    """For each model: what its serving alias and candidate point at, the server's live state
    (when ``deploy:`` names a server that answers) and the latest moves."""
    from conveyor.delivery._config import load_deploy_config
    from conveyor.delivery._deploy import deploy_status

    config = load_deploy_config(ws.root)
    views = []
    for info in models(ws):
        try:
            status = deploy_status(info.name, workspace=ws)
        except ConveyorError as exc:
            status = {"error": exc.format_message(), "aliases": info.aliases, "history": []}
        status["history"] = list(reversed(status.get("history") or []))
        with _registry(ws) as registry:
            numbers = [v.version for v in reversed(registry.versions(info.name))]
        views.append(DeploymentView(info.name, config.alias, config.rollout.candidate_alias, status, numbers))
    return views


def delivery_stats(ws: Workspace, bucket: str) -> tuple[Any, dict[str, Chart]]:
    """DORA metrics and their charts per bucket."""
    from conveyor.delivery import delivery_stats as compute

    stats = compute(ws, bucket=bucket)
    buckets = [(b.label, b.figures) for b in stats.buckets]
    charts = {
        "deployments": bar_chart(
            [(label, float(f.releases), f"{label}: {f.releases} releases") for label, f in buckets]
        ),
        "lead_time": bar_chart(
            [
                (label, (f.lead_time_median_s or 0) / 3600, f"{label}: median lead time {_hours(f.lead_time_median_s)}")
                for label, f in buckets
            ]
        ),
        "failure_rate": bar_chart(
            [
                (label, 100 * (f.change_failure_rate or 0), f"{label}: {f.failures} of {f.releases} rolled back")
                for label, f in buckets
            ]
        ),
    }
    return stats, charts


def _hours(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.1f} h"
