"""Remote commands: remote add/list/modify/remove, push, fetch, pull (status --remote and gc --remote in _data)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from conveyor.cli._render import human_size, plural

if TYPE_CHECKING:
    from conveyor.remote import TransferResult


def register(cli: click.Group) -> None:
    for command in (remote_group, push_cmd, fetch_cmd, pull_cmd):
        cli.add_command(command)


@click.group("remote")
def remote_group() -> None:
    """Name the places data, models and run results are shared through."""


@remote_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-d", "--default", "default", is_flag=True, help="Use it when no -r is given.")
@click.option("--local", is_flag=True, help="Keep it in .conveyor/config.local (not committed).")
@click.option("-f", "--force", is_flag=True, help="Replace a remote of that name.")
def remote_add_cmd(name: str, url: str, default: bool, local: bool, force: bool) -> None:
    """Add remote NAME at URL: a folder, s3://BUCKET/PREFIX, gs://, az://, ssh://, https:// (read-only)."""
    from conveyor.remote import remote_add

    remote = remote_add(name, url, default=default, local=local, force=force)
    where = ".conveyor/config.local" if local else ".conveyor/config"
    mark = " (default)" if remote.default else ""
    click.echo(f"added remote '{remote.name}'{mark}: {remote.url} (in {where})")


@remote_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the remotes as JSON.")
def remote_list_cmd(as_json: bool) -> None:
    """List the remotes; the default one is marked with *."""
    from conveyor.config import SECRET_OPTIONS
    from conveyor.remote import remote_list

    remotes = remote_list()
    if as_json:
        shown = [
            {
                "name": r.name,
                "url": r.url,
                "default": r.default,
                "options": {k: ("***" if k in SECRET_OPTIONS else v) for k, v in r.options.items()},
            }
            for r in remotes
        ]
        click.echo(json.dumps(shown, indent=2))
        return
    if not remotes:
        click.echo("No remotes yet; add one with 'conveyor remote add NAME URL --default'.")
    for remote in remotes:
        options = ", ".join(f"{k}={'***' if k in SECRET_OPTIONS else v}" for k, v in sorted(remote.options.items()))
        click.echo(
            f"{'*' if remote.default else ' '} {remote.name}\t{remote.url}" + (f"\t({options})" if options else "")
        )


@remote_group.command("modify")
@click.argument("name")
@click.argument("option")
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove the option.")
@click.option("--local", is_flag=True, help="Write it to .conveyor/config.local (required for secrets).")
def remote_modify_cmd(name: str, option: str, value: str | None, unset: bool, local: bool) -> None:
    """Set OPTION of remote NAME: url, endpoint_url, region, profile, jobs, access_key_id (--local), ..."""
    from conveyor.remote import remote_modify

    remote_modify(name, option, value, unset=unset, local=local)
    click.echo(f"{'unset' if unset else 'set'} {option} of remote '{name}'")


@remote_group.command("remove")
@click.argument("name")
def remote_remove_cmd(name: str) -> None:
    """Forget remote NAME (its data stays where it is)."""
    from conveyor.remote import remote_remove

    remote_remove(name)
    click.echo(f"removed remote '{name}'")


def _transfer_options(func: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        (
            click.argument("targets", nargs=-1),
            click.option("-r", "--remote", help="The remote to use (default: core.remote)."),
            click.option("-a", "--all-commits", is_flag=True, help="Also what every commit refers to."),
            click.option("--run-cache", is_flag=True, help="Also the run cache's entries and their outputs."),
            click.option("-j", "--jobs", type=int, help="Parallel transfers (default: 4 per CPU, at most 32)."),
            click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
        )
    ):
        func = option(func)
    return func


def _report(result: TransferResult, as_json: bool) -> None:
    if as_json:
        data = asdict(result)
        data["checkout"] = None if result.checkout is None else asdict(result.checkout)
        click.echo(json.dumps(data, indent=2))
        return
    verb = "pushed" if result.direction == "push" else "fetched"
    where = "to" if result.direction == "push" else "from"
    if result.objects:
        rate = result.bytes / result.seconds if result.seconds > 0 else 0.0
        click.echo(
            f"{verb} {plural(result.objects, 'object')} ({human_size(result.bytes)}) {where} '{result.remote}' "
            f"in {plural(result.requests, 'transfer')}, {result.seconds:.1f} s ({human_size(int(rate))}/s); "
            f"{result.present} already there"
        )
    elif not result.missing:
        side = "on" if result.direction == "push" else "here from"
        click.echo(f"Everything is up to date {side} '{result.remote}' ({plural(result.present, 'object')}).")
    if result.run_cache_entries:
        click.echo(f"{verb} {plural(result.run_cache_entries, 'run-cache entry', 'run-cache entries')}")
    if result.missing:
        where_missing = "in the local cache" if result.direction == "push" else f"on '{result.remote}'"
        click.echo(
            f"warning: {plural(len(result.missing), 'object')} not {where_missing}, so not {verb}",
            err=True,
        )


@click.command("push")
@_transfer_options
def push_cmd(
    targets: tuple[str, ...], remote: str | None, all_commits: bool, run_cache: bool, jobs: int | None, as_json: bool
) -> None:
    """Send data and outputs (all, or TARGETS) to a remote; only what it lacks moves."""
    from conveyor.remote import push

    result = push(list(targets) or None, remote=remote, all_commits=all_commits, run_cache=run_cache, jobs=jobs)
    _report(result, as_json)
    _fail_on_missing(result)


@click.command("fetch")
@_transfer_options
def fetch_cmd(
    targets: tuple[str, ...], remote: str | None, all_commits: bool, run_cache: bool, jobs: int | None, as_json: bool
) -> None:
    """Bring data and outputs (all, or TARGETS) from a remote into the cache, verified."""
    from conveyor.remote import fetch

    result = fetch(list(targets) or None, remote=remote, all_commits=all_commits, run_cache=run_cache, jobs=jobs)
    _report(result, as_json)
    _fail_on_missing(result)


@click.command("pull")
@_transfer_options
@click.option("-f", "--force", is_flag=True, help="Discard workspace changes that are not in the cache.")
def pull_cmd(
    targets: tuple[str, ...],
    remote: str | None,
    all_commits: bool,
    run_cache: bool,
    jobs: int | None,
    as_json: bool,
    force: bool,
) -> None:
    """Fetch, then check out: the workspace gets the data and outputs of the current commit."""
    from conveyor.remote import pull

    result = pull(
        list(targets) or None, remote=remote, all_commits=all_commits, run_cache=run_cache, jobs=jobs, force=force
    )
    _report(result, as_json)
    if not as_json and result.checkout is not None:
        placed = len(result.checkout.placed)
        click.echo(f"checked out {plural(placed, 'file')}")


def _fail_on_missing(result: TransferResult) -> None:
    """Everything else moved; still, a CI job must not pass when part of the data is nowhere."""
    if not result.missing:
        return
    from conveyor.errors import ObjectMissingError

    if result.direction == "push":
        raise ObjectMissingError(
            f"{plural(len(result.missing), 'object')} not in the local cache, so not pushed (e.g. {result.missing[0]})",
            hint="fetch or re-add the data they belong to, then push again; everything else was pushed",
        )
    raise ObjectMissingError(
        f"{plural(len(result.missing), 'object')} not on remote '{result.remote}' (e.g. {result.missing[0]})",
        hint="push them from a clone that has them",
    )
