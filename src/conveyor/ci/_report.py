"""``conveyor report``: what a change does, for a pull-request comment.

One :class:`Report` gathers, for the workspace against a base revision (``main``):

- the **verdict** of the gates (check stages), from the run record of this commit: a check
  stage that failed is a failed gate; another stage that failed stopped the run before its
  gates; without a run of this commit, every stage up to date with ``conveyor.lock`` means the
  gates passed when the lock was written (a stage enters the lock only when it succeeds);
- the **metrics** and **params** that changed (``diff_metrics``/``diff_params``, unchanged);
- each **gate**'s checks, from the JSON report its stage wrote (when this run wrote it);
- the **plots**, drawn by ``diff_plots`` (base and workspace overlaid) into a folder of PNG
  files that the Markdown links to (or a URL they are published at).

:meth:`Report.to_markdown` renders it compactly: the verdict first, tables, ``<details>`` for
what is long, every user-written string escaped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from conveyor.ci import _markdown as md
from conveyor.errors import UsageError

if TYPE_CHECKING:
    from conveyor.pipeline._metrics import MetricDiff
    from conveyor.pipeline._params import ParamDiff
    from conveyor.pipeline._spec import Pipeline, Stage
    from conveyor.store._records import RunRecord, StageRecord
    from conveyor.workspace import Workspace

CHECK_CALL = "conveyor.checks._stage:run"  # what a check: stage of conveyor.yaml runs
WORKSPACE = "workspace"
MARKER = "<!-- conveyor report -->"  # the first line: lets a script find the comment again
ICONS = {"passed": "✅", "failed": "❌", "unknown": "⚪", "not run": "⏭️"}
CHECK_ICONS = {"pass": "✅", "warn": "⚠️", "fail": "❌", "error": "💥", "skipped": "⏭️"}
_RUNS_LOOKED_AT = 50  # recent runs searched for one of HEAD's commit


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The gates' verdict: ``status`` "passed", "failed" or "unknown" (nothing to judge by), a
    one-line ``summary``, and the gates (or stages) that ``failed``."""

    status: str
    summary: str
    failed: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Gate:
    """One check stage: ``status`` "passed", "failed" or "not run"; from its JSON report (when
    the run being reported wrote it, or it is up to date): the ``suite``, the ``counts`` of
    check statuses and the ``checks`` that did not pass; the stage's ``error`` from the run."""

    stage: str
    status: str
    suite: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    checks: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    report: str | None = None  # the stage's HTML report, workspace-relative


@dataclass(frozen=True)
class PlotImage:
    """One plots file as images: ``files`` are ``(label, PNG or image file)``; a data series is
    one chart with the base and the workspace overlaid, an image is one file per version."""

    path: str
    title: str
    kind: str  # "series" or "image"
    files: tuple[tuple[str, Path], ...]
    changed: bool
    absent: tuple[str, ...] = ()


