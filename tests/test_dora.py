"""DORA delivery metrics (``conveyor stats``, ``conveyor.delivery.delivery_stats``) of a real
delivery history: versions registered from real commits (dated with git's own
GIT_COMMITTER_DATE), promoted, rolled back, aborted on the serving alias and on a canary.

Every expected figure comes from the history read back from the registry and the commit times
read back from git, never from conveyor's own arithmetic."""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Project
from conveyor.cli._stats import parse_when
from conveyor.delivery import DeliveryStats, delivery_stats
from conveyor.errors import UsageError
from conveyor.registry import AliasMove, Registry
from conveyor.workspace import Workspace

HOUR = 3600.0
DAY = 86_400.0


def commit_at(project: Project, when: float, message: str, *, content: str) -> str:
    """A real commit whose committer time is ``when`` (authored a week earlier: lead time runs
    from the commit that was delivered, not from when its change was first written)."""
    project.write("train.txt", content)
    project.git("add", "train.txt")
    env = {
        **os.environ,
        "GIT_COMMITTER_DATE": f"{int(when)} +0000",
        "GIT_AUTHOR_DATE": f"{int(when - 7 * DAY)} +0200",
    }
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=project.root, env=env, check=True)
    return project.git("rev-parse", "HEAD").strip()


def committer_time(project: Project, commit: str) -> float:
    return float(project.git("show", "-s", "--format=%ct", commit).strip())


def model_file(project: Project, weight: int) -> Path:
    path = project.root / "model.joblib"
    joblib.dump({"weights": [weight]}, path)
    return path


def registry_of(project: Project) -> Registry:
    return Registry.open(Workspace.find(project.root))


@dataclass
class History:
    """What the scenario did, read back from git and the registry."""

    project: Project
    commits: dict[str, str]  # "iris:1" -> its commit
    moves: dict[str, list[AliasMove]]  # model -> its production moves
    canary: list[AliasMove]  # iris's canary moves
    tree_created_at: float  # tree:1 was registered from a commit git no longer has


@pytest.fixture
def history(project: Project) -> History:
    """iris: 1, 2, 3 released; 3 rolled back (CLI); 4 tried on the canary and aborted there,
    then released by the server. tree: 1 released from a commit since rebased away, then
    aborted on production itself. wine: registered, never promoted."""
    now = time.time()
    commits: dict[str, str] = {}
    with registry_of(project) as registry:
        for number, age in enumerate((3 * DAY, 26 * HOUR, 5 * HOUR), start=1):
            commits[f"iris:{number}"] = commit_at(project, now - age, f"iris {number}", content=str(number))
            version = registry.register("iris", model_file(project, number))
            assert version.git_commit == commits[f"iris:{number}"]
            registry.promote(version.ref, to="production", reason=f"release {number}")
    project.ok("model", "rollback", "iris", "--alias", "production", "--reason", "p99 latency doubled")
    commits["iris:4"] = commit_at(project, now - 2 * HOUR, "iris 4", content="4")
    with registry_of(project) as registry:
        registry.register("iris", model_file(project, 4))
        registry.promote("iris:4", to="canary", reason="canary by conveyor deliver")
        registry.abort("iris", alias="canary", reason="canary failed: 3 errors", actor="conveyor-serve")
        registry.promote("iris:4", to="canary", reason="canary by conveyor deliver")
        registry.promote("iris:4", to="production", reason="canary passed", actor="conveyor-serve")
        registry.remove_alias("iris", alias="canary", reason="promoted to 'production'", actor="conveyor-serve")

    # tree:1 comes from a commit on a branch that is then deleted and pruned
    project.git("checkout", "-q", "-b", "experiment")
    commits["tree:1"] = commit_at(project, now - 40 * HOUR, "tree", content="tree")
    with registry_of(project) as registry:
        tree = registry.register("tree", model_file(project, 10))
        assert tree.git_commit == commits["tree:1"]
    project.git("checkout", "-q", "main")
    project.git("branch", "-q", "-D", "experiment")
    project.git("reflog", "expire", "--expire=now", "--all")
    project.git("gc", "-q", "--prune=now")
    gone = subprocess.run(["git", "cat-file", "-e", commits["tree:1"]], cwd=project.root, capture_output=True)
    assert gone.returncode != 0, "the rebased-away commit is still in the repository"

    with registry_of(project) as registry:
        registry.promote("tree:1", to="production", reason="first tree")
        registry.abort("tree", alias="production", reason="wrong predictions")
        registry.register("wine", model_file(project, 20))
        moves = {name: registry.history(name, alias="production") for name in ("iris", "tree", "wine")}
        canary = registry.history("iris", alias="canary")
    return History(project, commits, moves, canary, tree.created_at)


