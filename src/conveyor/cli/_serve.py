"""The model server: ``conveyor serve NAME@ALIAS``."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    cli.add_command(serve_cmd)


@click.command("serve")
@click.argument("ref", metavar="NAME@ALIAS|NAME:VERSION")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="The port.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--max-body", type=click.IntRange(min=1), help="The largest request body, in bytes (10 MiB).")
def serve_cmd(ref: str, host: str, port: int, workers: int, max_body: int | None) -> None:
    """Serve a registered model over HTTP: Open Inference Protocol v2 (/v2/...) and MLflow's
    scoring protocol (/invocations), every request checked against the model's signature."""
    from conveyor.serving import serve

    click.echo(f"serving {ref} on http://{host}:{port} (Ctrl-C stops)", err=True)
    serve(ref, host=host, port=port, workers=workers, max_body=max_body)
