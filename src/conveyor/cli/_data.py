"""Data versioning commands: add, status, checkout, diff, gc, verify, unprotect."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from conveyor.cli._render import human_size, plural, relative_to_cwd

if TYPE_CHECKING:
    from conveyor.versioning import StatusReport


def register(cli: click.Group) -> None:
    for command in (add_cmd, status_cmd, checkout_cmd, diff_cmd, gc_cmd, verify_cmd, unprotect_cmd):
        cli.add_command(command)


@click.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
def add_cmd(paths: tuple[str, ...]) -> None:
    """Track files or folders: cache their content and write PATH.cvy pointers for git."""
    import shlex

    from conveyor import Workspace, add

    workspace = Workspace.find()
    results = add(list(paths), workspace=workspace)
    for result in results:
        files = f", {plural(result.files, 'file')}" if result.kind == "dir" else ""
        new = plural(result.objects_written, "new object")
        click.echo(f"added {result.path} ({human_size(result.size)}{files}, {new})")
    if workspace.has_scm:
        to_commit = sorted({p for r in results for p in (r.pointer_file, r.gitignore) if p})
        click.echo(f"Commit them with git: git add {' '.join(shlex.quote(relative_to_cwd(p)) for p in to_commit)}")


@click.command("status")
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; exit 1 when anything changed.")
@click.option(
    "--remote",
    "against_remote",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[NAME]",
    help="Compare with a remote (default: core.remote) instead: what is not pushed or fetched.",
)
@click.option("-r", "remote_name", metavar="NAME", help="The same as --remote NAME.")
@click.option("-a", "--all-commits", is_flag=True, help="With --remote: what every commit refers to.")
def status_cmd(
    paths: tuple[str, ...],
    as_json: bool,
    quiet: bool,
    against_remote: str | None,
    remote_name: str | None,
    all_commits: bool,
) -> None:
    """Show stale pipeline stages (and why), and tracked data that changed or is missing.

    PATHS are stage names, stage outputs or tracked paths; without them everything is shown.
    With --remote: what is not yet pushed to, or not yet fetched from, a remote.
    """
    if against_remote is not None or remote_name:
        _remote_status(list(paths), remote_name or against_remote or None, all_commits, as_json, quiet)
        return
    from conveyor import Workspace, status
    from conveyor.cli._pipeline import pipeline_part

    workspace = Workspace.find()
    stages, data_paths = pipeline_part(workspace, list(paths))
    targets: list[str | os.PathLike[str]] | None = list(data_paths) or None
    report = status(targets, workspace=workspace) if (data_paths or not paths) else None
    if as_json:
        document: dict[str, object] = {}
        if stages is not None:
            document["stages"] = [
                {"name": s.name, "state": s.state, "reasons": [{"kind": r.kind, "detail": r.detail} for r in s.reasons]}
                for s in stages.stages
            ]
        if report is not None:
            document["tracked"] = report.tracked
            document["changed"] = [asdict(c) for c in report.changed]
        click.echo(json.dumps(document, indent=2))
    elif not quiet:
        if stages is not None:
            for entry in stages.stale:
                click.echo(f"{entry.state}: {entry.name}")
                for reason in entry.reasons:
                    click.echo(f"    {reason.detail}")
            fresh = len(stages.stages) - len(stages.stale)
            kinds = {r.kind for s in stages.stale for r in s.reasons}
            if kinds & {"out-missing", "out-changed"}:
                click.echo("(after a git checkout, 'conveyor checkout' restores the outputs conveyor.lock records)")
            if stages.clean:
                click.echo(f"Pipeline is up to date ({plural(len(stages.stages), 'stage')}).")
            else:
                click.echo(f"({fresh} up to date; bring the rest up to date with 'conveyor run')")
        if report is not None and (report.tracked or stages is None):
            _print_data_status(report)
    stale = stages is not None and not stages.clean
    if quiet and (stale or (report is not None and not report.clean)):
        click.get_current_context().exit(1)


def _remote_status(paths: list[str], remote: str | None, all_commits: bool, as_json: bool, quiet: bool) -> None:
    from conveyor.remote import remote_status

    report = remote_status(paths or None, remote=remote, all_commits=all_commits)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
    elif not quiet:
        for entry in report.entries:
            click.echo(f"{entry.state}: {entry.path} ({plural(entry.objects, 'object')})")
        if report.clean:
            click.echo(f"Everything is on '{report.remote}' and here ({plural(report.objects, 'object')}).")
        states = {e.state for e in report.entries}
        if states & {"not pushed", "partly pushed"}:
            click.echo(f"(send them with 'conveyor push -r {report.remote}')")
        if "not fetched" in states:
            click.echo(f"(get them with 'conveyor pull -r {report.remote}')")
    if quiet and not report.clean:
        click.get_current_context().exit(1)


def _print_data_status(report: StatusReport) -> None:
    if report.clean:
        click.echo(f"Data and pointers are in sync ({report.tracked} tracked).")
    for entry in report.changed:
        click.echo(f"{entry.state}: {entry.path}")
        for label, files in (("new", entry.added), ("deleted", entry.deleted), ("modified", entry.modified)):
            for name in files:
                click.echo(f"    {label}: {entry.path}/{name}")
    hints = {c.state for c in report.changed}
    if "modified" in hints:
        click.echo("(record changes with 'conveyor add PATH'; restore the recorded data with 'conveyor checkout PATH')")
    if "missing" in hints:
        click.echo("(use 'conveyor checkout' to restore missing data)")


@click.command("checkout")
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("-f", "--force", is_flag=True, help="Discard workspace changes that are not in the cache.")
@click.option("--relink", is_flag=True, help="Re-place every file, even unchanged ones (after changing cache.link).")
def checkout_cmd(paths: tuple[str, ...], force: bool, relink: bool) -> None:
    """Make the workspace match the pointer files (after a git checkout, say)."""
    from conveyor import checkout

    result = checkout(list(paths) if paths else None, force=force, relink=relink)
    click.echo(f"{len(result.placed)} placed, {len(result.removed)} removed, {result.unchanged} unchanged")


@click.command("diff")
@click.argument("a_rev", required=False)
@click.argument("b_rev", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the changes as JSON.")
def diff_cmd(a_rev: str | None, b_rev: str | None, as_json: bool) -> None:
    """List data files added, modified and deleted from A_REV (HEAD) to B_REV (the workspace)."""
    from conveyor import diff

    result = diff(a_rev, b_rev)
    if as_json:
        changes = [asdict(c) for c in result.changes]
        click.echo(json.dumps({"old": result.old, "new": result.new, "changes": changes}, indent=2))
        return
    if not result.changes:
        click.echo(f"No data changes between {result.old} and {result.new}.")
    for change in result.changes:
        click.echo(f"{change.change:<9} {change.path}")
    for folder in result.unexpanded:
        click.echo(f"(folder {folder} shown whole: its manifest is not in the cache)", err=True)


@click.command("gc")
@click.option("-a", "--all-commits", is_flag=True, help="Keep objects any commit of any branch or tag references.")
@click.option("-n", "--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--no-run-cache", is_flag=True, help="Also remove outputs only the run cache still refers to.")
@click.option(
    "--remote",
    "on_remote",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[NAME]",
    help="Clean a remote (default: core.remote) instead of the local cache.",
)
@click.option("-r", "remote_name", metavar="NAME", help="The same as --remote NAME.")
@click.option("-y", "--yes", is_flag=True, help="With --remote: delete without asking (for CI).")
def gc_cmd(
    all_commits: bool, dry_run: bool, no_run_cache: bool, on_remote: str | None, remote_name: str | None, yes: bool
) -> None:
    """Remove cache objects nothing references (the workspace, or with -a, git history).

    Pointer files, conveyor.lock and the pipeline's run cache count as references. With
    --remote, the same on a remote, after a summary and a confirmation (or --yes).
    """
    if on_remote is not None or remote_name:
        _remote_gc(remote_name or on_remote or None, all_commits, dry_run, not no_run_cache, yes)
        return
    from conveyor import gc

    result = gc(all_commits=all_commits, dry_run=dry_run, run_cache=not no_run_cache)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {plural(result.removed, 'object')} ({human_size(result.removed_bytes)}), kept {result.kept}")


def _remote_gc(remote: str | None, all_commits: bool, dry_run: bool, run_cache: bool, yes: bool) -> None:
    import sys

    from conveyor.remote import RemoteGcPlan, remote_gc

    def confirm(plan: RemoteGcPlan) -> bool:
        _print_remote_plan(plan)
        if not plan.dead_objects and not plan.strays:
            return False
        if yes:
            return True
        if not sys.stdin.isatty():
            from conveyor.errors import UsageError

            raise UsageError(
                f"not deleting anything on '{plan.remote}' without a confirmation",
                hint="pass --yes to delete (for CI), or run it in a terminal",
            )
        return click.confirm(f"Delete these from '{plan.remote}'?", default=False)

    plan = remote_gc(remote=remote, all_commits=all_commits, run_cache=run_cache, dry_run=dry_run, confirm=confirm)
    if dry_run:
        _print_remote_plan(plan)
        click.echo("(dry run: nothing deleted)")
    elif plan.done:
        leftovers = f" and {plural(len(plan.strays), 'leftover upload')}" if plan.strays else ""
        click.echo(f"removed {plural(plan.dead_objects, 'object')}{leftovers} from '{plan.remote}'")
    elif not plan.dead_objects and not plan.strays:
        click.echo(f"nothing to remove on '{plan.remote}'")
    else:
        click.echo("nothing deleted")


def _print_remote_plan(plan: object) -> None:
    from conveyor.remote import RemoteGcPlan

    assert isinstance(plan, RemoteGcPlan)
    click.echo(
        f"'{plan.remote}': {plural(plan.dead_objects, 'object')} ({human_size(plan.dead_bytes)}) referenced by "
        f"nothing kept, {plan.kept_objects} kept; {len(plan.delete_packs)} pack(s) to delete, "
        f"{len(plan.rewrite_packs)} to rewrite, {len(plan.strays)} leftover upload(s)"
    )


@click.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_cmd(as_json: bool) -> None:
    """Re-hash every cache object and tracked file; exit 1 if any object is corrupt or missing."""
    from conveyor import verify
    from conveyor.errors import VerificationError

    report = verify()
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
    else:
        click.echo(f"checked {report.objects_checked} cache objects and {report.files_checked} workspace files")
        for path in report.corrupt_objects:
            click.echo(f"corrupt object: {path}")
        for needed in report.missing_objects:
            click.echo(f"missing object: {needed}")
        for path in report.stale_state:
            click.echo(f"stale state entry (fixed): {path}")
        for path in report.modified:
            click.echo(f"modified since added: {path}")
    if report.corrupt_objects:
        raise VerificationError(
            f"{len(report.corrupt_objects)} corrupt cache object(s)",
            hint="delete them and restore the data with 'conveyor add' or a fetch",
        )
    if report.missing_objects:
        raise VerificationError(
            f"{len(report.missing_objects)} object(s) the pointers need are not in the cache",
            hint="re-add the data where it still exists, or fetch it from a remote",
        )


@click.command("unprotect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(readable=False))
def unprotect_cmd(paths: tuple[str, ...]) -> None:
    """Replace links into the cache by writable copies, so the files can be edited."""
    from conveyor import unprotect

    for path in unprotect(list(paths)):
        click.echo(f"unprotected {path}")