@dataclass
class Expected:
    releases: list[tuple[str, float, float, str]]  # (ref, promoted_at, lead time, from)
    failed: dict[str, float]  # ref -> time to restore


def expected_from(history: History, model: str | None = None) -> Expected:
    """The releases of the scenario from its production moves, as DORA defines them."""
    p = history.moves
    iris, tree = p["iris"], p["tree"]
    assert [(m.action, m.to_version) for m in iris] == [
        ("promote", 1),
        ("promote", 2),
        ("promote", 3),
        ("rollback", 2),
        ("promote", 4),
    ]
    assert [(m.action, m.from_version) for m in tree] == [("promote", None), ("abort", 1)]
    assert p["wine"] == []

    def from_commit(ref: str, move: AliasMove) -> tuple[str, float, float, str]:
        return (ref, move.at, move.at - committer_time(history.project, history.commits[ref]), "commit")

    releases = {
        "iris": [
            from_commit("iris:1", iris[0]),
            from_commit("iris:2", iris[1]),
            from_commit("iris:3", iris[2]),
            from_commit("iris:4", iris[4]),
        ],
        "tree": [("tree:1", tree[0].at, tree[0].at - history.tree_created_at, "registered")],
        "wine": [],
    }
    failed = {"iris": {"iris:3": iris[3].at - iris[2].at}, "tree": {"tree:1": tree[1].at - tree[0].at}, "wine": {}}
    names = [model] if model else ["iris", "tree", "wine"]
    return Expected(
        sorted((r for n in names for r in releases[n]), key=lambda r: r[1]),
        {ref: s for n in names for ref, s in failed[n].items()},
    )


def assert_figures(figures: dict[str, object], expected: Expected, days: float) -> None:
    leads = [lead for _ref, _at, lead, _from in expected.releases]
    count = len(expected.releases)
    assert figures["releases"] == count
    assert figures["failures"] == len(expected.failed)
    assert figures["deployments_per_day"] == pytest.approx(count / days)
    assert figures["deployments_per_week"] == pytest.approx(7 * count / days)
    if count:
        assert figures["lead_time_median_s"] == pytest.approx(statistics.median(leads))
        assert figures["lead_time_p90_s"] == pytest.approx(float(np.percentile(leads, 90)))
        assert figures["change_failure_rate"] == pytest.approx(len(expected.failed) / count)
    else:
        assert figures["lead_time_median_s"] is None and figures["lead_time_p90_s"] is None
        assert figures["change_failure_rate"] is None
    restore = list(expected.failed.values())
    assert figures["time_to_restore_median_s"] == (pytest.approx(statistics.median(restore)) if restore else None)


def window_around(history: History) -> tuple[float, float]:
    """A window of exactly seven days that holds every move of the scenario."""
    until = max(m.at for moves in history.moves.values() for m in moves) + 60
    return until - 7 * DAY, until


def utc_midnight(day: dt.date) -> float:
    return float(calendar.timegm(day.timetuple()))


def bucket_start_oracle(stamp: float, size: str) -> float:
    day = dt.datetime.fromtimestamp(stamp, dt.UTC).date()
    if size == "week":
        day = day - dt.timedelta(days=day.weekday())
    elif size == "month":
        day = dt.date(day.year, day.month, 1)
    return utc_midnight(day)


# -- the figures ---------------------------------------------------------------------------------


