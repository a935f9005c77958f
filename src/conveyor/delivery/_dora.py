"""DORA delivery metrics of models, read from the registry's audit history.

A **release** is a ``promote`` move of the serving alias (``deploy: alias:``, ``production`` by
default). From the releases of a time window:

- **deployment frequency**: releases per day of the window (and the count of each bucket);
- **lead time for changes**: the release's time minus the committer time of the version's git
  commit, or, when that commit is unknown or not in the repository, minus the time the version
  was registered (each :class:`Release` says which); median and 90th percentile;
- **change failure rate**: the share of releases whose end was a ``rollback`` or an ``abort``
  of the serving alias (the move that took that version off it), rather than the next
  promotion;
- **time to restore**: for each failed release, from its promotion to that move; median.

A canary or shadow alias is not the serving alias: its promotions and aborts are trials, not
releases. Whether a release failed is judged by the whole history, also after the window.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
import statistics
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import UsageError

if TYPE_CHECKING:
    from conveyor.registry import AliasMove, ModelVersion
    from conveyor.workspace import Workspace

BUCKETS = ("day", "week", "month")
MAX_BUCKETS = 10_000
_DAY = 86_400.0
_FAILED = ("rollback", "abort")  # the moves that end a release as a failure
_COMMIT = re.compile(r"[0-9a-f]{4,64}\Z")


@dataclass(frozen=True)
class Release:
    """One promotion to the serving alias, and how it ended."""

    model: str
    version: int
    promoted_at: float  # Unix seconds
    actor: str  # who promoted it (a person, conveyor deliver, conveyor-serve)
    commit: str | None  # the version's git commit
    lead_time_s: float  # promoted_at minus the commit's time (or the registration's)
    lead_time_from: str  # "commit": the committer time in git; "registered": the version's created_at
    failed: bool  # taken off the serving alias by a rollback or an abort
    ended_by: str | None  # what took it off: promote (the next release), rollback, abort, remove; None: serving
    ended_at: float | None
    restored_after_s: float | None  # failed releases: seconds from the promotion to the move that took it off

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ref": self.ref}


@dataclass(frozen=True)
class Figures:
    """The four metrics of a set of releases (a model's, all models', one bucket's).

    With no releases: zeros, and None where a median or a rate has nothing to stand on."""

    releases: int
    failures: int
    deployments_per_day: float
    lead_time_median_s: float | None
    lead_time_p90_s: float | None
    change_failure_rate: float | None  # failures / releases, 0.0 to 1.0
    time_to_restore_median_s: float | None

    @property
    def deployments_per_week(self) -> float:
        return self.deployments_per_day * 7

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "deployments_per_week": self.deployments_per_week}


@dataclass(frozen=True)
class Bucket:
    """A calendar day, week (from Monday) or month, in UTC, and the figures of the releases
    made in it (per day: of the part of it inside the window)."""

    start: float  # Unix seconds, 00:00 UTC of its first day
    end: float  # the next bucket's start
    label: str  # 2026-11-23 (a day, the Monday of a week) or 2026-11 (a month)
    figures: Figures

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "label": self.label, "figures": self.figures.to_json()}


@dataclass(frozen=True)
class ModelStats:
    """The figures of one model over the window, by bucket, and its releases."""

    model: str
    figures: Figures
    buckets: tuple[Bucket, ...]
    releases: tuple[Release, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "figures": self.figures.to_json(),
            "buckets": [b.to_json() for b in self.buckets],
            "releases": [r.to_json() for r in self.releases],
        }


@dataclass(frozen=True)
class DeliveryStats:
    """DORA delivery metrics: per model and over all of them, for releases to ``alias`` made
    from ``since`` (inclusive) to ``until`` (exclusive).

    ``since`` is None only when it was not given and nothing was released: there is no window."""

    alias: str
    bucket: str  # day, week or month
    since: float | None
    until: float
    window_days: float | None
    overall: Figures
    buckets: tuple[Bucket, ...]
    models: tuple[ModelStats, ...]

    @property
    def releases(self) -> tuple[Release, ...]:
        """Every model's releases, oldest first."""
        return tuple(sorted((r for m in self.models for r in m.releases), key=lambda r: (r.promoted_at, r.model)))

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "bucket": self.bucket,
            "since": self.since,
            "until": self.until,
            "window_days": self.window_days,
            "overall": self.overall.to_json(),
            "buckets": [b.to_json() for b in self.buckets],
            "models": [m.to_json() for m in self.models],
        }


