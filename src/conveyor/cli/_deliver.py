"""Continuous delivery: ``conveyor deliver``, ``conveyor watch`` and ``conveyor monitor``."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from conveyor.delivery import DeliveryReport, MonitorReport, Step
    from conveyor.errors import ConveyorError

_MARKS = {"ok": "✓", "skipped": "-", "failed": "✗"}


def register(cli: click.Group) -> None:
    cli.add_command(deliver_cmd)
    cli.add_command(watch_cmd)
    cli.add_command(monitor_cmd)


def _print_step(step: Step) -> None:
    click.echo(f"{_MARKS.get(step.status, '?')} {step.name:<10} {step.detail} ({step.seconds:.1f} s)")


def _deliver_options(f: Any) -> Any:
    options = [
        click.option("--model", help="The registered model's name (deploy: model:)."),
        click.option("--artifact", help="The pipeline output that is the model (deploy: artifact:)."),
        click.option("--server", help="A running 'conveyor serve' to roll out through (deploy: server:)."),
        click.option(
            "--pull/--no-pull", default=None, help="Pull inputs from the remote first (default: if one is set)."
        ),
        click.option("--force", is_flag=True, help="Re-run every stage, even up-to-date ones."),
        click.option("--timeout", type=float, help="Seconds to wait for the rollout's verdict (300)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command("deliver")
@_deliver_options
@click.option("--reason", default="", help="Why (kept in the audit history).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def deliver_cmd(
    model: str | None,
    artifact: str | None,
    server: str | None,
    pull: bool | None,
    force: bool,
    timeout: float | None,
    reason: str,
    as_json: bool,
) -> None:
    """Deliver: pull, run the stale stages (check stages are gates), register the model, promote
    it to staging, roll it out on the running server (canary or shadow) and to production, or
    stop at the first gate that fails (exit 1)."""
    from conveyor.delivery import DeliveryStopped, deliver

    try:
        report = deliver(
            model=model,
            artifact=artifact,
            server=server,
            pull=pull,
            force=force,
            rollout_timeout=timeout,
            reason=reason,
            on_step=None if as_json else _print_step,
        )
    except DeliveryStopped as exc:
        if as_json:
            click.echo(json.dumps(exc.report.to_json(), indent=2))
        raise
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.summary())


@click.command("watch")
@_deliver_options
@click.option("--interval", type=float, default=10.0, show_default=True, help="Seconds between looks.")
@click.option("--every", type=float, help="Also deliver every this many seconds (a schedule).")
@click.option("--max-deliveries", type=click.IntRange(min=1), help="Stop after this many deliveries.")
@click.option("--no-initial", is_flag=True, help="Do not deliver at start; only on a change.")
def watch_cmd(
    model: str | None,
    artifact: str | None,
    server: str | None,
    pull: bool | None,
    force: bool,
    timeout: float | None,
    interval: float,
    every: float | None,
    max_deliveries: int | None,
    no_initial: bool,
) -> None:
    """Deliver whenever the pipeline goes stale (code, data, params) or git's HEAD moves, and on
    a schedule with --every; a delivery a gate stops is reported and watching goes on."""
    from conveyor.delivery import watch

    def triggered(trigger: Any) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} delivering: {trigger.reason}")

    def delivered(result: DeliveryReport | ConveyorError) -> None:
        from conveyor.errors import ConveyorError

        if isinstance(result, ConveyorError):
            click.echo(f"{time.strftime('%H:%M:%S')} stopped: {result.format_message()}")
        else:
            click.echo(f"{time.strftime('%H:%M:%S')} {result.summary()}")

    stopped = watch(
        interval=interval,
        every=every,
        max_deliveries=max_deliveries,
        deliver_now=not no_initial,
        on_trigger=triggered,
        on_delivery=delivered,
        model=model,
        artifact=artifact,
        server=server,
        pull=pull,
        force=force,
        rollout_timeout=timeout,
        on_step=_print_step,
    )
    if stopped:
        from conveyor.errors import ConveyorError

        raise ConveyorError(
            f"{stopped} of the deliveries stopped at a gate while watching", hint="see each one's report above"
        )


def _print_monitor(report: MonitorReport) -> None:
    if not report.judged:
        click.echo(f"{report.model} ({report.version}): {report.reason}")
        return
    click.echo(
        f"{report.model} ({report.version}): {report.rows} live rows against {report.reference_rows} reference rows"
    )
    click.echo(("ALARM: " if report.alarm else "ok: ") + report.reason)
    if "html" in report.reports:
        click.echo(f"report: {report.reports['html']}")


@click.command("monitor")
@click.option("--model", help="The registered model's name (deploy: model:).")
@click.option("--reference", help="The training data live inputs are compared with (deploy: monitor: reference:).")
@click.option("--logs", type=click.Path(file_okay=False), help="The server's request logs (its --log-dir).")
@click.option("--since", type=float, help="Only requests logged in the last this many seconds.")
@click.option("--label", help="The reference's label column, left out of the comparison.")
@click.option("--max-drift-share", type=float, help="Share of drifted features that raises the alarm (0.3).")
@click.option("--min-rows", type=click.IntRange(min=1), help="Fewer live rows than this: too few to judge (100).")
@click.option("--retrain/--no-retrain", default=None, help="On an alarm, run 'conveyor deliver' (default: yes).")
@click.option("--reports", type=click.Path(file_okay=False), help="Folder for the JSON, Markdown and HTML report.")
@click.option("--server", help="With --retrain: the server to roll the retrained model out through.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def monitor_cmd(
    model: str | None,
    reference: str | None,
    logs: str | None,
    since: float | None,
    label: str | None,
    max_drift_share: float | None,
    min_rows: int | None,
    retrain: bool | None,
    reports: str | None,
    server: str | None,
    as_json: bool,
) -> None:
    """Compare the live traffic a server logged with the training data (feature and prediction
    drift); on an alarm, retrain and deliver. Exits 1 when the alarm is raised and no new
    version was released (retraining found nothing new, or a gate stopped it)."""
    from conveyor.delivery import monitor

    report = monitor(
        model=model,
        reference=reference,
        logs=logs,
        since=None if since is None else time.time() - since,
        label=label,
        max_drift_share=max_drift_share,
        min_rows=min_rows,
        retrain=retrain,
        reports=reports,
        server=server,
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_monitor(report)
        if report.delivery is not None:
            click.echo("retraining:")
            for step in report.delivery.steps:
                _print_step(step)
            click.echo(report.delivery.summary())
        if report.delivery_error:
            click.echo(f"retraining stopped: {report.delivery_error}")
    if report.alarm and (report.delivery is None or report.delivery.outcome != "released"):
        from conveyor.delivery import DriftAlarm

        raise DriftAlarm(
            f"model '{report.model}': live traffic drifted ({report.reason})",
            hint="retrain on fresh data: conveyor deliver (or monitor without --no-retrain)",
        )
