"""``conveyor build``: a deployable bundle of a registered version."""

from __future__ import annotations

import json

import click


def register(cli: click.Group) -> None:
    cli.add_command(build_cmd)


@click.command("build")
@click.argument("ref", metavar="NAME@ALIAS|NAME:VERSION")
@click.option("-o", "--output", type=click.Path(), help="The bundle's folder (bundles/NAME-VERSION); DIR.tar.gz too.")
@click.option("--image", help="The container image the manifests run (NAME:vVERSION).")
@click.option("--base-image", help="The Dockerfile's base image (python:X.Y.Z-slim, the training run's Python).")
@click.option(
    "--current-env",
    is_flag=True,
    help="Pin this environment's packages, for a version whose run recorded none.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build_cmd(
    ref: str, output: str | None, image: str | None, base_image: str | None, current_env: bool, as_json: bool
) -> None:
    """Build a deployable bundle of a registered version: the model (hash-verified), its
    signature and lineage, the exact packages it was trained with (requirements.lock), an entry
    point that serves it from the bundle alone (serve.py), a Dockerfile, Kubernetes manifests
    and a KServe InferenceService. Writes a folder and the same as a reproducible .tar.gz whose
    SHA-256 is recorded on the version."""
    from conveyor.build import build_bundle

    bundle = build_bundle(ref, output, image=image, base_image=base_image, current_environment=current_env)
    if as_json:
        click.echo(json.dumps(bundle.to_json(), indent=2))
        return
    from_run = sum(1 for p in bundle.pins if p.origin == "run")
    click.echo(f"built {bundle.ref}: {bundle.folder}")
    click.echo(f"  archive:  {bundle.archive} ({bundle.size:,} bytes)")
    click.echo(f"  sha256:   {bundle.sha256} (recorded on {bundle.ref})")
    click.echo(
        f"  packages: {len(bundle.pins)} pinned, {from_run} at the training run's versions, plus conveyor's wheel"
    )
    click.echo(f"  serve it: cd {bundle.folder} && python serve.py   (or docker build, kubectl apply -f k8s/)")