def delivery_stats(
    workspace: Workspace | None = None,
    *,
    model: str | None = None,
    alias: str | None = None,
    since: float | None = None,
    until: float | None = None,
    bucket: str = "week",
) -> DeliveryStats:
    """DORA delivery metrics of the registered models (or ``model`` alone): deployment
    frequency, lead time for changes, change failure rate and time to restore, over all and
    per ``bucket`` (``day``, ``week`` or ``month``, in UTC).

    Releases are the promotions to ``alias`` (default: ``deploy: alias:`` of conveyor.yaml,
    ``production``) from ``since`` to ``until`` (Unix seconds; default: from the start of the
    bucket of the first release, to now). A workspace without a registry yet gives empty
    figures; an unknown ``model`` is the registry's error."""
    from conveyor.registry import Registry
    from conveyor.registry._registry import check_name
    from conveyor.workspace import Workspace

    if bucket not in BUCKETS:
        from conveyor._suggest import did_you_mean

        close = did_you_mean(bucket, BUCKETS)
        raise UsageError(f"unknown bucket {bucket!r}", hint=(f"{close} " if close else "") + "use day, week or month")
    for value, what in ((since, "since"), (until, "until")):
        if value is not None and not math.isfinite(value):
            raise UsageError(f"'{what}' must be a time in Unix seconds, not {value}", hint="for example time.time()")
    end = time.time() if until is None else float(until)
    if since is not None and since >= end:
        raise UsageError(
            f"the window is empty: 'since' ({_utc(since)}) is not before 'until' ({_utc(end)})",
            hint="give a 'since' earlier than 'until'",
        )
    ws = workspace or Workspace.find()
    if alias is None:
        from conveyor.delivery._config import load_deploy_config

        alias = load_deploy_config(ws.root).alias
    check_name(alias, "alias")
    with Registry.open(ws, create=False) as registry:
        names = [check_name(model)] if model is not None else [m.name for m in registry.models()]
        moves = {name: registry.history(name, alias=alias) for name in names}
        versions = {
            name: {v.version: v for v in registry.versions(name)}
            for name in names
            if any(m.action == "promote" for m in moves[name])
        }
    released_versions = (
        versions[name][m.to_version] for name in versions for m in moves[name] if m.action == "promote" and m.to_version
    )
    times = _commit_times(ws.root, (v.git_commit for v in released_versions))
    released = {
        name: [
            r
            for r in _releases(moves[name], versions.get(name, {}), times)
            if (since is None or r.promoted_at >= since) and r.promoted_at < end
        ]
        for name in names
    }
    everything = [r for found in released.values() for r in found]
    start = since
    if start is None and everything:
        start = _bucket_start(min(r.promoted_at for r in everything), bucket)
    days = None if start is None else (end - start) / _DAY
    spans = [] if start is None else _spans(start, end, bucket)
    return DeliveryStats(
        alias=alias,
        bucket=bucket,
        since=start,
        until=end,
        window_days=days,
        overall=_figures(everything, days),
        buckets=_buckets(everything, spans, bucket, start, end),
        models=tuple(
            ModelStats(
                name,
                _figures(released[name], days),
                _buckets(released[name], spans, bucket, start, end),
                tuple(released[name]),
            )
            for name in names
        ),
    )


def _releases(moves: Sequence[AliasMove], versions: dict[int, ModelVersion], times: dict[str, float]) -> list[Release]:
    """The promotions among one alias's moves (oldest first), each with the move that ended it."""
    found = []
    for index, move in enumerate(moves):
        if move.action != "promote" or move.to_version is None:
            continue
        version = versions[move.to_version]
        commit_time = times.get(version.git_commit) if version.git_commit else None
        after = moves[index + 1] if index + 1 < len(moves) else None
        failed = after is not None and after.action in _FAILED and after.from_version == move.to_version
        found.append(
            Release(
                model=move.model,
                version=move.to_version,
                promoted_at=move.at,
                actor=move.actor,
                commit=version.git_commit,
                lead_time_s=move.at - (commit_time if commit_time is not None else version.created_at),
                lead_time_from="commit" if commit_time is not None else "registered",
                failed=failed,
                ended_by=None if after is None else after.action,
                ended_at=None if after is None else after.at,
                restored_after_s=after.at - move.at if failed and after is not None else None,
            )
        )
    return found


