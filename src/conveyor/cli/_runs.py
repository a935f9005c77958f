"""Run records: ``conveyor runs list``, ``runs show``, ``runs compare``."""

from __future__ import annotations

import json

import click

_STATUSES = ("running", "succeeded", "failed", "interrupted")  # conveyor.store.RUN_STATUSES, without importing it


def register(cli: click.Group) -> None:
    cli.add_command(runs_group)


@click.group("runs")
def runs_group() -> None:
    """Show the records of past runs: list them, show one, compare two."""


@runs_group.command("list")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show this many runs.")
@click.option("-a", "--all", "show_all", is_flag=True, help="Show every run.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only runs with this status.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def list_cmd(limit: int, show_all: bool, status: str | None, as_json: bool) -> None:
    """List runs, newest first: status, commit, stages and the first metrics."""
    from dataclasses import asdict

    from conveyor import Workspace
    from conveyor.cli._render import plural
    from conveyor.store import RunStore
    from conveyor.store._report import runs_table

    with RunStore.open(Workspace.find(), create=False) as store:
        runs = store.list_runs(limit=None if show_all else limit, status=status)
        total = store.count_runs(status=status)
        everything = store.count_runs() if status else total
    if as_json:
        click.echo(json.dumps([asdict(run) for run in runs], indent=2))
        return
    if not runs:
        if everything:
            click.echo(f"No {status} runs ({plural(everything, 'run')} recorded).")
        else:
            click.echo("No runs recorded yet; 'conveyor run' records one.")
        return
    for line in runs_table(runs):
        click.echo(line)
    if total > len(runs):
        click.echo(f"({len(runs)} of {total} runs shown; --all shows every one)")


@runs_group.command("show")
@click.argument("ref", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
def show_cmd(ref: str, as_json: bool) -> None:
    """Show everything recorded of RUN (an id, a unique prefix of one, or 'latest')."""
    from dataclasses import asdict

    from conveyor import Workspace
    from conveyor.store import RunStore
    from conveyor.store._report import run_lines

    with RunStore.open(Workspace.find(), create=False) as store:
        run = store.get_run(ref)
    if as_json:
        click.echo(json.dumps(asdict(run), indent=2))
        return
    for line in run_lines(run):
        click.echo(line)


@runs_group.command("compare")
@click.argument("refs", nargs=-1, metavar="[A [B]]")
@click.option("-a", "--all", "all_params", is_flag=True, help="Show every param, not only those that differ.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_cmd(refs: tuple[str, ...], all_params: bool, as_json: bool) -> None:
    """Compare params, metrics and stage durations of run A with run B.

    With no runs named: the latest run against the one before it. With one: that run
    against the latest.
    """
    from conveyor import Workspace
    from conveyor.errors import UsageError
    from conveyor.store import RunStore, compare_runs
    from conveyor.store._report import comparison_lines

    if len(refs) > 2:
        raise UsageError(f"compare takes at most two runs, got {len(refs)}", hint="name run A and run B")
    with RunStore.open(Workspace.find(), create=False) as store:
        if len(refs) == 0:
            latest = store.list_runs(limit=2)
            if len(latest) < 2:
                raise UsageError(
                    f"compare needs two runs, and {len(latest)} {'is' if len(latest) == 1 else 'are'} recorded",
                    hint="'conveyor run' records one",
                )
            a, b = latest[1], latest[0]
        else:
            a = store.get_run(refs[0])
            b = store.get_run(refs[1] if len(refs) == 2 else "latest")
    comparison = compare_runs(a, b)
    if as_json:
        click.echo(json.dumps(comparison.to_json(all_params=all_params), indent=2))
        return
    for line in comparison_lines(comparison, all_params=all_params):
        click.echo(line)