@dataclass
class Report:
    """The workspace compared with a base revision, and the gates' verdict; see the module."""

    base: str  # the revision as given
    base_ref: str  # the revision compared with (``origin/main`` when ``main`` is not a local branch)
    base_commit: str
    head_commit: str | None
    verdict: Verdict
    run: RunRecord | None = None
    gates: list[Gate] = field(default_factory=list)
    metrics: list[MetricDiff] = field(default_factory=list)  # changed and unchanged
    params: list[ParamDiff] = field(default_factory=list)  # changed only
    plots: list[PlotImage] = field(default_factory=list)
    plots_dir: Path | None = None
    plots_index: Path | None = None  # the offline HTML page of every plot, with its data
    plots_url: str | None = None
    artifact_url: str | None = None
    has_metrics: bool = False
    has_plots: bool = False
    plots_error: str | None = None  # why the plots could not be drawn
    notes: list[str] = field(default_factory=list)

    def to_markdown(self, *, relative_to: str | os.PathLike[str] | None = None) -> str:
        """The report as Markdown; image links are relative to the folder ``relative_to``
        (where the Markdown file will be; default: the current directory) unless ``plots_url``."""
        return _render(self, Path(relative_to) if relative_to is not None else Path.cwd())

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (``conveyor report --json``)."""
        run = None
        if self.run is not None:
            run = {
                "id": self.run.id,
                "status": self.run.status,
                "commit": self.run.commit,
                "dirty": self.run.dirty,
                "stages": {s.name: s.status for s in self.run.stages},
            }
        return {
            "base": self.base,
            "base_ref": self.base_ref,
            "base_commit": self.base_commit,
            "head_commit": self.head_commit,
            "verdict": {"status": self.verdict.status, "summary": self.verdict.summary, "failed": self.verdict.failed},
            "run": run,
            "gates": [
                {
                    "stage": g.stage,
                    "status": g.status,
                    "suite": g.suite,
                    "counts": g.counts,
                    "checks": list(g.checks),
                    "error": g.error,
                    "report": g.report,
                }
                for g in self.gates
            ],
            "metrics": [
                {
                    "path": m.path,
                    "metric": m.key,
                    "old": m.old,
                    "new": m.new,
                    "status": m.status,
                    "change": m.change,
                    "change_pct": m.change_pct,
                }
                for m in self.metrics
            ],
            "params": [
                {"path": p.path, "param": p.param, "old": p.old, "new": p.new, "status": p.status} for p in self.params
            ],
            "plots": [
                {
                    "path": p.path,
                    "title": p.title,
                    "kind": p.kind,
                    "changed": p.changed,
                    "absent": list(p.absent),
                    "files": {label: str(file) for label, file in p.files},
                }
                for p in self.plots
            ],
            "plots_index": None if self.plots_index is None else str(self.plots_index),
            "notes": self.notes,
        }


# -- building it ----------------------------------------------------------------------------------


def build_report(
    *,
    base: str = "main",
    run: str | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    plots_url: str | None = None,
    artifact_url: str | None = None,
    workspace: Workspace | None = None,
) -> Report:
    """Compare the workspace with ``base`` (a branch, tag or commit; ``origin/BASE`` when
    ``base`` is not a local branch) and judge the gates by the run ``run`` (an id or a prefix;
    default: the latest run of HEAD's commit).

    With ``plots_dir``, the plots are drawn there as PNG files (base and workspace overlaid).
    ``plots_url``: where that folder will be published, for the Markdown's image links;
    ``artifact_url``: a page to download it from, linked instead of images (a pull-request
    comment cannot show the CI runner's files)."""
    from conveyor.pipeline._metrics import Version, declared_outs
    from conveyor.store._records import git_state
    from conveyor.workspace import Workspace

    ws = workspace or Workspace.find()
    if not ws.has_scm:
        raise UsageError(
            "a report compares with a git revision, and this workspace has no git",
            hint="use 'conveyor metrics show' and 'conveyor runs show latest'",
        )
    base_ref, base_commit = _resolve_base(ws, base)
    head_commit, _dirty = git_state(ws.root)
    old, new = Version(ws, base_ref), Version(ws, None)
    pipeline = new.pipeline()
    record, run_note = _pick_run(ws, run, head_commit)
    report = Report(
        base=base,
        base_ref=base_ref,
        base_commit=base_commit,
        head_commit=head_commit,
        verdict=Verdict("unknown", "not judged"),
        run=record,
        plots_url=plots_url.rstrip("/") if plots_url else None,
        artifact_url=artifact_url,
    )
    if base_ref != base:
        report.notes.append(f"'{base}' is not a local branch: compared with '{base_ref}'")

    check_stages = [s for s in (pipeline.stages.values() if pipeline is not None else ()) if s.call == CHECK_CALL]
    old_pipeline = old.pipeline()
    check_jsons = {_check_json(s) for s in check_stages}
    check_jsons |= {
        _check_json(s) for s in (old_pipeline.stages.values() if old_pipeline else ()) if s.call == CHECK_CALL
    }

    report.has_metrics = bool(declared_outs([old, new], "metric"))
    if report.has_metrics:
        report.metrics = _metrics(ws, base_ref, check_jsons, report.notes)
    report.params = _params(ws, base_ref, report.notes)
    stale = _stale(ws) if pipeline is not None else []
    report.gates = [_gate(ws, stage, record, stale) for stage in check_stages]
    report.verdict = _verdict(pipeline, record, report.gates, stale, report.notes)
    if run_note and report.verdict.status == "unknown":
        report.notes.insert(0, run_note)
    report.has_plots = bool(declared_outs([old, new], "plot"))
    if report.has_plots and plots_dir is not None:
        _plots(ws, base_ref, Path(plots_dir), report)
    report.notes.extend(p for p in old.problems + new.problems if p not in report.notes)
    return report


def report_markdown(
    *,
    base: str = "main",
    run: str | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    plots_url: str | None = None,
    artifact_url: str | None = None,
    relative_to: str | os.PathLike[str] | None = None,
    workspace: Workspace | None = None,
) -> str:
    """:func:`build_report`, rendered as Markdown (image links relative to ``relative_to``)."""
    built = build_report(
        base=base, run=run, plots_dir=plots_dir, plots_url=plots_url, artifact_url=artifact_url, workspace=workspace
    )
    return built.to_markdown(relative_to=relative_to)


def _resolve_base(ws: Workspace, base: str) -> tuple[str, str]:
    """``(the revision, its commit)``: ``base``, or ``origin/BASE`` as a CI clone has it."""
    from conveyor import _git

    name = base.strip()
    if name:
        for candidate in (name, f"origin/{name}"):
            try:
                return candidate, _git.resolve_rev(ws.root, candidate)
            except UsageError:
                continue
    raise UsageError(
        f"base revision '{base}' not found",
        hint="name a branch, tag or commit with --base; in CI, fetch the whole history (fetch-depth: 0)",
    )


def _check_json(stage: Stage) -> str:
    """The JSON report (a metrics file) a check stage writes: ``<reports>/<stage>.json``."""
    name = f"{stage.name}.json"
    for out in stage.outs:
        if out.kind == "metric" and PurePosixPath(out.path).name == name:
            return out.path
    return name


def _metrics(ws: Workspace, base_ref: str, check_jsons: set[str], notes: list[str]) -> list[MetricDiff]:
    """Every metric, changed or not; of a check stage's JSON report, only the measured ``values``
    (its timing and inputs change on every run and are no metric)."""
    from conveyor.pipeline._metrics import diff_metrics

    result = diff_metrics(base_ref, None, show_unchanged=True, workspace=ws)
    notes.extend(result.problems)
    return [row for row in result.rows if row.path not in check_jsons or row.key.startswith("values.")]


def _params(ws: Workspace, base_ref: str, notes: list[str]) -> list[ParamDiff]:
    from conveyor.pipeline._params import diff_params

    result = diff_params(base_ref, None, workspace=ws)
    notes.extend(result.problems)
    return list(result.rows)


# -- the run and the gates ------------------------------------------------------------------------


def _pick_run(ws: Workspace, ref: str | None, head: str | None) -> tuple[RunRecord | None, str | None]:
    """The run named ``ref``, or the latest of HEAD's commit; a note when only others exist."""
    from conveyor.store import RunStore

    with RunStore.open(ws, create=False) as store:
        if ref is not None:
            return store.get_run(ref), None
        runs = store.list_runs(limit=_RUNS_LOOKED_AT)
    for record in runs:
        if head is not None and record.commit == head:
            return record, None
    if runs:
        latest = runs[0]
        at = (latest.commit or "no commit")[:12]
        return None, (
            f"the latest recorded run ({latest.id}) was made at {at}, not at HEAD: its results are not this "
            f"change's (to judge by it anyway: --run {latest.id})"
        )
    return None, None


def _stage_status(record: RunRecord | None, name: str) -> StageRecord | None:
    if record is None:
        return None
    return next((s for s in record.stages if s.name == name), None)


def _stale(ws: Workspace) -> list[str]:
    """The stages of the workspace's pipeline that are not up to date with conveyor.lock."""
    from conveyor.pipeline._status import pipeline_status

    return [s.name for s in pipeline_status(workspace=ws).stale]


def _gate(ws: Workspace, stage: Stage, record: RunRecord | None, stale: list[str]) -> Gate:
    """A check stage's outcome: as the run recorded it; outside the run, up to date with the lock
    (which holds only stages that succeeded) is a pass."""
    ran = _stage_status(record, stage.name)
    if ran is None:
        status = "not run" if stage.name in stale else "passed"
    elif ran.status in ("failed", "interrupted"):
        status = "failed"
    elif ran.status in ("ran", "restored", "up-to-date", "frozen"):
        status = "passed"
    else:
        status = "not run"
    html = next((o.path for o in stage.outs if PurePosixPath(o.path).name == f"{stage.name}.html"), None)
    data = None if status == "not run" else _read_check_json(ws, _check_json(stage), ran)
    if data is None:
        return Gate(stage.name, status, error=ran.error if ran else None, report=html)
    checks = tuple(
        {
            "check": c.get("check"),
            "title": c.get("title") or c.get("check"),
            "status": c.get("status"),
            "summary": c.get("summary") or c.get("reason") or "",
            "conditions": [k for k in c.get("conditions") or [] if isinstance(k, dict) and k.get("status") != "pass"],
        }
        for c in data.get("checks") or []
        if isinstance(c, dict) and c.get("status") in ("fail", "warn", "error")
    )
    counts = {str(k): int(v) for k, v in (data.get("counts") or {}).items() if isinstance(v, int) and v}
    return Gate(stage.name, status, str(data.get("suite") or ""), counts, checks, ran.error if ran else None, html)


def _read_check_json(ws: Workspace, path: str, ran: StageRecord | None) -> dict[str, Any] | None:
    """A check stage's JSON report, if the run being reported wrote it (a stage that ran or failed)
    or vouches for it (up to date, restored)."""
    file = ws.root / path
    try:
        if ran is not None and ran.status in ("ran", "failed") and file.stat().st_mtime < ran.started_at - 1:
            return None  # an older run's: this one failed before writing it
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _verdict(
    pipeline: Pipeline | None, record: RunRecord | None, gates: list[Gate], stale: list[str], notes: list[str]
) -> Verdict:
    names = ", ".join(g.stage for g in gates)
    if pipeline is None:
        return Verdict("unknown", "not judged: there is no conveyor.yaml")
    if record is None:
        if stale:
            shown = ", ".join(stale[:5]) + (", …" if len(stale) > 5 else "")
            return Verdict("unknown", f"not judged: no run of this commit is recorded, and stages are stale: {shown}")
        if not gates:
            return Verdict("passed", "pipeline up to date; no gates (check stages) are declared")
        return Verdict("passed", f"{_plural(len(gates), 'gate')} passed: {names} (up to date with conveyor.lock)")
    failed_gates = tuple(g.stage for g in gates if g.status == "failed")
    if failed_gates:
        return Verdict(
            "failed", f"{_plural(len(failed_gates), 'gate')} failed: {', '.join(failed_gates)}", failed_gates
        )
    gate_names = {g.stage for g in gates}
    failed = tuple(s.name for s in record.stages if s.status in ("failed", "interrupted") and s.name not in gate_names)
    if failed:
        skipped = [g.stage for g in gates if g.status == "not run"]
        after = f"; the gates did not run: {', '.join(skipped)}" if skipped else ""
        return Verdict("failed", f"{_plural(len(failed), 'stage')} failed: {', '.join(failed)}{after}", failed)
    if record.status == "interrupted":
        return Verdict("failed", f"run {record.id} was interrupted")
    if record.status == "running":
        return Verdict("unknown", f"not judged: run {record.id} is still running")
    not_run = [g.stage for g in gates if g.status == "not run"]
    if not_run:
        return Verdict("unknown", f"not judged: {_plural(len(not_run), 'gate')} did not run: {', '.join(not_run)}")
    if stale:
        notes.append(
            f"{_count(len(stale), 'stage')} changed since run {record.id} ({', '.join(stale[:5])}): "
            "the verdict is that run's, the files are the workspace's"
        )
    if not gates:
        return Verdict("passed", "pipeline ran; no gates (check stages) are declared")
    return Verdict("passed", f"{_plural(len(gates), 'gate')} passed: {names}")


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


def _count(n: int, word: str) -> str:
    return f"{n} {_plural(n, word)}"


# -- plots ----------------------------------------------------------------------------------------


def _plots(ws: Workspace, base_ref: str, folder: Path, report: Report) -> None:
    """Draw the plots of the base and the workspace into ``folder`` (PNG, and diff_plots' page)."""
    from conveyor import _fs
    from conveyor.pipeline._plots import MissingDependencyError, PlotsError, diff_plots

    try:
        drawn = diff_plots((base_ref,), out_dir=folder, workspace=ws)
    except (MissingDependencyError, PlotsError) as exc:
        report.plots_error = exc.format_message()
        return
    report.plots_dir = folder if folder.is_absolute() else ws.base / folder
    report.plots_index = drawn.index
    report.notes.extend(p for p in drawn.problems if p not in report.notes)
    used: set[str] = set()
    for plot in drawn.plots:
        labels = {v.rev: (base_ref if v.rev == base_ref else WORKSPACE) for v in plot.versions}
        absent = tuple(base_ref if rev == base_ref else WORKSPACE for rev in plot.absent)
        if plot.kind == "image":
            files = []
            for version in plot.versions:
                name = _file_name(f"{plot.path}-{labels[version.rev]}", PurePosixPath(plot.path).suffix, used)
                target = report.plots_dir / name
                _fs.atomic_write_bytes(target, version.image or b"", sync="none")
                files.append((labels[version.rev], target))
            images = [v.image for v in plot.versions]
            changed = len(images) != 2 or images[0] != images[1]
            report.plots.append(PlotImage(plot.path, plot.title, "image", tuple(files), changed, absent))
            continue
        tables = [v.tables for v in plot.versions]
        changed = len(tables) != 2 or tables[0] != tables[1]
        chart = () if plot.png_file is None else ((f"{base_ref} vs {WORKSPACE}", plot.png_file),)
        report.plots.append(PlotImage(plot.path, plot.title, "series", chart, changed, absent))


def _file_name(stem: str, suffix: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "plot"
    name, n = f"{base}{suffix}", 1
    while name in used:
        n += 1
        name = f"{base}-{n}{suffix}"
    used.add(name)
    return name


# -- Markdown ------------------------------------------------------------------------------------


def _render(report: Report, here: Path) -> str:
    verdict = report.verdict
    headline = md.text(verdict.summary[:1].upper() + verdict.summary[1:])
    lines = [MARKER, f"## {ICONS[verdict.status]} {headline}", "", _context(report), ""]
    lines += _metrics_section(report)
    lines += _params_section(report)
    lines += _gates_section(report)
    lines += _plots_section(report, here)
    if report.notes:
        body = "\n".join(f"- {md.text(note)}" for note in report.notes)
        lines += [md.details(f"Notes ({len(report.notes)})", body), ""]
    return "\n".join(lines).rstrip() + "\n"


def _context(report: Report) -> str:
    head = f"HEAD {md.code(report.head_commit[:7])}" if report.head_commit else "no commit yet"
    base = f"{md.code(report.base_ref)} ({md.code(report.base_commit[:7])})"
    parts = [f"conveyor report: {md.code(WORKSPACE)} ({head}) against {base}"]
    run = report.run
    if run is not None:
        tally: dict[str, int] = {}
        for stage in run.stages:
            tally[stage.status] = tally.get(stage.status, 0) + 1
        counts = ", ".join(f"{n} {status}" for status, n in tally.items())
        seconds = f", {run.duration:.1f} s" if run.duration is not None else ""
        dirty = " with uncommitted changes" if run.dirty else ""
        parts.append(f"run {md.code(run.id)}{dirty}: {md.text(run.status)} ({md.text(counts)}{seconds})")
    return " · ".join(parts)


def _value(value: Any, present: bool) -> str:
    from conveyor.pipeline._metrics import format_value

    if not present:
        return "—"
    return "null" if value is None else md.text(format_value(value))


def _signed(value: float | int | None) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    return f"{value:+d}" if isinstance(value, int) else f"{value:+.5g}"


def _percent(value: float | None) -> str:
    if value is None:
        return "—"
    return "0%" if value == 0 else f"{value:+.3g}%"


def _metrics_table(report: Report, rows: Sequence[MetricDiff]) -> str:
    headers = ["Path", "Metric", md.code(report.base_ref), md.code(WORKSPACE), "Change", "Change %"]
    body = [
        [
            md.code(r.path),
            md.code(r.key),
            _value(r.old, r.status != "added"),
            _value(r.new, r.status != "deleted"),
            _signed(r.change),
            _percent(r.change_pct),
        ]
        for r in rows
    ]
    return md.table(headers, body, right=(2, 3, 4, 5))


def _metrics_section(report: Report) -> list[str]:
    if not report.has_metrics:
        return []
    changed = [r for r in report.metrics if r.changed]
    same = [r for r in report.metrics if not r.changed]
    lines = ["### Metrics", ""]
    if changed:
        lines += [_metrics_table(report, changed), ""]
    else:
        lines += [f"No metric changed ({_count(len(same), 'metric')}).", ""]
    if same:
        summary = f"{_count(len(same), 'metric')} unchanged" if changed else "Values"
        lines += [md.details(summary, _metrics_table(report, same)), ""]
    return lines


def _params_section(report: Report) -> list[str]:
    if not report.params:
        return ["### Params", "", "No param changed.", ""]
    headers = ["Path", "Param", md.code(report.base_ref), md.code(WORKSPACE)]
    body = [
        [md.code(r.path), md.code(r.param), _value(r.old, r.status != "added"), _value(r.new, r.status != "deleted")]
        for r in report.params
    ]
    return ["### Params", "", md.table(headers, body), ""]


def _gates_section(report: Report) -> list[str]:
    if not report.gates:
        return []
    rows = []
    for gate in report.gates:
        order = ("fail", "error", "warn", "pass", "skipped")
        tally = ", ".join(f"{gate.counts[k]} {k}" for k in order if gate.counts.get(k)) or "—"
        if gate.status == "failed" and not gate.counts:
            tally = gate.error or "the stage failed before its report was written"
        rows.append([ICONS[gate.status], md.code(gate.stage), md.text(tally)])
    lines = ["### Gates", "", md.table(["", "Check stage", "Checks"], rows), ""]
    for gate in report.gates:
        if not gate.checks:
            continue
        worst = sum(1 for c in gate.checks if c["status"] in ("fail", "error"))
        warned = len(gate.checks) - worst
        said = [f"{worst} failed" if worst else "", f"{warned} warned" if warned else ""]
        summary = f"{ICONS[gate.status]} {md.html_text(gate.stage)}: {', '.join(s for s in said if s)}"
        body = [md.table(["", "Check", "Result"], [_check_row(c) for c in gate.checks])]
        conditions = [_condition_line(c, k) for c in gate.checks for k in c["conditions"]]
        if conditions:
            body += ["", *conditions]
        if gate.report:
            body += ["", f"Full report: {md.code(gate.report)}"]
        lines += [md.details(summary, "\n".join(body)), ""]
    return lines


def _check_row(check: dict[str, Any]) -> list[str]:
    return [CHECK_ICONS.get(str(check["status"]), "?"), md.text(check["title"]), md.text(check["summary"])]


def _condition_line(check: dict[str, Any], condition: dict[str, Any]) -> str:
    value = condition.get("value")
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    icon = CHECK_ICONS.get(str(condition.get("status")), "?")
    name = md.code(f"{check['check']}.{condition.get('name')}")
    return f"- {icon} {name}: {md.text(condition.get('description') or '')} (value {md.text(shown)})"


def _plots_section(report: Report, here: Path) -> list[str]:
    if not report.has_plots:
        return []
    lines = ["### Plots", ""]
    if report.plots_error is not None:
        return [*lines, f"Not drawn: {md.text(report.plots_error)}", ""]
    if report.plots_dir is None:
        return []  # not asked for
    changed = [p for p in report.plots if p.changed]
    same = [p for p in report.plots if not p.changed]
    if report.artifact_url and not report.plots_url:
        listed = "\n".join(
            f"- {md.text(p.title)} ({md.code(p.path)}){'' if p.changed else ', unchanged'}: "
            + ", ".join(md.code(_link(report, f, here)) for _, f in p.files)
            for p in report.plots
        )
        lines += [
            f"{_count(len(report.plots), 'plot')} ({len(changed)} changed), drawn as PNG files into the report's "
            f"artifact: download it from [the CI run]({_url(report.artifact_url)}).",
            "",
            listed,
            "",
        ]
        return lines
    for plot in changed:
        lines += _plot_block(report, plot, here)
    if same:
        body = "\n".join(line for plot in same for line in _plot_block(report, plot, here))
        lines += [md.details(f"{_count(len(same), 'plot')} unchanged", body), ""]
    if report.plots_index is not None and not report.plots_url:
        index = f"[{md.text(report.plots_index.name)}]({_link(report, report.plots_index, here)})"
        lines += [f"Every plot with its data: {index}", ""]
    return lines


def _plot_block(report: Report, plot: PlotImage, here: Path) -> list[str]:
    heading = f"**{md.text(plot.title)}** ({md.code(plot.path)})"
    if plot.absent:
        heading += f": not in {md.text(', '.join(plot.absent))}"
    if not plot.files:
        return [heading, "", "Nothing to draw.", ""]
    if plot.kind == "series":
        label, file = plot.files[0]
        return [heading, "", f"![{md.text(plot.title)}: {md.text(label)}]({_link(report, file, here)})", ""]
    headers = [md.code(label) for label, _ in plot.files]
    cells = [f"![{md.text(plot.title)}: {md.text(label)}]({_link(report, file, here)})" for label, file in plot.files]
    return [heading, "", md.table(headers, [cells]), ""]


def _link(report: Report, file: Path, here: Path) -> str:
    """Where the Markdown finds ``file``: under ``plots_url``, or relative to the Markdown's folder."""
    if report.plots_url and report.plots_dir is not None:
        try:
            rel = file.relative_to(report.plots_dir).as_posix()
        except ValueError:
            rel = file.name
        return _url(f"{report.plots_url}/{quote(rel)}")
    rel = os.path.relpath(file, here)
    return quote(Path(rel).as_posix())


def _url(url: str) -> str:
    """A URL as a Markdown link destination: spaces and parentheses would end it."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("<", "%3C").replace(">", "%3E")
