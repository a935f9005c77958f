"""The model server and its rollouts: ``conveyor serve`` and ``conveyor deploy status|promote|rollback``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click


def register(cli: click.Group) -> None:
    cli.add_command(serve_cmd)
    cli.add_command(deploy_group)


def _token(path: str | None, what: str) -> str | None:
    if path is None:
        return None
    from conveyor.errors import MissingFileError, UsageError

    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise MissingFileError(f"{what} token file {path}: {exc.strerror}", hint="write the token into it") from None
    if len(token) < 16:
        raise UsageError(
            f"{what} token file {path}: the token is shorter than 16 characters",
            hint="use a long random one: openssl rand -hex 32 > FILE",
        )
    return token


@click.command("serve")
@click.argument("ref", metavar="NAME@ALIAS|NAME:VERSION", required=False)
@click.option(
    "--bundle",
    type=click.Path(file_okay=False),
    help="Serve the bundle in this folder ('conveyor build'), with no registry or workspace.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="The port.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--max-body", type=click.IntRange(min=1), help="The largest request body, in bytes (10 MiB).")
@click.option("--poll", type=float, default=0.5, show_default=True, help="Seconds between looks at the registry.")
@click.option("--mode", type=click.Choice(["canary", "shadow"]), help="How a candidate is tried (deploy: rollout:).")
@click.option("--canary-share", type=float, help="Share of requests a canary answers (0.1).")
@click.option("--window", type=click.IntRange(min=1), help="Candidate requests judged before its verdict (200).")
@click.option("--candidate-alias", help="The alias that puts a version on trial (canary).")
@click.option("--max-error-rate", type=float, help="Objective: the candidate's largest error rate (0.01).")
@click.option("--max-p99-ms", type=float, help="Objective: the candidate's largest p99 latency, in ms.")
@click.option("--max-disagreement", type=float, help="Objective (shadow): largest share of differing predictions.")
@click.option("--no-auto-promote", is_flag=True, help="A candidate that passes waits for 'conveyor deploy promote'.")
@click.option("--log-dir", type=click.Path(file_okay=False), help="Request logs (.conveyor/serving/NAME/requests).")
@click.option("--log-sample", type=float, default=0.1, show_default=True, help="Share of requests logged; 0: off.")
@click.option("--access-log", default="-", show_default=True, help="JSON access log: '-' (stderr) or a file.")
@click.option("--no-access-log", is_flag=True, help="No access log.")
@click.option("--admin-token-file", type=click.Path(dir_okay=False), help="Token the admin endpoints require.")
@click.option("--predict-token-file", type=click.Path(dir_okay=False), help="Token prediction endpoints require.")
@click.option(
    "--allow-env-mismatch",
    is_flag=True,
    help="Serve (with a warning) a version trained with other versions of the packages it loads with.",
)
def serve_cmd(
    ref: str | None,
    bundle: str | None,
    host: str,
    port: int,
    workers: int,
    max_body: int | None,
    poll: float,
    mode: str | None,
    canary_share: float | None,
    window: int | None,
    candidate_alias: str | None,
    max_error_rate: float | None,
    max_p99_ms: float | None,
    max_disagreement: float | None,
    no_auto_promote: bool,
    log_dir: str | None,
    log_sample: float,
    access_log: str,
    no_access_log: bool,
    admin_token_file: str | None,
    predict_token_file: str | None,
    allow_env_mismatch: bool,
) -> None:
    """Serve a registered model over HTTP: Open Inference Protocol v2 (/v2/...) and MLflow's
    scoring protocol (/invocations), every request checked against the model's signature.

    NAME@ALIAS follows the alias: when it moves, the new version is loaded, warmed up and
    swapped in without failing a request. A version on the candidate alias (canary) is tried
    on live traffic and promoted, or rolled back when it breaks its objectives.
    """
    from conveyor.errors import UsageError

    environment = "warn" if allow_env_mismatch else "refuse"
    if (ref is None) == (bundle is None):
        raise UsageError(
            "serve needs a registered version or a bundle, not both"
            if ref
            else "serve needs a registered version or --bundle DIR",
            hint="conveyor serve iris@production, or conveyor serve --bundle bundles/iris-3",
        )
    if bundle is not None:
        from conveyor.build import serve_bundle

        ignored = [o for o, v in (("--workers", workers != 1), ("--mode", mode), ("--log-dir", log_dir)) if v]
        if ignored:
            raise UsageError(
                f"{', '.join(ignored)} cannot be used with --bundle: a bundle serves one version in one process",
                hint="scale it with replicas (k8s/hpa.yaml)",
            )
        serve_bundle(
            bundle,
            host=host,
            port=port,
            max_body=max_body,
            access_log=None if no_access_log else access_log,
            admin_token=_token(admin_token_file, "admin"),
            predict_token=_token(predict_token_file, "prediction"),
            environment=environment,
            on_ready=lambda: click.echo(
                f"serving the bundle {bundle} on http://{host}:{port} (Ctrl-C stops)", err=True
            ),
        )
        return
    assert ref is not None
    from conveyor.delivery._config import load_deploy_config
    from conveyor.serving import serve
    from conveyor.workspace import Workspace

    ws = Workspace.find()
    rollout = load_deploy_config(ws.root).rollout
    slo = rollout.slo
    slo = replace(
        slo,
        **{
            k: v
            for k, v in (
                ("max_error_rate", max_error_rate),
                ("max_p99_ms", max_p99_ms),
                ("max_disagreement", max_disagreement),
            )
            if v is not None
        },
    )
    overrides: dict[str, Any] = {
        k: v
        for k, v in (("mode", mode), ("share", canary_share), ("window", window), ("candidate_alias", candidate_alias))
        if v is not None
    }
    if no_auto_promote:
        overrides["auto_promote"] = False
    rollout = replace(rollout, slo=slo, **overrides)
    serve(
        ref,
        host=host,
        port=port,
        workers=workers,
        max_body=max_body,
        poll=poll,
        rollout=rollout,
        log_dir=log_dir,
        log_sample=log_sample,
        access_log=None if no_access_log else access_log,
        admin_token=_token(admin_token_file, "admin"),
        predict_token=_token(predict_token_file, "prediction"),
        workspace=ws,
        on_ready=lambda: click.echo(f"serving {ref} on http://{host}:{port} (Ctrl-C stops)", err=True),
        environment=environment,
    )


@click.group("deploy")
def deploy_group() -> None:
    """See and drive a rollout: what serves, the candidate on trial, promote it or roll back.

    With --url, promote and rollback go through the running server's admin API (set
    CONVEYOR_SERVE_ADMIN_TOKEN); without, through the registry, which servers follow within a
    poll. status also asks the server of deploy: server: in conveyor.yaml.
    """


@deploy_group.command("status")
@click.argument("name")
@click.option("--url", help="The model server (its live window and events).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(name: str, url: str | None, as_json: bool) -> None:
    """What model NAME serves, what is on trial, and the latest moves."""
    from conveyor.delivery._deploy import deploy_status

    status = deploy_status(name, url=url)
    if as_json:
        click.echo(json.dumps(status, indent=2, default=str))
        return
    aliases = ", ".join(f"{a} -> {name}:{v}" for a, v in sorted(status["aliases"].items())) or "none"
    click.echo(f"model {name}: aliases {aliases}")
    server = status["server"]
    if server is not None:
        if "error" in server:
            click.echo(f"server {server['url']}: {server['error']}")
        else:
            click.echo(f"server {server['url']}: serves {server['primary']}, registry {server['registry']}")
            window = server.get("window")
            if server.get("candidate") and window:
                click.echo(
                    f"  candidate {server['candidate']} ({server['rollout']['mode']}): {window['requests']}/"
                    f"{window['window']} requests, {window['errors']} errors, p99 {window['p99_ms']:.1f} ms"
                    + (f", disagreement {window['disagreement']:.1%}" if window.get("disagreement") is not None else "")
                )
            for event in server.get("events", [])[-5:]:
                click.echo(f"  {event['kind']}: {event['message']}")
    for move in status["history"][-5:]:
        to = "-" if move["to_version"] is None else move["to_version"]
        click.echo(f"  {move['alias']}: {move['action']} -> {to} by {move['actor']}: {move['reason'] or '-'}")


@deploy_group.command("promote")
@click.argument("name")
@click.option("--url", help="Through this model server's admin API.")
@click.option("--reason", default="", help="Why (kept in the audit history).")
def promote_cmd(name: str, url: str | None, reason: str) -> None:
    """Promote the candidate on trial now, without waiting for its window."""
    from conveyor.delivery._deploy import deploy_promote

    click.echo(deploy_promote(name, url=url, reason=reason))


@deploy_group.command("rollback")
@click.argument("name")
@click.option("--url", help="Through this model server's admin API.")
@click.option("--reason", default="", help="Why (kept in the audit history).")
def rollback_cmd(name: str, url: str | None, reason: str) -> None:
    """Take the candidate off trial; with none on trial, move the serving alias back one version."""
    from conveyor.delivery._deploy import deploy_rollback

    click.echo(deploy_rollback(name, url=url, reason=reason))
