"""``conveyor import-dvc``: turn a DVC project's dvc.yaml into conveyor.yaml."""

from __future__ import annotations

import click

from conveyor.cli._render import plural, relative_to_cwd


def register(cli: click.Group) -> None:
    cli.add_command(import_dvc_cmd)


@click.command("import-dvc")
@click.argument("dvc_yaml", required=False, type=click.Path(readable=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(readable=False),
    help="Where to write (default: conveyor.yaml at the workspace root).",
)
@click.option("-f", "--force", is_flag=True, help="Replace an existing conveyor.yaml.")
@click.option("-n", "--dry-run", is_flag=True, help="Print the conveyor.yaml instead of writing it.")
def import_dvc_cmd(dvc_yaml: str | None, output: str | None, force: bool, dry_run: bool) -> None:
    """Translate DVC_YAML (default: dvc.yaml) into conveyor.yaml and report what does not carry over.

    Stages, vars, ${...} templates, foreach and matrix keep their shape. Anything conveyor
    cannot express is reported as a warning (on stderr) that names the line and what to do.
    """
    from pathlib import Path

    from conveyor.pipeline._import_dvc import import_dvc

    result = import_dvc(
        Path(dvc_yaml) if dvc_yaml else None,
        output=Path(output) if output else None,
        force=force,
        dry_run=dry_run,
    )
    if dry_run or result.written is None:
        click.echo(result.text, nl=False)
    else:
        click.echo(f"wrote {relative_to_cwd(str(result.written))} ({plural(result.stages, 'stage')})")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
