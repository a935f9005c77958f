"""The run store (``.conveyor/store/conveyor.db`` by default) and ``conveyor runs list|show|compare``."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Project
from conveyor.errors import CorruptFileError, UsageError, WorkspaceError
from conveyor.store import (
    RunRecord,
    RunStore,
    StageRecord,
    environment_info,
    git_state,
    installed_distributions,
    new_run_id,
)
from conveyor.store._schema import HEAD
from conveyor.workspace import Workspace

T0 = 1_790_000_000.0  # 2026-09-21, a fixed start for runs made in tests
HASH_A = "a1" * 32
HASH_B = "b2" * 32


def make_run(
    run_id: str,
    started_at: float,
    *,
    status: str = "succeeded",
    lr: float = 0.01,
    accuracy: float | None = 0.9,
    stages: list[StageRecord] | None = None,
) -> RunRecord:
    return RunRecord(
        id=run_id,
        started_at=started_at,
        ended_at=None if status == "running" else started_at + 12.5,
        status=status,
        commit="0123456789abcdef0123456789abcdef01234567",
        dirty=False,
        targets=["train"],
        command="conveyor run train",
        params={"train.lr": lr, "prepare.seed": 42, "config.yaml:model": "rf"},
        metrics={} if accuracy is None else {"metrics.json:accuracy": accuracy, "metrics.json:loss": 1 - accuracy},
        environment={"python": "3.11.7", "packages": "f" * 64, "package_count": "40"},
        stages=stages
        if stages is not None
        else [
            StageRecord("prepare", "ran", started_at, 2.5, outs={"data/prepared.csv": HASH_A}),
            StageRecord("train", "ran", started_at + 2.5, 10.0, attempts=2, outs={"model.pkl": HASH_B}),
        ],
    )


def record(store: RunStore, run: RunRecord) -> None:
    """Record ``run`` the way the runner does: start, one call a stage, finish."""
    start = RunRecord(**{**run.__dict__, "status": "running", "ended_at": None, "metrics": {}, "stages": []})
    store.start_run(start)
    for stage in run.stages:
        store.record_stage(run.id, stage)
    if run.status != "running":
        assert run.ended_at is not None
        store.finish_run(run.id, status=run.status, ended_at=run.ended_at, metrics=run.metrics)


def raw(db: Path | str, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Run SQL on the database directly (to fake what only another host or version could do):
    a SQLite file's path, or a URL (``?`` placeholders either way)."""
    if isinstance(db, str) and not db.startswith("sqlite:"):
        engine = sa.create_engine(db)
        try:
            with engine.begin() as conn:
                result = conn.exec_driver_sql(sql.replace("?", "%s"), args)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()
    conn = sqlite3.connect(db if isinstance(db, Path) else sa.make_url(db).database or "")
    try:
        with conn:
            return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db(database_url: str) -> str:
    """The same tests on a SQLite file and on a throw-away PostgreSQL database."""
    return database_url


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


# -- recording and reading back ----------------------------------------------------------------


def test_a_run_round_trips_with_stages_params_and_metrics(db: str) -> None:
    run = make_run(new_run_id(T0), T0)
    run.stages.append(StageRecord("evaluate", "failed", T0 + 12.5, 0.5, attempts=3, error="exit code 1\nTraceback"))
    run.status = "failed"
    with RunStore(db) as store:
        record(store, run)
        assert store.get_run(run.id) == run
    with RunStore(db) as store:  # and from a new connection
        assert store.get_run(run.id) == run
        assert store.count_runs() == 1


def test_start_run_records_a_whole_record_at_once(db: str) -> None:
    run = make_run("20260101-000000-aaaaaa", T0)
    with RunStore(db) as store:
        store.start_run(run)
        assert store.get_run("latest") == run


def test_a_stage_recorded_again_is_replaced_in_place(db: str) -> None:
    with RunStore(db) as store:
        store.start_run(make_run("r1", T0, status="running", stages=[]))
        store.record_stage("r1", StageRecord("a", "failed", T0, 1.0, outs={"x": HASH_A}, error="boom"))
        store.record_stage("r1", StageRecord("b", "ran", T0 + 1, 1.0))
        store.record_stage("r1", StageRecord("a", "ran", T0 + 2, 3.0, attempts=2, outs={"y": HASH_B}))
        stages = store.get_run("r1").stages
    assert [s.name for s in stages] == ["a", "b"]
    assert stages[0] == StageRecord("a", "ran", T0 + 2, 3.0, attempts=2, outs={"y": HASH_B})


