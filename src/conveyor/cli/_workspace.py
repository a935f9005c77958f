"""Commands about the workspace itself: ``init`` and ``config``."""

from __future__ import annotations

import json

import click


def register(cli: click.Group) -> None:
    cli.add_command(init_cmd)
    cli.add_command(config_cmd)


@click.command("init")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--no-scm", is_flag=True, help="Allow a workspace outside git (no pointers in git, no diff).")
@click.option("-f", "--force", is_flag=True, help="Re-initialise an existing workspace's config.")
def init_cmd(path: str | None, no_scm: bool, force: bool) -> None:
    """Create a conveyor workspace at the top of a git repository."""
    from conveyor import init

    ws = init(path, no_scm=no_scm, force=force)
    click.echo(f"Initialised conveyor workspace in {ws.conveyor_dir}")
    if ws.has_scm:
        click.echo("Commit it with: git add .conveyor && git commit -m 'conveyor init'")


@click.command("config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@click.option("--local", is_flag=True, help="Write .conveyor/config.local (never committed).")
@click.option("--unset", is_flag=True, help="Remove KEY.")
@click.option("--json", "as_json", is_flag=True, help="Print all values as JSON.")
def config_cmd(key: str | None, value: str | None, local: bool, unset: bool, as_json: bool) -> None:
    """Show or set configuration: `config` lists, `config KEY` shows, `config KEY VALUE` sets."""
    from conveyor.config import check_key, set_value
    from conveyor.workspace import Workspace

    ws = Workspace.find()
    if key is None:
        values = ws.config.items()
        if as_json:
            masked = {k: _secret_hidden(k, v) for k, v in values.items()}
            click.echo(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in masked.items()}, indent=2))
            return
        for name, current in values.items():
            shown = _show(_secret_hidden(name, current))
            click.echo(f"{name} = {shown}    # {check_key(name).help}")  # remote.NAME.* too
        return
    if unset or value is not None:
        set_value(ws.conveyor_dir, key, None if unset else value, local=local)
        return
    check_key(key)
    click.echo(_show(_secret_hidden(key, ws.config.get(key))))


def _show(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _secret_hidden(name: str, value: object) -> object:
    """A config value as it may be printed: secrets of remotes and database passwords masked."""
    import re

    from conveyor.config import SECRET_OPTIONS

    if name.startswith("remote.") and name.rsplit(".", 1)[1] in SECRET_OPTIONS and value is not None:
        return "***"
    if name == "store.url" and isinstance(value, str):
        return re.sub(r"([?&]password=)[^&]*", r"\1***", re.sub(r"(//[^/@:]*:)[^/]+@", r"\1***@", value))
    return value
