"""``conveyor ui``: the dashboard."""

from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    cli.add_command(ui_cmd)


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8500, show_default=True, help="The port.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File holding the token actions need ($CONVEYOR_UI_TOKEN, else a new one is printed).",
)
def ui_cmd(host: str, port: int, token_file: str | None) -> None:
    """Serve the dashboard: the pipeline (live while a run is in progress), runs, metrics,
    checks, the model registry, deployments and delivery metrics.

    Pages are read-only and open on loopback; promoting and rolling back need the token
    (on another address, every page does). Every asset ships with conveyor: it works offline.
    """
    from conveyor.errors import MissingFileError
    from conveyor.ui import serve_ui

    token = None
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MissingFileError(f"token file {token_file}: {exc.strerror}", hint="write the token into it") from None

    def ready(url: str, secret: str) -> None:
        click.echo(f"Dashboard: {url}  (Ctrl-C stops it)")
        if token is None:
            click.echo(f"Actions (promote, roll back) need this token: {secret}")

    serve_ui(host=host, port=port, token=token, on_ready=ready)