def test_finish_run_replaces_the_metrics(db: str) -> None:
    with RunStore(db) as store:
        store.start_run(make_run("r1", T0, status="running", stages=[]))
        store.finish_run("r1", status="succeeded", ended_at=T0 + 5, metrics={"m:a": 1})
        store.finish_run("r1", status="succeeded", ended_at=T0 + 6, metrics={"m:b": 2.5})
        run = store.get_run("r1")
    assert (run.status, run.ended_at, run.duration, run.metrics) == ("succeeded", T0 + 6, 6.0, {"m:b": 2.5})


def test_mistakes_of_the_caller_are_refused(db: str) -> None:
    with RunStore(db) as store:
        store.start_run(make_run("r1", T0, status="running", stages=[]))
        with pytest.raises(UsageError, match="already recorded"):
            store.start_run(make_run("r1", T0))
        with pytest.raises(UsageError, match="unknown status 'done'"):
            store.finish_run("r1", status="done", ended_at=T0, metrics={})
        with pytest.raises(UsageError, match="unknown status"):
            store.finish_run("r1", status="running", ended_at=T0, metrics={})
        with pytest.raises(UsageError, match="unknown status 'cached'"):
            store.record_stage("r1", StageRecord("a", "cached", T0, 1.0))
        with pytest.raises(UsageError, match="no run nope"):
            store.record_stage("nope", StageRecord("a", "ran", T0, 1.0))
        assert store.get_run("r1").stages == []  # nothing half-written


def test_values_that_are_not_json_are_kept_as_text(db: str) -> None:
    import datetime

    with RunStore(db) as store:
        run = make_run("r1", T0)
        run.params = {"when": datetime.date(2026, 1, 2), "tags": {"b", "a"}, "pair": (1, 2)}
        store.start_run(run)
        assert store.get_run("r1").params == {"when": "2026-01-02", "tags": ["a", "b"], "pair": [1, 2]}