def test_the_four_metrics_per_model_and_overall(history: History) -> None:
    since, until = window_around(history)
    stats = delivery_stats(Workspace.find(history.project.root), since=since, until=until)
    assert (stats.alias, stats.bucket, stats.since, stats.until) == ("production", "week", since, until)
    assert stats.window_days == pytest.approx(7.0)
    assert [m.model for m in stats.models] == ["iris", "tree", "wine"]
    for model in stats.models:
        assert_figures(model.figures.to_json(), expected_from(history, model.model), 7.0)
    assert_figures(stats.overall.to_json(), expected_from(history), 7.0)

    iris = stats.models[0]
    assert [(r.ref, r.promoted_at) for r in iris.releases] == [
        (ref, at) for ref, at, _lead, _from in expected_from(history, "iris").releases
    ]
    three = iris.releases[2]
    assert (three.failed, three.ended_by, three.commit) == (True, "rollback", history.commits["iris:3"])
    assert [r.ended_by for r in iris.releases] == ["promote", "promote", "rollback", None]
    assert iris.releases[3].actor == "conveyor-serve"
    # the lead time of iris:1 is about three days, iris:4's about two hours: the commit dates count
    assert iris.releases[0].lead_time_s == pytest.approx(3 * DAY, abs=120)
    assert iris.releases[3].lead_time_s == pytest.approx(2 * HOUR, abs=120)


def test_a_canary_trial_and_its_abort_are_no_release_and_no_failure(history: History) -> None:
    """The canary's abort of iris:4 is no failure of production; with --alias canary, the
    canary's moves are what is measured."""
    assert [m.action for m in history.canary] == ["promote", "abort", "promote", "remove"]
    stats = delivery_stats(Workspace.find(history.project.root), model="iris")
    iris = stats.models[0]
    assert [r.version for r in iris.releases] == [1, 2, 3, 4]
    assert [r.ref for r in iris.releases if r.failed] == ["iris:3"]

    trials = delivery_stats(Workspace.find(history.project.root), model="iris", alias="canary")
    assert trials.alias == "canary"
    first, second = trials.models[0].releases
    assert (first.failed, first.ended_by) == (True, "abort")
    assert first.restored_after_s == pytest.approx(history.canary[1].at - history.canary[0].at)
    assert (second.failed, second.ended_by) == (False, "remove")
    assert trials.models[0].figures.change_failure_rate == 0.5


def test_lead_time_falls_back_to_the_registration_when_git_lacks_the_commit(history: History) -> None:
    stats = delivery_stats(Workspace.find(history.project.root), model="tree")
    (release,) = stats.models[0].releases
    promoted = history.moves["tree"][0].at
    assert release.commit == history.commits["tree:1"]
    assert release.lead_time_from == "registered"
    assert release.lead_time_s == pytest.approx(promoted - history.tree_created_at)
    assert release.lead_time_s < 60  # not the 40 hours since the (vanished) commit
    assert (release.failed, release.ended_by) == (True, "abort")
    others = delivery_stats(Workspace.find(history.project.root), model="iris").models[0].releases
    assert {r.lead_time_from for r in others} == {"commit"}


def test_a_model_never_promoted_has_zeros_and_none(history: History) -> None:
    since, until = window_around(history)
    stats = delivery_stats(Workspace.find(history.project.root), model="wine", since=since, until=until)
    (wine,) = stats.models
    assert wine.releases == ()
    figures = wine.figures
    assert (figures.releases, figures.failures, figures.deployments_per_day) == (0, 0, 0.0)
    assert figures.lead_time_median_s is None and figures.lead_time_p90_s is None
    assert figures.change_failure_rate is None and figures.time_to_restore_median_s is None
    assert all(b.figures.releases == 0 for b in wine.buckets) and wine.buckets


def test_the_default_window_starts_at_the_first_release_bucket(history: History) -> None:
    first = history.moves["iris"][0].at
    for size in ("day", "week", "month"):
        before = time.time()
        stats = delivery_stats(Workspace.find(history.project.root), bucket=size)
        assert stats.since == bucket_start_oracle(first, size)
        assert before <= stats.until <= time.time()
        assert stats.window_days == pytest.approx((stats.until - stats.since) / DAY)
        assert stats.overall.deployments_per_day == pytest.approx(5 / stats.window_days)  # 4 iris + 1 tree
        assert sum(b.figures.releases for b in stats.buckets) == 5