def _figures(releases: Sequence[Release], days: float | None) -> Figures:
    lead = [r.lead_time_s for r in releases]
    failed = [r for r in releases if r.failed]
    restore = [r.restored_after_s for r in failed if r.restored_after_s is not None]
    return Figures(
        releases=len(releases),
        failures=len(failed),
        deployments_per_day=len(releases) / days if days else 0.0,
        lead_time_median_s=statistics.median(lead) if lead else None,
        lead_time_p90_s=_p90(lead),
        change_failure_rate=len(failed) / len(releases) if releases else None,
        time_to_restore_median_s=statistics.median(restore) if restore else None,
    )


def _p90(values: Sequence[float]) -> float | None:
    """The 90th percentile, interpolated linearly between the closest ranks."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def _buckets(
    releases: Sequence[Release], spans: Sequence[tuple[float, float]], size: str, since: float | None, until: float
) -> tuple[Bucket, ...]:
    """The figures of each bucket; per day of the part of it inside the window."""
    if since is None:
        return ()
    by_start: dict[float, list[Release]] = {}
    for release in releases:
        by_start.setdefault(_bucket_start(release.promoted_at, size), []).append(release)
    return tuple(
        Bucket(
            start,
            end,
            _bucket_label(start, size),
            _figures(by_start.get(start, []), (min(end, until) - max(start, since)) / _DAY),
        )
        for start, end in spans
    )


def _spans(since: float, until: float, size: str) -> list[tuple[float, float]]:
    """(start, end) of each bucket from the one holding ``since`` to the one before ``until``."""
    spans: list[tuple[float, float]] = []
    start = _bucket_start(since, size)
    while start < until:
        end = _next_start(start, size)
        spans.append((start, end))
        if len(spans) > MAX_BUCKETS:
            raise UsageError(
                f"the window from {_utc(since)} to {_utc(until)} holds more than {MAX_BUCKETS} {size} buckets",
                hint="narrow it with a later 'since', or choose larger buckets (week, month)",
            )
        start = end
    return spans


def _day_of(stamp: float) -> dt.date:
    return dt.datetime.fromtimestamp(stamp, dt.UTC).date()


def _midnight(day: dt.date) -> float:
    return float(calendar.timegm(day.timetuple()))


def _bucket_start(stamp: float, size: str) -> float:
    """00:00 UTC of the day, the Monday or the first of the month ``stamp`` falls in."""
    day = _day_of(stamp)
    if size == "week":
        day -= dt.timedelta(days=day.weekday())
    elif size == "month":
        day = day.replace(day=1)
    return _midnight(day)


def _next_start(start: float, size: str) -> float:
    day = _day_of(start)
    if size == "day":
        return _midnight(day + dt.timedelta(days=1))
    if size == "week":
        return _midnight(day + dt.timedelta(days=7))
    return _midnight(dt.date(day.year + day.month // 12, day.month % 12 + 1, 1))


def _bucket_label(start: float, size: str) -> str:
    """``2026-11-23`` for a day or a week (its Monday), ``2026-11`` for a month."""
    day = _day_of(start)
    return f"{day.year:04d}-{day.month:02d}" if size == "month" else day.isoformat()


def _utc(stamp: float) -> str:
    try:
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{stamp} (Unix seconds)"


def _commit_times(root: Path, commits: Iterable[str | None]) -> dict[str, float]:
    """The committer time of each commit git has, in one ``git cat-file --batch``; a commit git
    does not have (rebased away, another clone's, no git at all) is left out."""
    wanted = sorted({c for c in commits if c and _COMMIT.match(c)})
    if not wanted:
        return {}
    try:
        proc = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=root,
            input="".join(f"{c}\n" for c in wanted).encode(),
            capture_output=True,
            check=False,
        )
    except OSError:
        return {}
    if proc.returncode != 0:
        return {}
    out, pos, times = proc.stdout, 0, {}
    try:
        for commit in wanted:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].split()
            pos = header_end + 1
            if len(header) != 3:  # "<name> missing" or "<name> ambiguous"
                continue
            size = int(header[2])
            body = out[pos : pos + size]
            pos += size + 1
            if header[1] != b"commit":
                continue
            for line in body.split(b"\n"):
                if not line:
                    break  # the end of the headers
                if line.startswith(b"committer "):
                    times[commit] = float(line.rsplit(b" ", 2)[1])
                    break
    except ValueError:  # output not as documented: what was read so far stands
        pass
    return times