def test_stages_may_be_recorded_from_another_thread(db: str) -> None:
    with RunStore(db) as store:
        store.start_run(make_run("r1", T0, status="running", stages=[]))
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                store.record_stage("r1", StageRecord("a", "ran", T0, 1.0))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert errors == []
        assert [s.name for s in store.get_run("r1").stages] == ["a"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


def test_params_and_metrics_round_trip_any_json_value(db: str) -> None:
    with RunStore(db) as store:

        @settings(max_examples=150, deadline=None)
        @given(
            params=st.dictionaries(st.text(max_size=20), json_values, max_size=5),
            metrics=st.dictionaries(st.text(max_size=20), json_values, max_size=5),
        )
        def check(params: dict[str, Any], metrics: dict[str, Any]) -> None:
            run_id = new_run_id()
            store.start_run(RunRecord(run_id, T0, params=params))
            store.finish_run(run_id, status="succeeded", ended_at=T0 + 1, metrics=metrics)
            got = store.get_run(run_id)
            # keys are text columns, and PostgreSQL's text holds no NUL: it becomes U+FFFD on both
            assert got.params == {k.replace("\x00", "\ufffd"): v for k, v in params.items()}
            assert got.metrics == {k.replace("\x00", "\ufffd"): v for k, v in metrics.items()}

        check()


def test_non_finite_metrics_round_trip(db: str) -> None:
    with RunStore(db) as store:
        store.start_run(RunRecord("r1", T0))
        metrics = {"nan": math.nan, "inf": -math.inf, "big": 10**400}
        store.finish_run("r1", status="failed", ended_at=T0, metrics=metrics)
        metrics = store.get_run("r1").metrics
    assert math.isnan(metrics["nan"]) and metrics["inf"] == -math.inf and metrics["big"] == 10**400


# -- finding runs ------------------------------------------------------------------------------


def test_runs_are_found_by_unique_prefix_or_latest(db: str) -> None:
    with RunStore(db) as store:
        for run_id, start in (
            ("20260101-000000-aaaaaa", T0 + 2),  # started last, though not the largest id
            ("20260101-000000-aabbbb", T0),
            ("20260102-000000-cccccc", T0 + 1),
        ):
            store.start_run(make_run(run_id, start))
        assert store.get_run("20260102").id == "20260102-000000-cccccc"
        assert store.get_run("20260101-000000-aab").id == "20260101-000000-aabbbb"
        assert store.get_run("20260101-000000-aaaaaa").id == "20260101-000000-aaaaaa"
        assert store.get_run("latest").id == "20260101-000000-aaaaaa"
        with pytest.raises(UsageError) as ambiguous:
            store.get_run("20260101-000000-aa")
        assert ambiguous.value.exit_code == 2
        assert "ambiguous" in ambiguous.value.message
        assert "20260101-000000-aaaaaa, 20260101-000000-aabbbb" in ambiguous.value.message
        assert "conveyor runs list" in (ambiguous.value.hint or "")
        with pytest.raises(UsageError) as unknown:
            store.get_run("2027")
        assert unknown.value.format_message() == "no run '2027'; 'conveyor runs list' shows the recorded runs"
        with pytest.raises(UsageError, match="empty run id"):
            store.get_run("")


def test_latest_of_an_empty_store_says_so(db: str) -> None:
    with RunStore(db) as store, pytest.raises(UsageError, match="no runs recorded yet"):
        store.get_run("latest")


def test_list_is_newest_first_with_limit_offset_and_status(db: str) -> None:
    starts = [T0 + 30, T0, T0 + 50, T0 + 10, T0 + 40]
    statuses = ["succeeded", "failed", "succeeded", "failed", "succeeded"]
    with RunStore(db) as store:
        for i, (start, status) in enumerate(zip(starts, statuses, strict=True)):
            store.start_run(make_run(f"run{i}", start, status=status))
        assert [r.id for r in store.list_runs()] == ["run2", "run4", "run0", "run3", "run1"]
        assert [r.id for r in store.list_runs(limit=2)] == ["run2", "run4"]
        assert [r.id for r in store.list_runs(limit=2, offset=2)] == ["run0", "run3"]
        assert [r.id for r in store.list_runs(limit=None)] == ["run2", "run4", "run0", "run3", "run1"]
        assert [r.id for r in store.list_runs(status="failed")] == ["run3", "run1"]
        assert store.list_runs(status="interrupted") == []
        assert (store.count_runs(), store.count_runs(status="failed")) == (5, 2)
        listed = store.list_runs(limit=1)[0]
        assert listed == make_run("run2", T0 + 50)  # complete: stages, params and metrics too


# -- runs whose process died ------------------------------------------------------------------

_CHILD = """
import sys, time
from pathlib import Path
from conveyor.store import RunRecord, RunStore, StageRecord
store = RunStore(sys.argv[1])
store.start_run(RunRecord("doomed", time.time() - 10, targets=["train"]))
store.record_stage("doomed", StageRecord("prepare", "ran", time.time() - 10, 4.0, outs={"p.csv": "ab" * 32}))
print("ready", flush=True)
time.sleep(60)
"""


def test_a_run_whose_process_was_killed_shows_as_interrupted(db: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with RunStore(db) as store:
            assert store.get_run("doomed").status == "running"  # alive: left alone
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            run = store.list_runs()[0]
        assert run.status == "interrupted"
        assert run.ended_at == pytest.approx(run.started_at + 4.0)  # when its last stage ended
        assert [s.name for s in run.stages] == ["prepare"]
        # and it was recorded, not only shown
        assert raw(db, "SELECT status FROM runs") == [("interrupted",)]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_a_dead_pid_is_interrupted_on_open_but_not_a_run_of_another_host(db: str) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    with RunStore(db) as store:
        store.start_run(RunRecord("here", T0))
        store.start_run(RunRecord("there", T0 + 1))
        store.start_run(RunRecord("mine", T0 + 2))
    raw(db, "UPDATE runs SET pid = ? WHERE id IN ('here', 'there')", (dead_pid,))
    raw(db, "UPDATE runs SET host = 'some-other-host' WHERE id = 'there'")
    with RunStore(db):
        pass  # opening is enough
    assert raw(db, "SELECT id, status FROM runs ORDER BY id") == [
        ("here", "interrupted"),
        ("mine", "running"),  # this process, still alive
        ("there", "running"),  # cannot tell from here
    ]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_reused_pid_does_not_keep_a_dead_run_running(db: str) -> None:
    with RunStore(db) as store:
        store.start_run(RunRecord("r1", T0))
    # Our pid, but a process that started at another moment: the run's own process is gone.
    raw(db, "UPDATE runs SET process_start = process_start || '0'")
    with RunStore(db) as store:
        assert store.get_run("r1").status == "interrupted"


_WRITER = """
import sys, time
from pathlib import Path
from conveyor.store import RunRecord, RunStore, StageRecord, new_run_id
store = RunStore(sys.argv[1])
print("ready", flush=True)
while True:
    run_id = new_run_id()
    store.start_run(RunRecord(run_id, time.time(), params={f"p{i}": i for i in range(50)}))
    for n in range(5):
        outs = {f"o{i}": "ab" * 32 for i in range(50)}
        store.record_stage(run_id, StageRecord(f"s{n}", "ran", time.time(), 0.1, outs=outs))
    store.finish_run(run_id, status="succeeded", ended_at=time.time(), metrics={f"m{i}": i / 3 for i in range(50)})
"""


@pytest.mark.slow
def test_a_writer_killed_at_any_moment_leaves_a_consistent_store(db: str) -> None:
    import random

    rng = random.Random(7)
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        child.kill()
        child.wait()
        child.stdout.close()
    if db.startswith("sqlite:"):
        assert raw(db, "PRAGMA integrity_check") == [("ok",)]
    assert raw(db, "SELECT COUNT(*) FROM run_params GROUP BY run_id HAVING COUNT(*) != 50") == []
    assert raw(db, "SELECT COUNT(*) FROM run_outs GROUP BY run_id, stage HAVING COUNT(*) != 50") == []
    assert raw(db, "SELECT COUNT(*) FROM run_metrics GROUP BY run_id HAVING COUNT(*) != 50") == []
    with RunStore(db) as store:
        runs = store.list_runs(limit=None)
    assert runs and {r.status for r in runs} <= {"succeeded", "interrupted"}
    assert sum(r.status == "interrupted" for r in runs) <= 6
    assert all(len(r.metrics) == 50 for r in runs if r.status == "succeeded")


# -- the database file -----------------------------------------------------------------------


def test_a_database_of_a_newer_schema_is_refused_and_left_alone(db: str) -> None:
    RunStore(db).close()
    raw(db, "UPDATE alembic_version SET version_num = '9999_future'")
    tables = raw(db, "SELECT COUNT(*) FROM alembic_version")
    with pytest.raises(WorkspaceError) as refused:
        RunStore(db)
    assert "is at revision '9999_future', newer than this conveyor" in refused.value.message
    assert "upgrade conveyor" in (refused.value.hint or "")
    assert refused.value.exit_code == 2
    assert raw(db, "SELECT version_num FROM alembic_version") == [("9999_future",)]
    assert raw(db, "SELECT COUNT(*) FROM alembic_version") == tables


def test_an_empty_file_becomes_a_store_and_wal_mode_is_on(sqlite_db: Path) -> None:
    sqlite_db.touch()
    with RunStore(sqlite_db) as store:
        store.start_run(RunRecord("r1", T0))
    assert raw(sqlite_db, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert raw(sqlite_db, "PRAGMA journal_mode") == [("wal",)]
    tables = {row[0] for row in raw(sqlite_db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "run_stages", "run_outs", "run_deps", "run_params", "run_metrics", "models"} <= tables


def test_a_damaged_database_is_reported_not_replaced(sqlite_db: Path) -> None:
    sqlite_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptFileError, match="not a database") as damaged:
        RunStore(sqlite_db)
    assert "move the file aside" in damaged.value.format_message()
    assert damaged.value.exit_code == 65
    assert sqlite_db.read_bytes().startswith(b"this is not")


def test_looking_does_not_create_the_database(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path, create=False) as store:
        assert store.list_runs() == [] and store.count_runs() == 0
    assert not path.exists()


# -- ids, environment, git ---------------------------------------------------------------------


def test_run_ids_sort_by_time() -> None:
    first, second = new_run_id(T0), new_run_id(T0 + 1)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", first)
    assert first.startswith(time.strftime("%Y%m%d-%H%M%S", time.gmtime(T0)))
    assert first < second
    assert len({new_run_id(T0) for _ in range(100)}) == 100


def test_environment_info_names_python_platform_and_packages() -> None:
    import platform

    import conveyor

    env = environment_info()
    assert env["python"] == platform.python_version()
    assert env["implementation"] == platform.python_implementation()
    assert env["conveyor"] == conveyor.__version__
    assert env["platform"]
    assert re.fullmatch(r"[0-9a-f]{64}", env["packages"])
    assert int(env["package_count"]) == len(installed_distributions())
    env["python"] = "changed"  # a copy: the cached value is not touched
    assert environment_info()["python"] == platform.python_version()


def test_installed_distributions_agree_with_importlib_metadata() -> None:
    from importlib import metadata

    expected: dict[str, str] = {}
    for dist in metadata.distributions():
        expected.setdefault(re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower(), dist.version)
    assert installed_distributions() == sorted(f"{name}=={version}" for name, version in expected.items())


def test_environment_info_is_cheap() -> None:
    code = (
        "import time\n"
        "from conveyor.store import environment_info\n"
        "t = time.perf_counter(); environment_info()\n"
        "first = time.perf_counter() - t; t = time.perf_counter(); environment_info()\n"
        "print(first, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    first, again = map(float, out.split())
    assert first < 0.05  # measured: 5 to 15 ms, the import of blake3 and platform included
    assert again < 0.001


def test_git_state_names_the_commit_and_tracked_changes(project: Project, tmp_path: Path) -> None:
    head = project.git("rev-parse", "HEAD").strip()
    assert git_state(project.root) == (head, False)
    project.write("untracked.txt", "x")
    assert git_state(project.root) == (head, True)  # a checkout of HEAD would lack it: dirty
    project.write("tracked.txt", "1")
    project.commit("tracked")
    head = project.git("rev-parse", "HEAD").strip()
    project.write("tracked.txt", "2")
    assert git_state(project.root) == (head, True)
    outside = tmp_path / "no-git"
    outside.mkdir()
    assert git_state(outside) == (None, False)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=fresh, check=True)
    assert git_state(fresh) == (None, False)
    assert git_state(tmp_path / "missing") == (None, False)


# -- the CLI ----------------------------------------------------------------------------------


def populate(project: Project) -> list[RunRecord]:
    runs = [
        make_run("20260921-120000-aaaaaa", T0, lr=0.01, accuracy=0.9),
        make_run("20260921-130000-bbbbbb", T0 + 3600, lr=0.02, accuracy=0.93, status="failed"),
        make_run(
            "20260921-140000-cccccc",
            T0 + 7200,
            lr=0.02,
            accuracy=0.95,
            stages=[
                StageRecord("prepare", "restored", T0 + 7200, 0.05, outs={"data/prepared.csv": HASH_A}),
                StageRecord("train", "ran", T0 + 7200.05, 8.0, outs={"model.pkl": HASH_B}),
            ],
        ),
    ]
    runs[2].dirty = True
    with RunStore.open(Workspace(project.root)) as store:
        for run in runs:
            record(store, run)
    return runs


def test_runs_list_on_an_empty_workspace_is_friendly(project: Project) -> None:
    assert project.ok("runs", "list") == "No runs recorded yet; 'conveyor run' records one.\n"
    assert project.ok("runs", "list", "--json") == "[]\n"
    assert not (project.root / ".conveyor" / "store" / "conveyor.db").exists()


def test_runs_list_shows_a_table_newest_first(project: Project) -> None:
    populate(project)
    lines = project.ok("runs", "list").splitlines()
    assert lines[0].split() == ["ID", "STARTED", "DURATION", "STATUS", "COMMIT", "STAGES", "accuracy", "loss"]
    assert [line.split()[0] for line in lines[1:]] == [
        "20260921-140000-cccccc",
        "20260921-130000-bbbbbb",
        "20260921-120000-aaaaaa",
    ]
    newest = lines[1]
    assert time.strftime("%Y-%m-%d %H:%M", time.localtime(T0 + 7200)) in newest
    assert "12.5s" in newest and "succeeded" in newest
    assert "01234567*" in newest  # short commit, dirty
    assert "1 ran, 1 restored" in newest
    assert newest.split()[-2:] == ["0.95", "0.05"]
    assert "2 ran, 0 restored" in lines[3] and "01234567 " in lines[3]

    failed = project.ok("runs", "list", "--status", "failed").splitlines()
    assert [line.split()[0] for line in failed[1:]] == ["20260921-130000-bbbbbb"]
    assert project.ok("runs", "list", "--status", "interrupted") == "No interrupted runs (3 runs recorded).\n"

    limited = project.ok("runs", "list", "-n", "1").splitlines()
    assert len(limited) == 3 and limited[-1] == "(1 of 3 runs shown; --all shows every one)"
    assert len(project.ok("runs", "list", "-n", "1", "--all").splitlines()) == 4

    listed = json.loads(project.ok("runs", "list", "--json"))
    assert [r["id"] for r in listed] == ["20260921-140000-cccccc", "20260921-130000-bbbbbb", "20260921-120000-aaaaaa"]
    assert listed[0]["metrics"] == {"metrics.json:accuracy": 0.95, "metrics.json:loss": pytest.approx(0.05)}
    assert listed[0]["stages"][1]["outs"] == {"model.pkl": HASH_B}


def stage_rows(show_output: str) -> list[list[str]]:
    """The first four cells of each stage row of ``runs show`` (not their outs)."""
    lines = show_output.split("\nstages:\n", 1)[1].splitlines()
    return [line.split()[:4] for line in lines[1:] if not line.startswith("      ")]


def test_runs_show_prints_everything_of_one_run(project: Project) -> None:
    runs = populate(project)
    out = project.ok("runs", "show", "20260921-14")
    assert out.startswith("run 20260921-140000-cccccc\n")
    for expected in (
        "status    succeeded",
        "commit    0123456789abcdef0123456789abcdef01234567 (with changes)",
        "command   conveyor run train",
        "targets   train",
        "train.lr           0.02",
        "config.yaml:model  rf",
        "metrics.json:accuracy  0.95",
        f"{HASH_A[:12]}  data/prepared.csv",
        f"{HASH_B[:12]}  model.pkl",
    ):
        assert expected in out, expected
    assert stage_rows(out) == [["prepare", "restored", "0.05s", "1"], ["train", "ran", "8.00s", "1"]]
    assert json.loads(project.ok("runs", "show", "latest", "--json")) == asdict(runs[2])

    failed = project.ok("runs", "show", "20260921-13")
    assert "status    failed" in failed
    assert stage_rows(failed)[1] == ["train", "ran", "10.0s", "2"]


def test_runs_show_of_an_unknown_or_ambiguous_id_is_one_line_exit_2(project: Project) -> None:
    populate(project)
    unknown = project.run("runs", "show", "nope")
    assert unknown.code == 2
    assert unknown.err.splitlines() == ["error: no run 'nope'; 'conveyor runs list' shows the recorded runs"]
    assert unknown.out == ""
    ambiguous = project.cvy("runs", "show", "2026")
    assert ambiguous.code == 2
    assert len(ambiguous.err.splitlines()) == 1
    assert ambiguous.err.startswith("error: run '2026' is ambiguous: it starts 20260921-120000-aaaaaa, ")
    assert "'conveyor runs list'" in ambiguous.err
    assert "Traceback" not in unknown.err + ambiguous.err


def test_runs_compare_shows_changed_params_metrics_and_stage_durations(project: Project) -> None:
    populate(project)
    out = project.ok("runs", "compare", "20260921-12", "20260921-14")
    assert out.splitlines()[0].startswith("A: 20260921-120000-aaaaaa  succeeded")
    assert out.splitlines()[1].startswith("B: 20260921-140000-cccccc  succeeded")
    assert "params (1 of 3 differ):" in out
    assert re.search(r"train\.lr\s+0\.01\s+0\.02\s+\+0\.01 \(\+100\.0%\)", out)
    assert "prepare.seed" not in out  # the same in both
    assert re.search(r"metrics\.json:accuracy\s+0\.9\s+0\.95\s+\+0\.05 \(\+5\.6%\)", out)
    # a restored stage took no time of its own: no "speed-up" is shown for it
    assert re.search(r"prepare\s+2\.50s ran\s+0\.05s restored\s*\n", out)
    assert re.search(r"train\s+10\.0s ran\s+8\.00s ran\s+-2\.00s \(-20\.0%\)", out)

    everything = project.ok("runs", "compare", "--all", "20260921-12", "20260921-14")
    assert re.search(r"prepare\.seed\s+42\s+42\n", everything)

    # no runs named: the one before the latest against the latest
    latest_two = project.ok("runs", "compare")
    assert "A: 20260921-130000-bbbbbb" in latest_two and "B: 20260921-140000-cccccc" in latest_two
    assert "params (0 of 3 differ)" in latest_two
    # one run named: it against the latest
    assert "A: 20260921-120000-aaaaaa" in project.ok("runs", "compare", "20260921-12")

    data = json.loads(project.ok("runs", "compare", "--json", "20260921-12", "latest"))
    assert (data["a"], data["b"]) == ("20260921-120000-aaaaaa", "20260921-140000-cccccc")
    assert [p["key"] for p in data["params"]] == ["train.lr"]
    accuracy = next(m for m in data["metrics"] if m["key"] == "metrics.json:accuracy")
    assert accuracy["change"] == "changed"
    assert accuracy["delta"] == pytest.approx(0.05) and accuracy["relative"] == pytest.approx(0.05 / 0.9)
    assert [s["name"] for s in data["stages"]] == ["prepare", "train"]


def test_runs_compare_needs_two_runs(project: Project) -> None:
    with RunStore.open(Workspace(project.root)) as store:
        store.start_run(make_run("20260921-120000-aaaaaa", T0))
    result = project.cvy("runs", "compare")
    assert result.code == 2
    assert result.err == "error: compare needs two runs, and 1 is recorded; 'conveyor run' records one\n"
    assert project.cvy("runs", "compare", "a", "b", "c").code == 2


def test_runs_commands_refuse_a_newer_database_in_one_line(project: Project) -> None:
    populate(project)
    raw(project.root / ".conveyor" / "store" / "conveyor.db", "UPDATE alembic_version SET version_num = '9999_x'")
    result = project.run("runs", "list")
    assert result.code == 2
    lines = result.err.splitlines()
    assert len(lines) == 1 and "newer than this conveyor" in lines[0] and "upgrade conveyor" in lines[0]


def test_runs_db_is_ignored_by_git(project: Project) -> None:
    populate(project)
    assert ".conveyor" not in project.git("status", "--porcelain")


def test_compare_runs_tells_added_removed_changed_and_same() -> None:
    from conveyor.store import ValueChange, compare_runs
    from conveyor.store._report import comparison_lines

    a = RunRecord("a", T0, params={"lr": 0.1, "model": "rf", "gone": 1, "zero": 0, "same": True})
    b = RunRecord("b", T0, params={"lr": 0.05, "model": "gbm", "new": 2, "zero": 3, "same": True})
    a.stages = [StageRecord("only-a", "ran", T0, 1.0), StageRecord("both", "ran", T0, 4.0)]
    b.stages = [StageRecord("both", "restored", T0, 1.0)]
    comparison = compare_runs(a, b)
    assert comparison.params == [
        ValueChange("gone", 1, None, "removed"),
        ValueChange("lr", 0.1, 0.05, "changed", pytest.approx(-0.05), pytest.approx(-0.5)),
        ValueChange("model", "rf", "gbm", "changed"),
        ValueChange("new", None, 2, "added"),
        ValueChange("same", True, True, "same"),  # booleans are not numbers to subtract
        ValueChange("zero", 0, 3, "changed", 3.0, None),  # no relative change from 0
    ]
    assert [(s.name, s.a_status, s.b_status, s.delta) for s in comparison.stages] == [
        ("both", "ran", "restored", None),
        ("only-a", "ran", None, None),
    ]
    text = "\n".join(comparison_lines(comparison))
    assert re.search(r"gone\s+1\s+-\s+removed", text)
    assert re.search(r"model\s+rf\s+gbm\s+changed", text)
    assert re.search(r"zero\s+0\s+3\s+\+3\n", text)
    assert "same " not in text
    assert re.search(r"both\s+4\.00s ran\s+1\.00s restored\s*\n", text)
    assert "metrics: none" in text


# -- the run store of an older conveyor ----------------------------------------------------------

# The layout of the SQLite-only run store (PRAGMA user_version 1) that came before the SQL store,
# frozen here as it shipped.
LEGACY_SCHEMA = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,
    git_commit TEXT,
    dirty INTEGER NOT NULL DEFAULT 0,
    targets TEXT NOT NULL DEFAULT '[]',
    command TEXT NOT NULL DEFAULT '',
    environment TEXT NOT NULL DEFAULT '{}',
    host TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    process_start TEXT
);
CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX runs_status_started_at ON runs (status, started_at);
CREATE TABLE run_stages (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    error TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX run_stages_started_at ON run_stages (started_at);
CREATE TABLE run_outs (
    run_id TEXT NOT NULL,
    stage TEXT NOT NULL,
    path TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (run_id, stage, path),
    FOREIGN KEY (run_id, stage) REFERENCES run_stages (run_id, name) ON DELETE CASCADE
);
CREATE INDEX run_outs_hash ON run_outs (hash);
CREATE TABLE run_params (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    number REAL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX run_metrics_key_number ON run_metrics (key, number);
"""


def test_the_run_store_of_an_older_conveyor_is_adopted_once_and_left_in_place(project: Project) -> None:
    legacy = project.root / ".conveyor" / "runs" / "runs.db"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(legacy)
    conn.executescript(LEGACY_SCHEMA)
    conn.execute(
        "INSERT INTO runs (id, started_at, ended_at, status, targets, command, environment)"
        " VALUES ('20250101-000000-abcdef', 1735689600, 1735689610, 'succeeded', '[]', 'conveyor run', '{}')"
    )
    conn.execute("INSERT INTO run_metrics VALUES ('20250101-000000-abcdef', 'm:acc', '0.9', 0.9)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    before = legacy.read_bytes()
    assert "20250101-000000-abcdef" in project.ok("runs", "list")
    with RunStore.open(Workspace.find(project.root)) as store:
        assert store.get_run("2025").metrics == {"m:acc": 0.9}
        store.start_run(RunRecord("20260101-000000-fedcba", T0))
    new = project.root / ".conveyor" / "store" / "conveyor.db"
    assert raw(new, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert legacy.read_bytes() == before  # left alone, unread from now on
    shown = project.ok("runs", "list")
    assert "20250101-000000-abcdef" in shown and "20260101-000000-fedcba" in shown


def test_each_stage_records_the_hashes_of_its_deps(project: Project) -> None:
    project.write("input.txt", "hello\n")
    project.write(
        "conveyor.yaml",
        "stages:\n  copy:\n    cmd: cp input.txt output.txt\n    deps: [input.txt]\n    outs: [output.txt]\n",
    )
    assert project.run("run").code == 0
    with RunStore.open(Workspace.find(project.root)) as store:
        stage = store.get_run("latest").stages[0]
        assert set(stage.deps) == {"input.txt"} and len(stage.deps["input.txt"]) == 64
        assert stage.outs["output.txt"] == stage.deps["input.txt"]  # the same bytes
        assert store.runs_producing(stage.outs["output.txt"])[0][1:] == ("copy", "output.txt")


def test_a_run_records_only_the_metrics_of_the_stages_it_vouches_for(project: Project) -> None:
    project.write("in.txt", "1\n")
    project.write("a.sh", 'printf \'{"m": %s}\' "$(cat in.txt)" > a.json\n')
    project.write("b.sh", "printf '{\"m\": 7}' > b.json\n")
    project.write(
        "conveyor.yaml",
        "stages:\n"
        "  a:\n    cmd: sh a.sh\n    deps: [a.sh, in.txt]\n    metrics: [{a.json: {cache: false}}]\n"
        "  b:\n    cmd: sh b.sh\n    deps: [b.sh]\n    metrics: [{b.json: {cache: false}}]\n",
    )
    assert project.run("run").code == 0
    with RunStore.open(Workspace.find(project.root)) as store:
        assert store.get_run("latest").metrics == {"a.json:m": 1, "b.json:m": 7}
    project.write("in.txt", "2\n")
    assert project.run("run", "a").code == 0
    with RunStore.open(Workspace.find(project.root)) as store:
        assert store.get_run("latest").metrics == {"a.json:m": 2}  # b was not part of this run