def test_a_release_rolled_back_to_is_not_failed_by_a_later_rollback(project: Project) -> None:
    """1, 2, 3 released; 3 rolled back to 2, then 2 rolled back to 1. Release 2 ended when 3
    was promoted: it did not fail. Only the move that takes a release off judges it."""
    with registry_of(project) as registry:
        for number in (1, 2, 3):
            registry.register("iris", model_file(project, number))
            registry.promote(f"iris:{number}", to="production")
        first = registry.rollback("iris", alias="production", reason="3 is bad")
        second = registry.rollback("iris", alias="production", reason="2 is bad too")
        promoted = registry.history("iris", alias="production")[2].at
    assert (first.from_version, first.to_version, second.from_version, second.to_version) == (3, 2, 2, 1)
    stats = delivery_stats(Workspace.find(project.root))
    releases = stats.models[0].releases
    assert [(r.version, r.failed, r.ended_by) for r in releases] == [
        (1, False, "promote"),
        (2, False, "promote"),
        (3, True, "rollback"),
    ]
    assert releases[2].restored_after_s == pytest.approx(first.at - promoted)
    assert stats.overall.change_failure_rate == pytest.approx(1 / 3)


def test_the_serving_alias_comes_from_the_deploy_section(project: Project) -> None:
    project.write("conveyor.yaml", "deploy:\n  model: iris\n  alias: live\n")
    with registry_of(project) as registry:
        registry.register("iris", model_file(project, 1))
        registry.promote("iris:1", to="live")
        registry.register("iris", model_file(project, 2))
        registry.promote("iris:2", to="production")
    stats = delivery_stats(Workspace.find(project.root))
    assert stats.alias == "live" and [r.version for r in stats.releases] == [1]
    override = json.loads(project.ok("stats", "--alias", "production", "--json"))
    assert override["alias"] == "production"
    assert [r["version"] for r in override["models"][0]["releases"]] == [2]


def test_no_registry_yet_gives_empty_figures_and_creates_no_database(project: Project) -> None:
    stats = delivery_stats(Workspace.find(project.root))
    assert stats.models == () and stats.buckets == () and stats.since is None
    assert stats.overall.releases == 0 and stats.overall.change_failure_rate is None
    result = project.cvy("stats")
    assert result.code == 0 and result.out == "No model is registered yet: nothing has been released.\n"
    assert not (project.root / ".conveyor" / "store" / "conveyor.db").exists()


def test_an_unknown_model_is_the_registrys_error(history: History) -> None:
    with pytest.raises(UsageError) as raised:
        delivery_stats(Workspace.find(history.project.root), model="iriss")
    assert raised.value.format_message() == "no model 'iriss' in the registry; did you mean 'iris'?"
    result = history.project.cvy("stats", "--model", "iriss")
    assert result.code == 2
    assert result.err == "error: no model 'iriss' in the registry; did you mean 'iris'?\n"


# -- buckets -------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.sampled_from(["day", "week", "month"]),
    before=st.floats(min_value=0.0, max_value=120 * DAY),
    after=st.floats(min_value=1.0, max_value=40 * DAY),
)
def test_buckets_tile_the_window_on_utc_calendar_boundaries(
    history: History, size: str, before: float, after: float
) -> None:
    first = history.moves["iris"][0].at
    since, until = first - before, first + after
    stats = delivery_stats(Workspace.find(history.project.root), since=since, until=until, bucket=size)
    buckets = stats.buckets
    assert buckets[0].start <= since < buckets[0].end and buckets[-1].start < until <= buckets[-1].end
    for left, right in itertools.pairwise(buckets):
        assert left.end == right.start
    for bucket in buckets:
        day = dt.datetime.fromtimestamp(bucket.start, dt.UTC)
        assert bucket.start == bucket_start_oracle(bucket.start, size) == utc_midnight(day.date())
        assert bucket.label == (day.strftime("%Y-%m") if size == "month" else day.date().isoformat())
        if size != "month":
            assert bucket.end - bucket.start == {"day": DAY, "week": 7 * DAY}[size]
        inside = [r for r in stats.releases if bucket.start <= r.promoted_at < bucket.end]
        assert bucket.figures.releases == len(inside)
        assert bucket.figures.failures == sum(r.failed for r in inside)
        days = (min(bucket.end, until) - max(bucket.start, since)) / DAY
        assert bucket.figures.deployments_per_day == pytest.approx(len(inside) / days)
    # the releases inside the window, by their times in the registry (tree's too, if inside)
    promotions = [m.at for moves in history.moves.values() for m in moves if m.action == "promote"]
    assert stats.overall.releases == sum(since <= at < until for at in promotions)


