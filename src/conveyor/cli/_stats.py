"""Delivery metrics: ``conveyor stats`` (DORA's four, for models)."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from conveyor.delivery import DeliveryStats, Figures

_BUCKETS = ("day", "week", "month")  # conveyor.delivery._dora.BUCKETS, without importing it
_UNITS = {"h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_DURATION = re.compile(r"\s*([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*([hdw])\s*\Z")
_LATEST = 253_402_300_799.0  # 9999-12-31 23:59:59 UTC


def register(cli: click.Group) -> None:
    cli.add_command(stats_cmd)


def parse_when(text: str, option: str, *, now: float | None = None) -> float:
    """A time as ``--since``/``--until`` take it, in Unix seconds: a duration back from ``now``
    (``30d``, ``12h``, ``2w``), ``now``, or an ISO 8601 date or time, in UTC unless it names a
    zone (``2026-01-01``, ``2026-01-01T09:30``, ``2026-01-01T09:30+02:00``)."""
    import datetime as dt
    import time

    from conveyor.errors import UsageError

    current = time.time() if now is None else now
    stamp: float | None = None
    duration = _DURATION.match(text)
    if duration:
        stamp = current - float(duration.group(1)) * _UNITS[duration.group(2)]
    elif text.strip() == "now":
        stamp = current
    else:
        given = text.strip()
        if given.endswith(" UTC"):
            given = given[: -len(" UTC")] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(given)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            try:
                stamp = parsed.timestamp()
            except (OverflowError, OSError, ValueError):
                stamp = None
    if stamp is None:
        raise UsageError(
            f"{option} {text!r} is not a time",
            hint=f"give a duration back from now ({option} 30d, 12h or 2w) or a date or time in UTC "
            f"({option} 2026-01-01 or 2026-01-01T09:30; add +02:00 for another zone)",
        )
    if not 0 <= stamp <= _LATEST:
        raise UsageError(
            f"{option} {text!r} is outside the years 1970 to 9999", hint=f"give a later or an earlier {option}"
        )
    return stamp


@click.command("stats")
@click.option("--model", metavar="NAME", help="Only this model (default: every registered model).")
@click.option(
    "--alias", metavar="ALIAS", help="The serving alias: its promotions are the releases (deploy: alias:, production)."
)
@click.option(
    "--since",
    metavar="WHEN",
    help="Releases from then: 30d, 12h, 2w back, or a UTC date or time (2026-01-01). "
    "Default: the start of the first release's bucket.",
)
@click.option("--until", metavar="WHEN", help="Releases before then, as --since (default: now).")
@click.option("--bucket", default="week", show_default=True, metavar="day|week|month", help="Group releases by this.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures and every release as JSON.")
def stats_cmd(
    model: str | None, alias: str | None, since: str | None, until: str | None, bucket: str, as_json: bool
) -> None:
    """Delivery metrics (DORA) of the registered models: deployment frequency, lead time for
    changes, change failure rate and time to restore, from the registry's history."""
    import time

    from conveyor.delivery import delivery_stats
    from conveyor.errors import UsageError

    if bucket not in _BUCKETS:
        from conveyor._suggest import did_you_mean

        close = did_you_mean(bucket, _BUCKETS)
        raise UsageError(
            f"--bucket {bucket!r} is not a bucket size",
            hint=(f"{close} " if close else "") + "use --bucket day, week or month",
        )
    now = time.time()
    start = None if since is None else parse_when(since, "--since", now=now)
    end = None if until is None else parse_when(until, "--until", now=now)
    if start is not None and start >= (now if end is None else end):
        raise UsageError(
            f"--since {since} is not before --until {until or 'now'}", hint="give an earlier --since or a later --until"
        )
    stats = delivery_stats(model=model, alias=alias, since=start, until=end if end is not None else now, bucket=bucket)
    if as_json:
        click.echo(json.dumps(stats.to_json(), indent=2))
        return
    for line in stats_lines(stats):
        click.echo(line)


def stats_lines(stats: DeliveryStats) -> list[str]:
    """The human report: one row per model (and all of them), then one per bucket."""
    from conveyor.store._report import format_table

    if not stats.models:
        return ["No model is registered yet: nothing has been released."]
    lines = []
    if stats.since is None:
        lines.append(f"No release to '{stats.alias}' before {_utc(stats.until)}.")
    else:
        lines.append(
            f"Releases to '{stats.alias}' from {_utc(stats.since)} to {_utc(stats.until)} "
            f"({stats.window_days:.1f} days), by {stats.bucket}:"
        )
    lines.append("")
    rows = [[m.model, *_cells(m.figures, per_week=True)] for m in stats.models]
    if len(stats.models) > 1:
        rows.append(["all", *_cells(stats.overall, per_week=True)])
    header = ["MODEL", "RELEASES", "PER WEEK", "LEAD TIME", "LEAD P90", "FAILED", "FAILURE RATE", "TIME TO RESTORE"]
    lines += format_table(header, rows, right=frozenset({1, 2, 5, 6}))
    if stats.buckets:
        lines.append("")
        first = {"day": "DAY", "week": "WEEK OF", "month": "MONTH"}[stats.bucket]
        rows = [[b.label, *_cells(b.figures, per_week=False)] for b in stats.buckets]
        header = [first, "RELEASES", "LEAD TIME", "LEAD P90", "FAILED", "FAILURE RATE", "TIME TO RESTORE"]
        lines += format_table(header, rows, right=frozenset({1, 4, 5}))
    releases = stats.releases
    if releases:
        lines.append("")
        lines.append("Lead time and time to restore are medians; " + _lead_time_source(stats))
    return lines


def _cells(figures: Figures, *, per_week: bool) -> list[str]:
    rate = figures.change_failure_rate
    return [
        str(figures.releases),
        *([f"{figures.deployments_per_week:.3g}"] if per_week else []),
        human_duration(figures.lead_time_median_s),
        human_duration(figures.lead_time_p90_s),
        str(figures.failures),
        "-" if rate is None else f"{rate:.0%}",
        human_duration(figures.time_to_restore_median_s),
    ]


def _lead_time_source(stats: DeliveryStats) -> str:
    registered = [r.ref for r in stats.releases if r.lead_time_from == "registered"]
    if not registered:
        return "lead time runs from the commit of each version (its committer time in git)."
    from conveyor.cli._render import plural

    counted = len(stats.releases) - len(registered)
    unknown = ", ".join(dict.fromkeys(registered))
    return (
        f"lead time runs from the commit for {plural(counted, 'release')}, and from the registration for "
        f"{len(registered)} whose commit git does not have ({unknown})."
    )


def human_duration(seconds: float | None) -> str:
    """``42 s``, ``17 min``, ``5.2 h``, ``3.1 days``; ``-`` for none."""
    if seconds is None:
        return "-"
    sign, value = ("-" if seconds < 0 else ""), abs(seconds)
    if value < 90:
        return f"{sign}{value:.0f} s"
    if value < 90 * 60:
        return f"{sign}{value / 60:.0f} min"
    if value < 48 * 3600:
        return f"{sign}{value / 3600:.1f} h"
    return f"{sign}{value / 86_400:.1f} days"


def _utc(stamp: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
