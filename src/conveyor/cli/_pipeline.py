"""Pipeline commands: run, dag (and the stage part of status, in _data)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from conveyor._suggest import did_you_mean
from conveyor.cli._render import plural

if TYPE_CHECKING:
    from conveyor import Workspace
    from conveyor.pipeline import PipelineStatus, RunReport, StageResult


def register(cli: click.Group) -> None:
    for command in (run_cmd, dag_cmd):
        cli.add_command(command)


_SYMBOL = {
    "ran": "✔ ran",
    "restored": "♻ restored from the run cache",
    "up-to-date": "· up to date",
    "frozen": "· frozen",
    "failed": "✘ failed",
    "skipped": "- skipped",
    "interrupted": "✘ interrupted",
    "would-run": "▶ would run",
}


def _describe(result: StageResult, *, verbose: bool) -> str | None:
    status = result.status
    if status in ("up-to-date", "frozen") and not verbose:
        return None
    line = f"{_SYMBOL.get(status, status)}: {result.name}"
    if status == "ran":
        tries = f", {result.attempts} attempts" if result.attempts > 1 else ""
        where = f" on {result.worker}" if result.worker else ""
        line += f" ({result.duration:.2f} s{tries}{where})"
    if result.reasons and status in ("ran", "restored", "would-run"):
        line += " — " + "; ".join(result.reasons[:3])
        if len(result.reasons) > 3:
            line += f"; and {len(result.reasons) - 3} more"
    if result.error and status in ("failed", "skipped"):
        line += f" — {result.error}"
    return line


@click.command("run")
@click.argument("targets", nargs=-1)
@click.option("-f", "--force", is_flag=True, help="Run the selected stages even when up to date.")
@click.option("-s", "--single-stage", is_flag=True, help="Run only the named stages, not what they depend on.")
@click.option("--downstream", is_flag=True, help="Run the named stages and every stage that depends on them.")
@click.option("-n", "--dry-run", is_flag=True, help="Only show which stages would run, and why.")
@click.option("-j", "--jobs", type=int, help="Stages to run at once (default: the number of CPUs).")
@click.option("-k", "--keep-going", is_flag=True, help="After a failure, let independent stages finish.")
@click.option("--timeout", type=float, help="Seconds the whole run may take; then its stages are stopped (exit 1).")
@click.option("--no-run-cache", is_flag=True, help="Run stale stages even when the run cache has their outputs.")
@click.option("--pull", is_flag=True, help="First fetch the run cache and the stages' data from a remote.")
@click.option("-r", "--remote", help="With --pull or --executor: the remote (default: core.remote).")
@click.option(
    "--executor",
    metavar="dask://HOST:PORT",
    envvar="CONVEYOR_EXECUTOR",
    help="Run the stages on this Dask cluster (the dask extra); inputs and outputs travel through the remote.",
)
@click.option(
    "--verify", "verify", is_flag=True, help="Re-run up-to-date stages in a scratch area and compare outputs."
)
@click.option("-q", "--quiet", is_flag=True, help="Do not show the stages' own output (it still goes to their logs).")
@click.option("-v", "--verbose", is_flag=True, help="Also list the stages that were up to date.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def run_cmd(
    targets: tuple[str, ...],
    force: bool,
    single_stage: bool,
    downstream: bool,
    dry_run: bool,
    jobs: int | None,
    keep_going: bool,
    timeout: float | None,
    no_run_cache: bool,
    pull: bool,
    remote: str | None,
    executor: str | None,
    verify: bool,
    quiet: bool,
    verbose: bool,
    as_json: bool,
) -> None:
    """Bring the pipeline's outputs up to date, running only stages whose inputs changed.

    TARGETS are stage names or output paths; without them every stage is considered.
    """
    if verify:
        with _stop_on_sigterm():
            _verify(list(targets), jobs, as_json)
        return
    from conveyor.pipeline import StageFailedError, run

    def show(result: StageResult) -> None:
        line = _describe(result, verbose=verbose)
        if line is not None and not as_json:
            click.echo(line, err=result.status in ("failed", "skipped", "interrupted"))

    try:
        with _stop_on_sigterm():
            report = run(
                list(targets) or None,
                force=force,
                single_stage=single_stage,
                downstream=downstream,
                dry_run=dry_run,
                jobs=jobs,
                keep_going=keep_going,
                run_cache=not no_run_cache,
                pull=pull or (remote is not None and executor is None),
                remote=remote,
                quiet=quiet or as_json,
                on_stage=None if dry_run else show,
                timeout=timeout,
                executor=executor,
            )
    except StageFailedError as exc:
        failed_report: RunReport | None = getattr(exc, "report", None)
        if as_json and failed_report is not None:
            click.echo(json.dumps(_report_json(failed_report), indent=2))
        raise
    if as_json:
        click.echo(json.dumps(_report_json(report), indent=2))
        return
    if dry_run:
        for result in report.stages:
            line = _describe(result, verbose=verbose)
            if line is not None:
                click.echo(line)
        would = report.with_status("would-run")
        if not would:
            click.echo("Everything is up to date; nothing would run.")
        return
    ran, restored = report.with_status("ran"), report.with_status("restored")
    if not ran and not restored:
        click.echo(f"Everything is up to date ({plural(len(report.stages), 'stage')}).")
    else:
        parts = [f"ran {plural(len(ran), 'stage')}"] if ran else []
        if restored:
            parts.append(f"restored {plural(len(restored), 'stage')} from the run cache")
        click.echo(f"{', '.join(parts).capitalize()}; run {report.run_id}. Commit conveyor.lock to record the results.")


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP like Ctrl-C: stop the stages' process groups, keep the lock consistent.

    The stages run in sessions of their own, so a closed terminal's hangup does not reach them.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signals = (signal.SIGTERM, signal.SIGHUP)  # a cancelled job; a closed terminal or ssh session
    try:
        previous = [signal.signal(sig, interrupt) for sig in signals]
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in zip(signals, previous, strict=True):
            signal.signal(sig, handler)


def _report_json(report: RunReport) -> dict[str, object]:
    return {
        "run_id": report.run_id,
        "dry_run": report.dry_run,
        "ok": report.ok,
        "stages": [asdict(s) for s in report.stages],
    }


def _verify(targets: list[str], jobs: int | None, as_json: bool) -> None:
    from conveyor.errors import VerificationError
    from conveyor.pipeline import verify_reproducible

    results = verify_reproducible(targets or None, jobs=jobs)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for result in results:
            if result.reproducible:
                click.echo(f"✔ reproducible: {result.stage} ({result.duration:.2f} s)")
            elif result.error:
                click.echo(f"✘ could not verify: {result.stage} — {result.error}")
            else:
                click.echo(f"✘ NOT reproducible: {result.stage}")
                for path in result.differing:
                    click.echo(f"    {path}: differs from conveyor.lock")
        if not results:
            click.echo("No up-to-date stage to verify; run 'conveyor run' first.")
    bad = [r for r in results if not r.reproducible]
    if bad:
        raise VerificationError(
            f"{plural(len(bad), 'stage')} not reproducible: {', '.join(r.stage for r in bad[:5])}",
            hint="make them deterministic (fix random seeds, sort outputs, drop timestamps) and run again",
        )


@click.command("dag")
@click.argument("targets", nargs=-1)
@click.option("--mermaid", "fmt", flag_value="mermaid", help="Print a Mermaid flowchart.")
@click.option("--dot", "fmt", flag_value="dot", help="Print Graphviz DOT.")
def dag_cmd(targets: tuple[str, ...], fmt: str | None) -> None:
    """Draw the stage graph (all stages, or TARGETS and what they depend on)."""
    from conveyor.pipeline import dag

    click.echo(dag(list(targets) or None, fmt=fmt or "text"), nl=False)


def pipeline_part(workspace: Workspace, paths: list[str]) -> tuple[PipelineStatus | None, list[str]]:
    """The pipeline status for ``paths`` that name stages or stage outputs, and the other paths.

    Without ``conveyor.yaml`` there is no pipeline part and every path is data.
    """
    from conveyor.pipeline import Dag, load_pipeline
    from conveyor.pipeline import pipeline_status as stage_status
    from conveyor.pipeline._spec import PIPELINE_FILE

    if not (workspace.root / PIPELINE_FILE).is_file():
        return None, paths
    if not paths:
        return stage_status(workspace=workspace), []
    dag = Dag.build(load_pipeline(workspace))
    stage_targets: list[str] = []
    data: list[str] = []
    for path in paths:
        rel = path
        resolved = workspace.resolve_target(path, must_exist=False)
        if resolved.is_relative_to(workspace.root):
            rel = workspace.relpath(resolved)
        if path in dag.pipeline.stages or any(n.split("@", 1)[0] == path for n in dag.pipeline.stages):
            stage_targets.append(path)
        elif rel in dag.producers:
            stage_targets.append(rel)
        else:
            close = did_you_mean(path, dag.pipeline.stages)
            if close and not os.path.lexists(resolved):
                from conveyor.pipeline._yaml import SpecError

                raise SpecError(f"{path}: no such stage, output or tracked path", hint=close)
            data.append(path)
    if not stage_targets:
        return None, data
    return stage_status(stage_targets, workspace=workspace), data