# -- the command ---------------------------------------------------------------------------------


def test_stats_json_matches_the_history(history: History) -> None:
    since, until = window_around(history)
    stamp = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat()  # noqa: E731
    out = history.project.ok("stats", "--since", stamp(since), "--until", stamp(until), "--bucket", "day", "--json")
    data = json.loads(out)
    assert (data["alias"], data["bucket"]) == ("production", "day")
    assert data["since"] == pytest.approx(since) and data["until"] == pytest.approx(until)
    assert_figures(data["overall"], expected_from(history), 7.0)
    models = {m["model"]: m for m in data["models"]}
    assert list(models) == ["iris", "tree", "wine"]
    for name, model in models.items():
        expected = expected_from(history, name)
        assert_figures(model["figures"], expected, 7.0)
        assert [(r["ref"], r["lead_time_from"], r["failed"]) for r in model["releases"]] == [
            (ref, source, ref in expected.failed) for ref, _at, _lead, source in expected.releases
        ]
        for release, (_ref, at, lead, _source) in zip(model["releases"], expected.releases, strict=True):
            assert release["promoted_at"] == at and release["lead_time_s"] == pytest.approx(lead)
    assert len(data["buckets"]) == 8  # seven days from a time of day touch eight calendar days
    assert sum(b["figures"]["releases"] for b in data["buckets"]) == 5


def test_stats_prints_a_table_per_model_and_per_bucket(history: History) -> None:
    since, until = window_around(history)
    stamp = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat()  # noqa: E731
    out = history.project.ok("stats", "--since", stamp(since), "--until", stamp(until))
    lines = out.splitlines()
    assert lines[0].startswith("Releases to 'production' from ") and lines[0].endswith("(7.0 days), by week:")
    rows = {line.split()[0]: line.split("  ") for line in lines if line[:5] in ("iris ", "tree ", "wine ", "all  ")}
    cells = {name: [c.strip() for c in row if c.strip()] for name, row in rows.items()}
    assert cells["iris"][:3] == ["iris", "4", "4"]  # 4 releases in 7 days: 4 a week
    assert cells["iris"][5:7] == ["1", "25%"]
    assert cells["tree"][:3] == ["tree", "1", "1"] and cells["tree"][5:7] == ["1", "100%"]
    assert cells["wine"] == ["wine", "0", "0", "-", "-", "0", "-", "-"]
    assert cells["all"][:3] == ["all", "5", "5"] and cells["all"][5:7] == ["2", "40%"]
    # the median of the commits 72, 26, 5 and 2 hours before their releases (and some seconds)
    assert cells["iris"][3] == "15.5 h"
    assert "WEEK OF" in out and "from the registration for 1 whose commit git does not have (tree:1)" in out


def test_stats_since_a_duration(history: History) -> None:
    data = json.loads(history.project.ok("stats", "--since", "2h", "--json"))
    assert data["since"] == pytest.approx(time.time() - 2 * HOUR, abs=30)
    assert data["overall"]["releases"] == 5  # every promotion happened within the last seconds
    none = json.loads(history.project.ok("stats", "--until", "1d", "--json"))
    assert none["overall"]["releases"] == 0 and none["since"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--since", "yesterday"],
            "error: --since 'yesterday' is not a time; give a duration back from now (--since 30d, 12h or 2w) "
            "or a date or time in UTC (--since 2026-01-01 or 2026-01-01T09:30; add +02:00 for another zone)",
        ),
        (["--until", "30x"], "error: --until '30x' is not a time; give a duration back from now (--until 30d,"),
        (["--since", "1969-07-20"], "error: --since '1969-07-20' is outside the years 1970 to 9999;"),
        (
            ["--bucket", "weak"],
            "error: --bucket 'weak' is not a bucket size; did you mean 'week'? use --bucket day, week or month",
        ),
        (["--bucket", "year"], "error: --bucket 'year' is not a bucket size; use --bucket day, week or month"),
        (["--since", "1d", "--until", "2d"], "error: --since 1d is not before --until 2d;"),
    ],
)
def test_bad_input_is_one_line_naming_the_option(project: Project, args: list[str], message: str) -> None:
    result = project.run("stats", *args)
    assert result.code == 2
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.err


# -- the --since/--until parser -----------------------------------------------------------------

NOW = 1_800_000_000.0


@given(amount=st.integers(min_value=0, max_value=2_000), unit=st.sampled_from(["h", "d", "w"]))
def test_durations_count_back_from_now(amount: int, unit: str) -> None:
    seconds = {"h": HOUR, "d": DAY, "w": 7 * DAY}[unit]
    assert parse_when(f"{amount}{unit}", "--since", now=NOW) == NOW - amount * seconds
    assert parse_when(f" {amount}.5{unit} ", "--since", now=NOW) == NOW - (amount + 0.5) * seconds


@given(
    moment=st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    zone=st.none() | st.integers(min_value=-14, max_value=14).map(lambda h: dt.timezone(dt.timedelta(hours=h))),
    sep=st.sampled_from(["T", " "]),
)
def test_iso_times_are_utc_unless_they_name_a_zone(moment: dt.datetime, zone: dt.tzinfo | None, sep: str) -> None:
    text = moment.replace(tzinfo=zone).isoformat(sep=sep)
    expected = moment.replace(tzinfo=zone or dt.UTC).timestamp()
    assert parse_when(text, "--until", now=NOW) == expected


@given(day=st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(9999, 12, 31)))
def test_a_date_is_its_midnight_utc(day: dt.date) -> None:
    assert parse_when(day.isoformat(), "--since", now=NOW) == utc_midnight(day)


@given(text=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20))
def test_anything_else_is_a_one_line_error_naming_the_option(text: str) -> None:
    if text.strip() == "now":
        assert parse_when(text, "--until", now=NOW) == NOW
        return
    with pytest.raises(UsageError) as raised:
        parse_when(text, "--until", now=NOW)
    line = raised.value.format_message()
    assert line.startswith(f"--until {text!r} is not a time;") and "\n" not in line


def test_a_time_without_a_zone_is_utc_not_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "XYZ-05:30")  # a POSIX zone five and a half hours east: no tzdata needed
    time.tzset()
    try:
        assert time.localtime(0).tm_hour == 5
        assert parse_when("2026-01-01", "--since", now=NOW) == utc_midnight(dt.date(2026, 1, 1))
        assert parse_when("2026-01-01T09:30", "--since", now=NOW) == utc_midnight(dt.date(2026, 1, 1)) + 9.5 * HOUR
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_parser_rejects_times_outside_1970_to_9999() -> None:
    with pytest.raises(UsageError, match="outside the years 1970 to 9999"):
        parse_when("1969-12-31T23:59:59", "--since", now=NOW)
    with pytest.raises(UsageError, match="outside the years 1970 to 9999"):
        parse_when("100000w", "--since", now=NOW)
    assert parse_when("1970-01-01", "--since", now=NOW) == 0.0


def test_delivery_stats_rejects_a_bad_bucket_and_an_empty_window(project: Project) -> None:
    ws = Workspace.find(project.root)
    with pytest.raises(UsageError) as raised:
        delivery_stats(ws, bucket="fortnight")
    assert raised.value.format_message() == "unknown bucket 'fortnight'; use day, week or month"
    with pytest.raises(UsageError, match="the window is empty"):
        delivery_stats(ws, since=NOW, until=NOW)
    assert isinstance(delivery_stats(ws, since=NOW - DAY, until=NOW), DeliveryStats)
