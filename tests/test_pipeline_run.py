"""``conveyor run``: what runs, what does not, and what a run leaves behind.

Real stage commands in real git repositories; the signal tests start the real ``conveyor``
executable and interrupt or kill it. Timings are never asserted: concurrency is proved by
overlapping intervals, kills by the processes being gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CONVEYOR_BIN, Project, Result, git
from conveyor.pipeline._lock import Lock

PIPELINE = """
stages:
  prepare:
    cmd: echo prepare >> calls.log && cut -c1-3 raw.txt > prepared.txt
    deps: [raw.txt]
    outs: [prepared.txt]
  train:
    cmd: echo train >> calls.log && cat prepared.txt > model.txt && grep lr params.yaml >> model.txt
    deps: [prepared.txt]
    params: [train.lr]
    outs: [model.txt]
  evaluate:
    cmd: echo evaluate >> calls.log && wc -c < model.txt > score.txt
    deps: [model.txt]
    outs: [score.txt]
"""


# -- helpers --------------------------------------------------------------------------------------


def write_pipeline(project: Project, text: str) -> None:
    project.write("conveyor.yaml", textwrap.dedent(text).lstrip("\n"))


def calls(project: Project) -> list[str]:
    """The stages whose command ran since the last call (they append to calls.log, not an output)."""
    log = project.root / "calls.log"
    if not log.exists():
        return []
    names = log.read_text().split()
    log.unlink()
    return names


def statuses(project: Project, *args: str, code: int = 0) -> dict[str, str]:
    """``conveyor run --json ARGS``: each stage's status."""
    result = project.cvy("run", "--json", *args)
    assert result.code == code, (result.code, result.err)
    return {s["name"]: s["status"] for s in json.loads(result.out)["stages"]}


def lock_text(project: Project) -> str:
    return (project.root / "conveyor.lock").read_text()


def lock_data(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(lock_text(project))
    return data


def the_error_line(result: Result) -> str:
    assert "Traceback" not in result.err, result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.err
    return errors[0]


def cache_object(project: Project, digest: str) -> Path:
    return project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]


def gone(pid: int) -> bool:
    """The process no longer runs (a zombie waiting for its parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def wait_until(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def pid_from(path: Path) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().strip()), f"{path} was never written"
    return int(path.read_text())


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def new_project(root: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    project = Project(root, capsys)
    project.ok("init")
    return project


@pytest.fixture
def pipeline(project: Project) -> Project:
    """The three-stage pipeline, run once; calls.log emptied."""
    project.write("raw.txt", "abcdef\n")
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    write_pipeline(project, PIPELINE)
    project.ok("run")
    assert calls(project) == ["prepare", "train", "evaluate"]
    return project


# -- what runs ------------------------------------------------------------------------------------


def test_the_first_run_runs_every_stage_in_order_and_records_it(project: Project) -> None:
    project.write("raw.txt", "abcdef\n")
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    write_pipeline(project, PIPELINE)
    out = project.ok("run")
    assert calls(project) == ["prepare", "train", "evaluate"]
    for name in ("prepare", "train", "evaluate"):
        assert f"ran: {name}" in out
    assert "ran 3 stages" in out.lower() and "commit conveyor.lock" in out.lower()
    assert (project.root / "model.txt").read_text() == "abc\n  lr: 0.1\n"
    lock = lock_data(project)
    assert lock["schema"] == 1
    assert list(lock["stages"]) == ["evaluate", "prepare", "train"]
    train = lock["stages"]["train"]
    assert train["cmd"].startswith("echo train >> calls.log")
    assert [d["path"] for d in train["deps"]] == ["prepared.txt"]
    assert train["params"] == {"params.yaml": {"train.lr": 0.1}}
    assert train["outs"][0]["path"] == "model.txt" and train["outs"][0]["size"] == len("abc\n  lr: 0.1\n")
    assert train["deps"][0]["hash"] == lock["stages"]["prepare"]["outs"][0]["hash"]
    ignored = (project.root / ".gitignore").read_text().split()
    assert {"/prepared.txt", "/model.txt", "/score.txt"} <= set(ignored)


def test_a_second_run_runs_nothing(pipeline: Project) -> None:
    before = lock_text(pipeline)
    out = pipeline.ok("run")
    assert calls(pipeline) == []
    assert out.strip() == "Everything is up to date (3 stages)."
    assert lock_text(pipeline) == before
    assert "Pipeline is up to date (3 stages)." in pipeline.ok("status")
    assert pipeline.cvy("status", "-q").code == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("dep", ["prepare", "train", "evaluate"]),
        ("param", ["train", "evaluate"]),
        ("cmd", ["evaluate"]),
        ("unused-param", []),
    ],
)
def test_a_change_reruns_its_stage_and_what_is_downstream(pipeline: Project, change: str, expected: list[str]) -> None:
    if change == "dep":
        pipeline.write("raw.txt", "xyzdef\n")
    elif change == "param":
        pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    elif change == "cmd":
        write_pipeline(pipeline, PIPELINE.replace("wc -c < model.txt", "wc -l < model.txt"))
    else:
        pipeline.write("params.yaml", "train:\n  lr: 0.1\n  unused: 7\n")
    pipeline.ok("run")
    assert calls(pipeline) == expected
    pipeline.ok("run")
    assert calls(pipeline) == []


def test_a_downstream_stage_does_not_run_when_its_input_came_out_the_same(pipeline: Project) -> None:
    before = lock_data(pipeline)
    pipeline.write("raw.txt", "abcXYZ\n")  # prepare keeps only the first three characters
    assert statuses(pipeline) == {"prepare": "ran", "train": "up-to-date", "evaluate": "up-to-date"}
    assert calls(pipeline) == ["prepare"]
    after = lock_data(pipeline)
    assert after["stages"]["prepare"]["deps"] != before["stages"]["prepare"]["deps"]
    assert after["stages"]["train"] == before["stages"]["train"]


def test_status_names_what_changed(pipeline: Project) -> None:
    pipeline.write("raw.txt", "xyz\n")
    pipeline.write("params.yaml", "train:\n  lr: 0.25\n")
    out = pipeline.ok("status")
    assert "stale: prepare\n    dependency raw.txt changed\n" in out
    assert "stale: train\n" in out and "    param train.lr changed: 0.1 -> 0.25\n" in out
    assert "    upstream stage 'prepare' will run\n" in out
    assert "stale: evaluate\n    upstream stage 'train' will run\n" in out
    data = json.loads(pipeline.ok("status", "--json"))
    kinds = {s["name"]: [r["kind"] for r in s["reasons"]] for s in data["stages"]}
    assert kinds == {"prepare": ["dep-changed"], "train": ["param-changed", "upstream"], "evaluate": ["upstream"]}
    assert pipeline.cvy("status", "-q").code == 1
    assert calls(pipeline) == []  # status runs nothing


def test_status_names_a_missing_or_edited_output_and_run_puts_it_back(pipeline: Project) -> None:
    model = pipeline.root / "model.txt"
    good = model.read_bytes()
    model.write_text("edited by hand\n")
    (pipeline.root / "score.txt").unlink()
    out = pipeline.ok("status")
    assert "output model.txt was changed since the stage ran" in out
    assert "output score.txt is missing" in out
    assert statuses(pipeline) == {"prepare": "up-to-date", "train": "restored", "evaluate": "restored"}
    assert calls(pipeline) == []
    assert model.read_bytes() == good
    assert (pipeline.root / "score.txt").exists()


def test_status_names_a_param_key_that_went_missing(pipeline: Project) -> None:
    pipeline.write("params.yaml", "train:\n  learning_rate: 0.1\n")
    data = json.loads(pipeline.ok("status", "--json"))
    train = next(s for s in data["stages"] if s["name"] == "train")
    assert {"kind": "param-missing", "detail": "param train.lr is missing from params.yaml"} in train["reasons"]


def test_status_says_a_params_file_is_missing(pipeline: Project) -> None:
    (pipeline.root / "params.yaml").unlink()
    data = json.loads(pipeline.ok("status", "--json"))
    train = next(s for s in data["stages"] if s["name"] == "train")
    assert "param-missing" in [r["kind"] for r in train["reasons"]], train["reasons"]
    assert "no longer used" not in pipeline.ok("status")


def test_a_nan_param_does_not_make_the_stage_stale_forever(project: Project) -> None:
    project.write("params.yaml", "fit:\n  clip: .nan\n")
    write_pipeline(project, "stages:\n  fit:\n    cmd: echo > m.txt\n    params: [fit.clip]\n    outs: [m.txt]\n")
    project.ok("run")
    assert "Pipeline is up to date" in project.ok("status")


# -- --force, --single-stage, --downstream, --dry-run ---------------------------------------------


def test_force_runs_up_to_date_stages_and_bypasses_the_run_cache(pipeline: Project) -> None:
    pipeline.ok("run", "--force")
    assert calls(pipeline) == ["prepare", "train", "evaluate"]
    pipeline.ok("run", "--force", "train")
    assert calls(pipeline) == ["prepare", "train"]  # the target and what it depends on, not downstream


def test_single_stage_runs_only_the_target(pipeline: Project) -> None:
    pipeline.write("raw.txt", "xyzdef\n")
    pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    assert statuses(pipeline, "--single-stage", "train") == {"train": "ran"}
    assert calls(pipeline) == ["train"]
    stale = {s["name"] for s in json.loads(pipeline.ok("status", "--json"))["stages"] if s["state"] == "stale"}
    assert stale == {"prepare", "train", "evaluate"}  # train is stale again: prepare will change its input
    assert pipeline.ok("run", "-s", "prepare") and calls(pipeline) == ["prepare"]


def test_downstream_runs_the_target_and_what_depends_on_it(pipeline: Project) -> None:
    pipeline.write("raw.txt", "xyzdef\n")
    pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    assert statuses(pipeline, "--downstream", "train") == {"train": "ran", "evaluate": "ran"}
    assert calls(pipeline) == ["train", "evaluate"]
    assert "stale: prepare" in pipeline.ok("status")
    assert statuses(pipeline, "--downstream", "model.txt") == {"train": "up-to-date", "evaluate": "up-to-date"}


def test_dry_run_says_what_would_run_and_changes_nothing(pipeline: Project) -> None:
    pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    lock = lock_text(pipeline)
    model = (pipeline.root / "model.txt").read_bytes()
    logs = sorted(os.listdir(pipeline.root / ".conveyor" / "logs"))
    runs = sorted((pipeline.root / ".conveyor" / "cache" / "runs").rglob("*.json"))
    out = pipeline.ok("run", "--dry-run")
    assert "would run: train — param train.lr changed: 0.1 -> 0.2" in out
    assert "would run: evaluate — upstream stage 'train' will run" in out
    assert "prepare" not in out
    assert calls(pipeline) == []
    assert lock_text(pipeline) == lock
    assert (pipeline.root / "model.txt").read_bytes() == model
    assert sorted(os.listdir(pipeline.root / ".conveyor" / "logs")) == logs
    assert sorted((pipeline.root / ".conveyor" / "cache" / "runs").rglob("*.json")) == runs
    pipeline.write("params.yaml", "train:\n  lr: 0.1\n")
    assert "Everything is up to date; nothing would run." in pipeline.ok("run", "-n")


def test_jobs_must_be_positive(pipeline: Project) -> None:
    result = pipeline.cvy("run", "-j", "-1")
    assert result.code == 2
    assert "-j -1: needs at least one job" in the_error_line(result)


def test_zero_jobs_is_refused(pipeline: Project) -> None:
    result = pipeline.cvy("run", "-j", "0")
    assert result.code == 2


# -- parallel stages ------------------------------------------------------------------------------

PARALLEL = """
stages:
  a:
    cmd: date +%s.%N > a.start && sleep {sleep} && date +%s.%N > a.end
    outs: [a.start, a.end]
  b:
    cmd: date +%s.%N > b.start && sleep {sleep} && date +%s.%N > b.end
    outs: [b.start, b.end]
"""


def intervals(project: Project) -> tuple[tuple[float, float], tuple[float, float]]:
    def read(name: str) -> float:
        return float((project.root / name).read_text())

    return (read("a.start"), read("a.end")), (read("b.start"), read("b.end"))


def test_two_jobs_run_independent_stages_at_the_same_time(project: Project) -> None:
    write_pipeline(project, PARALLEL.replace("{sleep}", "1"))
    out = project.ok("run", "-j", "2")
    (a0, a1), (b0, b1) = intervals(project)
    assert a0 < b1 and b0 < a1, f"a ran {a0}..{a1}, b ran {b0}..{b1}: they did not overlap"
    assert "ran: a" in out and "ran: b" in out


def test_one_job_runs_them_one_after_the_other(project: Project) -> None:
    write_pipeline(project, PARALLEL.replace("{sleep}", "0.3"))
    project.ok("run", "-j", "1")
    (a0, a1), (b0, b1) = intervals(project)
    assert a1 <= b0 or b1 <= a0, f"a ran {a0}..{a1}, b ran {b0}..{b1}: they overlapped"


def test_parallel_output_is_prefixed_with_the_stage(project: Project) -> None:
    write_pipeline(project, "stages:\n  a:\n    cmd: echo hello-a\n  b:\n    cmd: echo hello-b\n")
    out = project.ok("run", "-j", "2")
    assert "[a] hello-a\n" in out and "[b] hello-b\n" in out


# -- the run cache --------------------------------------------------------------------------------


def test_reverting_a_param_restores_from_the_run_cache_without_running(pipeline: Project) -> None:
    first_lock = lock_text(pipeline)
    first_model = (pipeline.root / "model.txt").read_bytes()
    pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    pipeline.ok("run")
    assert calls(pipeline) == ["train", "evaluate"]
    assert (pipeline.root / "model.txt").read_bytes() != first_model
    pipeline.write("params.yaml", "train:\n  lr: 0.1\n")
    out = pipeline.ok("run")
    assert "restored from the run cache: train — param train.lr changed: 0.2 -> 0.1" in out
    assert "restored from the run cache: evaluate" in out
    assert calls(pipeline) == []  # the commands did not run
    assert (pipeline.root / "model.txt").read_bytes() == first_model
    assert lock_text(pipeline) == first_lock
    assert pipeline.ok("run").strip() == "Everything is up to date (3 stages)."


def test_a_torn_run_cache_entry_is_a_miss_and_is_written_again(pipeline: Project) -> None:
    """Entries are written in place, without a temp file: one cut short by a kill must read as a
    miss (the stage runs) and be replaced by the next run's entry."""
    pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    pipeline.ok("run")
    pipeline.write("params.yaml", "train:\n  lr: 0.1\n")
    entries = sorted((pipeline.root / ".conveyor" / "cache" / "runs").rglob("*.json"), key=os.path.getmtime)
    assert entries
    for entry in entries:
        text = entry.read_text()
        assert json.loads(text)["outs"]
        entry.write_text(text[: len(text) // 2])  # as a kill in the middle of the write leaves it
    calls(pipeline)
    assert statuses(pipeline) == {"prepare": "up-to-date", "train": "ran", "evaluate": "ran"}
    assert calls(pipeline) == ["train", "evaluate"]
    pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    assert statuses(pipeline) == {"prepare": "up-to-date", "train": "ran", "evaluate": "ran"}
    pipeline.write("params.yaml", "train:\n  lr: 0.1\n")  # the entries written in place of the torn ones
    assert statuses(pipeline) == {"prepare": "up-to-date", "train": "restored", "evaluate": "restored"}
    assert calls(pipeline) == ["train", "evaluate"]


def test_no_run_cache_runs_the_command(pipeline: Project) -> None:
    pipeline.write("params.yaml", "train:\n  lr: 0.2\n")
    pipeline.ok("run")
    pipeline.write("params.yaml", "train:\n  lr: 0.1\n")
    calls(pipeline)
    assert statuses(pipeline, "--no-run-cache") == {"prepare": "up-to-date", "train": "ran", "evaluate": "ran"}
    assert calls(pipeline) == ["train", "evaluate"]


def test_gc_keeps_what_the_lock_and_the_run_cache_name(project: Project) -> None:
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    write_pipeline(
        project,
        """
        stages:
          train:
            cmd: echo train >> calls.log && mkdir -p model && grep lr params.yaml > model/w.txt && echo m > model/meta
            params: [train.lr]
            outs: [model]
        """,
    )
    project.ok("run")
    project.write("params.yaml", "train:\n  lr: 0.2\n")
    project.ok("run")
    assert calls(project) == ["train", "train"]
    project.write("junk.txt", "nobody needs this\n")
    project.ok("add", "junk.txt")
    (project.root / "junk.txt.cvy").unlink()
    out = project.ok("gc")
    assert out.startswith("removed 1 object"), out
    folder = lock_data(project)["stages"]["train"]["outs"][0]
    assert folder["kind"] == "dir" and folder["files"] == 2
    assert cache_object(project, folder["hash"]).is_file()
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    assert statuses(project) == {"train": "restored"}  # lr 0.1's objects are named only by the run cache
    assert calls(project) == []
    assert (project.root / "model" / "w.txt").read_text() == "  lr: 0.1\n"
    project.ok("gc", "--no-run-cache")
    project.write("params.yaml", "train:\n  lr: 0.2\n")
    assert statuses(project) == {"train": "ran"}  # its objects are gone: run it
    assert calls(project) == ["train"]


# -- failures -------------------------------------------------------------------------------------


def test_a_missing_output_fails_the_stage_naming_it(project: Project) -> None:
    write_pipeline(project, "stages:\n  liar:\n    cmd: echo did nothing\n    outs: [promised.txt, also.txt]\n")
    result = project.cvy("run")
    assert result.code == 1
    line = the_error_line(result)
    assert "stage 'liar' failed" in line and "did not write its output promised.txt" in line, line
    lock = project.root / "conveyor.lock"
    assert not lock.exists() or "liar" not in (lock_data(project).get("stages") or {})


def test_a_missing_dependency_is_named(project: Project) -> None:
    write_pipeline(project, "stages:\n  a:\n    cmd: cat nope.csv > a.txt\n    deps: [nope.csv]\n    outs: [a.txt]\n")
    result = project.cvy("run")
    assert result.code == 1
    line = the_error_line(result)
    assert "nope.csv: dependency of stage 'a' does not exist" in line, line
    assert not (project.root / "a.txt").exists()


def test_a_missing_param_is_named(project: Project) -> None:
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    write_pipeline(project, "stages:\n  a:\n    cmd: echo > a.txt\n    params: [train.lrr]\n    outs: [a.txt]\n")
    result = project.cvy("run")
    assert result.code == 1
    line = the_error_line(result)
    assert "train.lrr" in line and "did you mean 'train.lr'?" in line, line


FAILING = """
stages:
  broken:
    cmd: echo broken >> calls.log; exit 3
    outs: [broken.txt]
  independent:
    cmd: echo independent >> calls.log; echo ok > independent.txt
    outs: [independent.txt]
  after_broken:
    cmd: echo after_broken >> calls.log; cat broken.txt > after.txt
    deps: [broken.txt]
    outs: [after.txt]
"""


def test_a_failing_stage_stops_the_run(project: Project) -> None:
    write_pipeline(project, FAILING)
    result = project.cvy("run", "-j", "1")
    assert result.code == 1
    assert calls(project) == ["broken"]
    line = the_error_line(result)
    assert line.startswith("error: stage 'broken' failed: exit code 3"), line
    log = line.rsplit("its log: ", 1)[1]
    assert (project.root / log).is_file()
    assert "✘ failed: broken — exit code 3" in result.err
    assert "- skipped: after_broken" in result.err
    assert not (project.root / "conveyor.lock").exists() or "stages" not in lock_data(project)


def test_keep_going_lets_an_independent_branch_finish(project: Project) -> None:
    write_pipeline(project, FAILING)
    result = project.cvy("run", "-j", "1", "--keep-going")
    assert result.code == 1
    assert sorted(calls(project)) == ["broken", "independent"]
    assert "- skipped: after_broken — upstream stage 'broken' did not finish" in result.err
    assert list(lock_data(project)["stages"]) == ["independent"]
    assert (project.root / "independent.txt").read_text() == "ok\n"
    write_pipeline(project, FAILING.replace("exit 3", "echo fixed > broken.txt"))
    assert statuses(project) == {"broken": "ran", "after_broken": "ran", "independent": "up-to-date"}


def test_retries_rerun_a_flaky_command(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          flaky:
            cmd: echo try >> attempts.log; [ $(wc -l < attempts.log) -ge 3 ] && echo ok > flaky.txt
            retries: 2
            retry_delay: 0.1
            outs: [flaky.txt]
        """,
    )
    result = project.cvy("run")
    assert result.code == 0, result.err
    assert "ran: flaky (" in result.out and ", 3 attempts)" in result.out
    assert (project.root / "attempts.log").read_text() == "try\n" * 3
    assert "stage 'flaky' failed (exit code 1); retry 1 of 2 in 0.1 s" in result.err
    assert "retry 2 of 2 in 0.2 s" in result.err
    (log,) = (project.root / ".conveyor" / "logs").glob("*/flaky.log")
    assert "--- attempt 3 ---" in log.read_text()


def test_retries_give_up_after_the_last_attempt(project: Project) -> None:
    write_pipeline(
        project, "stages:\n  never:\n    cmd: echo try >> attempts.log; false\n    retries: 1\n    retry_delay: 0.05\n"
    )
    result = project.cvy("run")
    assert result.code == 1
    assert "stage 'never' failed: exit code 1" in the_error_line(result)
    assert (project.root / "attempts.log").read_text() == "try\n" * 2


def test_a_timeout_kills_the_whole_process_group(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          hang:
            cmd: sleep 100 & echo $! > grandchild.pid; echo $$ > child.pid; sleep 100
            timeout: 0.5
        """,
    )
    try:
        result = project.cvy("run")
        assert result.code == 1
        assert "stage 'hang' failed: timed out after 0.5 s" in the_error_line(result)
        child, grandchild = pid_from(project.root / "child.pid"), pid_from(project.root / "grandchild.pid")
        assert wait_until(lambda: gone(child), 5), "the stage's shell survived its timeout"
        assert wait_until(lambda: gone(grandchild), 5), "the background grandchild survived the timeout"
    finally:
        for name in ("child.pid", "grandchild.pid"):
            path = project.root / name
            if path.exists() and path.read_text().strip():
                kill_quietly(int(path.read_text()))


# -- Ctrl-C and SIGKILL ---------------------------------------------------------------------------

SLOW = """
stages:
  first:
    cmd: echo first >> calls.log; echo 1 > first.txt
    outs: [first.txt]
  slow:
    cmd: >-
      echo slow >> calls.log;
      if [ -f hold ]; then echo $$ > slow.pid; sleep 60 & echo $! > slow_child.pid; touch slow.started; wait; fi;
      echo done > slow.txt
    deps: [first.txt]
    outs: [slow.txt]
"""


@pytest.fixture
def slow_run(project: Project) -> Iterator[tuple[Project, subprocess.Popen[str]]]:
    """``conveyor run`` as a real process, stopped in the middle of the slow stage (after 'first')."""
    write_pipeline(project, SLOW)
    project.write("hold", "")
    proc = subprocess.Popen(
        [CONVEYOR_BIN, "run", "-j", "1"],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=False,
    )
    try:
        started = wait_until(lambda: (project.root / "slow.started").exists() or proc.poll() is not None, 30)
        assert started and proc.poll() is None, f"the slow stage never started: {proc.communicate()}"
        yield project, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for name in ("slow.pid", "slow_child.pid"):
            path = project.root / name
            if path.exists() and path.read_text().strip():
                kill_quietly(int(path.read_text()))


def test_ctrl_c_stops_the_stage_keeps_finished_work_and_the_next_run_continues(
    slow_run: tuple[Project, subprocess.Popen[str]],
) -> None:
    project, proc = slow_run
    shell, child = pid_from(project.root / "slow.pid"), pid_from(project.root / "slow_child.pid")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err, err
    assert "interrupted: slow" in err
    assert wait_until(lambda: gone(shell) and gone(child), 5), "the stage's process group outlived Ctrl-C"
    text = lock_text(project)
    assert list(Lock.parse(text, project.root / "conveyor.lock").entries) == ["first"]
    assert list(yaml.safe_load(text)["stages"]) == ["first"]
    assert not (project.root / "slow.txt").exists()
    (project.root / "hold").unlink()
    calls(project)
    assert statuses(project) == {"first": "up-to-date", "slow": "ran"}
    assert calls(project) == ["slow"]


def test_sigkill_mid_run_leaves_a_readable_lock(slow_run: tuple[Project, subprocess.Popen[str]]) -> None:
    project, proc = slow_run
    # a quick stage is recorded within a fraction of a second (the journal's idle flush, while
    # the slow one runs): a SIGKILL after that keeps it
    lock_file = project.root / "conveyor.lock"
    assert wait_until(lambda: lock_file.exists() and "first" in lock_file.read_text(), 5)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    os.killpg(pid_from(project.root / "slow.pid"), signal.SIGKILL)  # nobody is left to stop the orphaned stage
    text = lock_text(project)
    assert list(Lock.parse(text, project.root / "conveyor.lock").entries) == ["first"]
    assert yaml.safe_load(text)["stages"]["first"]["outs"][0]["path"] == "first.txt"
    (project.root / "hold").unlink()
    calls(project)
    result = project.run("run", "--json")  # the workspace lock was not left behind either
    assert result.code == 0, result.err
    assert {s["name"]: s["status"] for s in json.loads(result.out)["stages"]} == {"first": "up-to-date", "slow": "ran"}
    assert calls(project) == ["slow"]


def test_sigterm_is_handled_like_ctrl_c(slow_run: tuple[Project, subprocess.Popen[str]]) -> None:
    project, proc = slow_run
    shell, child = pid_from(project.root / "slow.pid"), pid_from(project.root / "slow_child.pid")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode in (130, 143), err
    assert "Traceback" not in err, err
    assert wait_until(lambda: gone(shell) and gone(child), 5), "the stage's process group outlived SIGTERM"
    assert list(Lock.read(project.root / "conveyor.lock").entries) == ["first"]


def test_a_hangup_stops_the_stages_too(slow_run: tuple[Project, subprocess.Popen[str]]) -> None:
    project, proc = slow_run
    shell, child = pid_from(project.root / "slow.pid"), pid_from(project.root / "slow_child.pid")
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=30)
    assert wait_until(lambda: gone(shell) and gone(child), 2), "the stage outlived the conveyor that started it"


def test_ctrl_c_stops_every_running_stage(project: Project) -> None:
    stage = "    cmd: echo $$ > {0}.pid; touch {0}.started; sleep 60; echo > {0}.txt\n    outs: [{0}.txt]\n"
    write_pipeline(project, "stages:\n  p:\n" + stage.format("p") + "  q:\n" + stage.format("q"))
    proc = subprocess.Popen(
        [CONVEYOR_BIN, "run", "-j", "2"],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids = []
    try:
        both = wait_until(
            lambda: all((project.root / f"{n}.started").exists() for n in "pq") or proc.poll() is not None
        )
        assert both and proc.poll() is None, proc.communicate()
        pids = [pid_from(project.root / f"{n}.pid") for n in "pq"]
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "interrupted: p" in err and "interrupted: q" in err
        assert wait_until(lambda: all(gone(pid) for pid in pids), 5)
        assert Lock.read(project.root / "conveyor.lock").entries == {}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for pid in pids:
            kill_quietly(pid)


# -- kinds of stages ------------------------------------------------------------------------------

FIT_MODULE = """\
import json


def main(lr, out):
    with open("calls.log", "a") as log:
        log.write("fit\\n")
    with open(out, "w") as f:
        json.dump({"lr": lr}, f)
"""


def test_a_call_stage_runs_the_function_and_depends_on_its_module(project: Project) -> None:
    project.write("params.yaml", "train:\n  lr: 0.1\n")
    project.write("src/fit.py", FIT_MODULE)
    write_pipeline(
        project,
        """
        stages:
          fit:
            call: src.fit:main
            kwargs:
              lr: ${train.lr}
              out: model.json
            params: [train.lr]
            outs: [model.json]
        """,
    )
    project.ok("run")
    assert calls(project) == ["fit"]
    assert json.loads((project.root / "model.json").read_text()) == {"lr": 0.1}
    entry = lock_data(project)["stages"]["fit"]
    assert entry["cmd"] == "call src.fit:main"
    assert entry["kwargs"] == {"lr": 0.1, "out": "model.json"}
    assert [d["path"] for d in entry["deps"]] == ["src/fit.py"]

    project.write("src/fit.py", FIT_MODULE + "# a comment changes the source\n")
    assert "dependency src/fit.py changed" in project.ok("status")
    project.ok("run")
    assert calls(project) == ["fit"]

    project.write("params.yaml", "train:\n  lr: 0.3\n")
    status = project.ok("status")
    assert "kwargs changed: lr 0.1 -> 0.3" in status and "param train.lr changed: 0.1 -> 0.3" in status
    project.ok("run")
    assert calls(project) == ["fit"]
    assert json.loads((project.root / "model.json").read_text()) == {"lr": 0.3}


def test_a_failing_call_stage_logs_the_traceback(project: Project) -> None:
    project.write("src/boom.py", "def main():\n    raise RuntimeError('no GPU here')\n")
    write_pipeline(project, "stages:\n  boom:\n    call: src.boom:main\n")
    result = project.cvy("run", "--quiet")
    assert result.code == 1
    line = the_error_line(result)
    assert "stage 'boom' failed: exit code 1" in line
    log = project.root / line.rsplit("its log: ", 1)[1]
    assert "RuntimeError: no GPU here" in log.read_text()


def test_wdir_runs_the_stage_there_and_paths_are_relative_to_it(project: Project) -> None:
    project.write("sub/in.txt", "inside\n")
    write_pipeline(
        project,
        """
        stages:
          inner:
            cmd: cat in.txt > out.txt && pwd > where.txt
            wdir: sub
            deps: [in.txt]
            outs: [out.txt, where.txt]
        """,
    )
    project.ok("run")
    assert (project.root / "sub" / "out.txt").read_text() == "inside\n"
    assert Path((project.root / "sub" / "where.txt").read_text().strip()).resolve() == (project.root / "sub").resolve()
    entry = lock_data(project)["stages"]["inner"]
    assert [d["path"] for d in entry["deps"]] == ["sub/in.txt"]
    assert [o["path"] for o in entry["outs"]] == ["sub/out.txt", "sub/where.txt"]
    project.write("sub/in.txt", "changed\n")
    assert "dependency sub/in.txt changed" in project.ok("status")


def test_env_reaches_the_command_and_a_change_makes_it_stale(project: Project) -> None:
    text = 'stages:\n  greet:\n    cmd: echo "$GREETING from $HOME_TOWN" > greet.txt\n    env:\n      GREETING: {}\n'
    text += "      HOME_TOWN: 7\n    outs: [greet.txt]\n"
    write_pipeline(project, text.format("hello"))
    project.ok("run")
    assert (project.root / "greet.txt").read_text() == "hello from 7\n"
    assert lock_data(project)["stages"]["greet"]["env"] == {"GREETING": "hello", "HOME_TOWN": "7"}
    write_pipeline(project, text.format("hi"))
    assert "env changed" in project.ok("status")
    project.ok("run")
    assert (project.root / "greet.txt").read_text() == "hi from 7\n"


def test_persist_outputs_are_kept_before_the_stage_runs(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          grow:
            cmd: echo line >> grow.txt
            outs:
              - grow.txt:
                  persist: true
          plain:
            cmd: echo line >> plain.txt
            outs: [plain.txt]
        """,
    )
    project.ok("run")
    first = lock_data(project)["stages"]["grow"]["outs"][0]["hash"]
    project.ok("run", "--force")
    assert (project.root / "grow.txt").read_text() == "line\nline\n"
    assert (project.root / "plain.txt").read_text() == "line\n"
    assert cache_object(project, first).read_text() == "line\n"  # appending did not write through into the cache


def test_uncached_outputs_stay_visible_to_git(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          report:
            cmd: >-
              echo m > model.bin && echo r > report.txt && echo '{"acc": 1}' > metrics.json
            outs:
              - model.bin
              - report.txt:
                  cache: false
            metrics: [metrics.json]
        """,
    )
    project.ok("run")

    def ignored(path: str) -> bool:
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=project.root, check=False)
        return check.returncode == 0

    assert ignored("model.bin")
    assert not ignored("report.txt") and not ignored("metrics.json")
    assert (project.root / ".gitignore").read_text().split() == ["/model.bin"]
    outs = {o["path"]: o for o in lock_data(project)["stages"]["report"]["outs"]}
    assert "cache" not in outs["model.bin"]
    assert outs["report.txt"]["cache"] is False and outs["metrics.json"]["cache"] is False


def test_switching_an_output_to_cache_false_takes_it_out_of_gitignore(project: Project) -> None:
    text = "stages:\n  rep:\n    cmd: echo r > report.txt\n    outs:\n      - report.txt:\n          cache: {}\n"
    write_pipeline(project, text.format("true"))
    project.ok("run")
    assert "/report.txt" in (project.root / ".gitignore").read_text()
    write_pipeline(project, text.format("false"))
    project.ok("run")
    assert lock_data(project)["stages"]["rep"]["outs"][0].get("cache") is False
    check = subprocess.run(["git", "check-ignore", "-q", "report.txt"], cwd=project.root, check=False)
    assert check.returncode == 1, "report.txt is still git-ignored"


def test_a_change_inside_a_folder_dependency_makes_the_stage_stale(project: Project) -> None:
    project.write("data/a.csv", "1\n")
    write_pipeline(
        project, "stages:\n  count:\n    cmd: ls data > listing.txt\n    deps: [data]\n    outs: [listing.txt]\n"
    )
    project.ok("run")
    assert lock_data(project)["stages"]["count"]["deps"][0]["kind"] == "dir"
    project.write("data/b.csv", "2\n")
    assert "dependency data changed" in project.ok("status")
    project.ok("run")
    assert (project.root / "listing.txt").read_text() == "a.csv\nb.csv\n"


def test_always_run_runs_every_time_but_not_its_unchanged_downstream(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          stamp:
            cmd: echo stamp >> calls.log; echo same > stamp.txt
            outs: [stamp.txt]
            always_run: true
          use:
            cmd: echo use >> calls.log; cat stamp.txt > use.txt
            deps: [stamp.txt]
            outs: [use.txt]
        """,
    )
    project.ok("run")
    assert calls(project) == ["stamp", "use"]
    assert "always-run: stamp\n    always_run is set" in project.ok("status")
    assert statuses(project) == {"stamp": "ran", "use": "up-to-date"}
    assert calls(project) == ["stamp"]


def test_a_frozen_stage_never_runs_and_keeps_its_lock_entry(project: Project) -> None:
    project.write("source.txt", "v1\n")
    text = """
        stages:
          fetch:
            cmd: echo fetch >> calls.log; cat source.txt > fetched.txt
            deps: [source.txt]
            outs: [fetched.txt]
            frozen: {}
          use:
            cmd: echo use >> calls.log; cat fetched.txt > used.txt
            deps: [fetched.txt]
            outs: [used.txt]
        """
    write_pipeline(project, text.format("false"))
    project.ok("run")
    assert calls(project) == ["fetch", "use"]
    before = lock_data(project)["stages"]["fetch"]
    write_pipeline(project, text.format("true"))
    project.write("source.txt", "v2\n")
    assert "Pipeline is up to date" in project.ok("status")
    assert statuses(project) == {"fetch": "frozen", "use": "up-to-date"}
    assert calls(project) == []
    assert "· frozen: fetch" in project.ok("run", "-v")
    assert lock_data(project)["stages"]["fetch"] == before
    assert (project.root / "fetched.txt").read_text() == "v1\n"
    write_pipeline(project, text.format("false"))
    project.ok("run")
    assert calls(project) == ["fetch", "use"]


def test_each_stage_has_a_log_under_its_run_id(project: Project) -> None:
    write_pipeline(
        project,
        "stages:\n  talk:\n    cmd: echo to-stdout; echo to-stderr >&2; echo > talk.txt\n    outs: [talk.txt]\n",
    )
    result = project.cvy("run")
    assert result.code == 0, result.err
    assert "to-stdout" in result.out and "to-stderr" in result.err  # streamed to the terminal too
    run_id = result.out.strip().splitlines()[-1].split("; run ", 1)[1].split(".", 1)[0]
    log = project.root / ".conveyor" / "logs" / run_id / "talk.log"
    assert log.read_text().splitlines() in (["to-stdout", "to-stderr"], ["to-stderr", "to-stdout"])
    quiet = project.cvy("run", "--force", "--quiet", "--json")
    assert "to-stdout" not in quiet.out and "to-stderr" not in quiet.err
    stage = json.loads(quiet.out)["stages"][0]
    assert stage["log"].startswith(".conveyor/logs/") and stage["log"].endswith("/talk.log")
    assert "to-stdout" in (project.root / stage["log"]).read_text()


# -- the lock -------------------------------------------------------------------------------------

DETERMINISTIC = """
stages:
  zeta:
    cmd: mkdir -p out && cat b.txt a.txt > out/joined.txt && echo z > out/z.txt
    deps: [b.txt, a.txt]
    outs: [out]
  alpha:
    cmd: >-
      echo alpha > alpha.txt && echo '{"score": 0.5}' > metrics.json
    params: [train.lr, train.depth, {other.yaml: [seed]}]
    env: {B: "2", A: "1"}
    outs:
      - alpha.txt
    metrics: [metrics.json]
  mid:
    foreach: [two, one]
    do:
      cmd: cat out/z.txt alpha.txt > mid-${item}.txt
      deps: [out/z.txt, alpha.txt]
      outs:
        - mid-${item}.txt
"""


def test_the_lock_is_byte_identical_across_fresh_repos_and_sorted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = []
    for name in ("one", "two"):
        project = new_project(tmp_path / name, capsys)
        project.write("a.txt", "a\n")
        project.write("b.txt", "b\n")
        project.write("params.yaml", "train:\n  lr: 0.1\n  depth: 3\n")
        project.write("other.yaml", "seed: 7\n")
        write_pipeline(project, DETERMINISTIC)
        project.ok("run", "-j", "1" if name == "one" else "4")
        texts.append(lock_text(project))
    assert texts[0] == texts[1]
    assert str(tmp_path) not in texts[0]
    data = yaml.safe_load(texts[0])
    assert list(data) == ["schema", "stages"]
    assert list(data["stages"]) == ["alpha", "mid@one", "mid@two", "zeta"]
    zeta = data["stages"]["zeta"]
    assert [d["path"] for d in zeta["deps"]] == ["a.txt", "b.txt"]
    assert zeta["outs"][0]["kind"] == "dir" and zeta["outs"][0]["files"] == 2
    alpha = data["stages"]["alpha"]
    assert list(alpha["env"]) == ["A", "B"]
    assert alpha["params"] == {"other.yaml": {"seed": 7}, "params.yaml": {"train.depth": 3, "train.lr": 0.1}}
    for entry in data["stages"].values():
        assert list(entry) == [k for k in ("cmd", "kwargs", "env", "deps", "params", "outs") if k in entry]
    project.ok("run", "--force")  # same facts, same bytes
    assert lock_text(project) == texts[1]


def test_a_damaged_lock_is_refused_with_a_fix(pipeline: Project) -> None:
    lock = pipeline.root / "conveyor.lock"
    lock.write_text("schema: 1\nstages: [\n")
    result = pipeline.cvy("run")
    assert result.code == 2
    line = the_error_line(result)
    assert "conveyor.lock: the lock file is damaged" in line and "git checkout conveyor.lock" in line
    lock.write_text("schema: 1\n<<<<<<< HEAD\nstages: {}\n=======\nstages: {}\n>>>>>>> other\n")
    assert "unresolved git merge conflict markers" in the_error_line(pipeline.cvy("status"))
    assert calls(pipeline) == []


# -- run --verify ---------------------------------------------------------------------------------


def test_verify_tells_a_deterministic_stage_from_a_random_one(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          det:
            cmd: echo stable > det.txt
            outs: [det.txt]
          noise:
            cmd: od -An -N16 -tx1 /dev/urandom > rand.txt
            outs: [rand.txt]
        """,
    )
    project.ok("run")
    lock = lock_text(project)
    rand = (project.root / "rand.txt").read_bytes()

    def status() -> list[str]:  # conveyor's local caches (state.db, ...) may come and go; nothing else
        lines = project.git("status", "--porcelain", "--ignored").splitlines()
        return [line for line in lines if not line.startswith("!! .conveyor/")]

    git_status = status()
    runs = sorted((project.root / ".conveyor" / "cache" / "runs").rglob("*.json"))
    result = project.cvy("run", "--verify")
    assert result.code == 1
    assert "✔ reproducible: det" in result.out
    assert "✘ NOT reproducible: noise\n    rand.txt: differs from conveyor.lock\n" in result.out
    assert "1 stage not reproducible: noise" in the_error_line(result)
    assert lock_text(project) == lock
    assert (project.root / "rand.txt").read_bytes() == rand
    assert status() == git_status
    assert sorted((project.root / ".conveyor" / "cache" / "runs").rglob("*.json")) == runs
    assert "✔ reproducible: det" in project.ok("run", "--verify", "det")


def test_verify_names_the_differing_files_of_a_folder(project: Project) -> None:
    write_pipeline(
        project,
        "stages:\n  gen:\n    cmd: mkdir -p out && echo s > out/same.txt && od -An -N8 -tx1 /dev/urandom > out/r.txt\n"
        "    outs: [out]\n",
    )
    project.ok("run")
    result = project.cvy("run", "--verify")
    assert result.code == 1
    assert "    out/r.txt: differs from conveyor.lock\n" in result.out
    assert "out/same.txt" not in result.out


def test_verify_refuses_a_stale_stage(pipeline: Project) -> None:
    pipeline.write("params.yaml", "train:\n  lr: 0.5\n")
    result = pipeline.cvy("run", "--verify", "train")
    assert result.code == 1
    assert "✔ reproducible: prepare" in result.out
    assert "✘ could not verify: train — stale (param train.lr changed: 0.1 -> 0.5)" in result.out
    assert calls(pipeline) == []


def test_an_interrupt_during_a_record_write_waits_for_the_write_to_end() -> None:
    import threading

    from conveyor.pipeline._runner import interrupts_deferred

    assert threading.current_thread() is threading.main_thread()  # signals reach only the main thread
    finished = False
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here: held, not raised
        finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_run_that_takes_too_long_is_stopped_and_keeps_what_finished(project: Project) -> None:
    write_pipeline(
        project,
        "stages:\n"
        "  quick:\n    cmd: echo done > quick.txt\n    outs: [quick.txt]\n"
        "  slow:\n    cmd: echo $$ > slow.pid; sleep 60; echo > slow.txt\n    deps: [quick.txt]\n    outs: [slow.txt]\n"
        "  after:\n    cmd: echo > after.txt\n    deps: [slow.txt]\n    outs: [after.txt]\n",
    )
    started = time.monotonic()
    result = project.run("run", "-j", "1", "--timeout", "2")
    assert time.monotonic() - started < 30
    assert result.code == 1, result
    assert "error: the run timed out after 2 s: stopped slow" in result.err
    assert "skipped: after" in result.err and "the run timed out" in result.err
    assert wait_until(lambda: gone(pid_from(project.root / "slow.pid")), 5)
    assert set(Lock.read(project.root / "conveyor.lock").entries) == {"quick"}
    again = project.run("run", "-n")  # the next run continues where this one stopped
    assert "would run: slow" in again.out and "would run: after" in again.out
    assert "would run: quick" not in again.out
    bad = project.run("run", "--timeout", "0")
    assert bad.code == 2 and "--timeout 0: must be positive" in bad.err


def test_stages_that_need_every_cpu_never_run_side_by_side_and_priority_orders_the_rest(project: Project) -> None:
    cpus = os.cpu_count() or 1
    stage = "  {0}:\n    cmd: date +%s.%N > {0}.start; sleep 0.6; date +%s.%N > {0}.end\n    outs: [{0}.end]\n"
    heavy = "    resources: {{cpus: {1}, memory: 2GB}}\n"
    write_pipeline(
        project,
        "stages:\n"
        + stage.format("big1")
        + heavy.format("big1", cpus)
        + stage.format("big2")
        + heavy.format("big2", cpus)
        + "    priority: 5\n",
    )
    result = project.run("run", "-j", "2")
    assert result.code == 0, result

    def span(name: str) -> tuple[float, float]:
        return tuple(float((project.root / f"{name}.{end}").read_text()) for end in ("start", "end"))  # type: ignore[return-value]

    (s1, e1), (s2, e2) = span("big1"), span("big2")
    assert e2 <= s1 or e1 <= s2, "two stages that each need every CPU ran at the same time"
    assert s2 < s1, "the higher priority stage (big2) should start first"
    light = "stages:\n" + "".join(stage.format(n) + "    resources: {cpus: 0.5}\n" for n in ("l1", "l2"))
    write_pipeline(project, light)
    assert project.run("run", "-j", "2").code == 0
    (a1, b1), (a2, b2) = span("l1"), span("l2")
    assert a1 < b2 and a2 < b1, "two half-CPU stages should share the machine"


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ("{cpu: 2}", "unknown resource 'cpu'"),
        ("{cpus: 0}", "must be more than 0"),
        ("{memory: lots}", "'lots' is not a size"),
        ("{gpus: -1}", "must not be negative"),
    ],
)
def test_bad_resources_are_one_line_with_their_place(project: Project, resources: str, message: str) -> None:
    write_pipeline(project, f"stages:\n  s:\n    cmd: echo\n    resources: {resources}\n")
    result = project.run("run")
    assert result.code == 2 and "conveyor.yaml:4:" in result.err and message in result.err, result


def test_the_live_view_of_a_run_is_written_at_most_five_times_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.pipeline import _live

    writes: list[str] = []
    real = _live._fs.atomic_write_text

    def counted(path: Path, text: str, **kwargs: Any) -> None:
        if Path(path).name == "run.json":
            writes.append(text)
        real(path, text, **kwargs)

    monkeypatch.setattr(_live._fs, "atomic_write_text", counted)
    publisher = _live.LivePublisher(tmp_path, "run-1")
    started = time.monotonic()
    for i in range(2000):  # a run of quick stages: the running set changes all the time
        publisher.update((f"stage{i}",))
        publisher.flush()
    elapsed = time.monotonic() - started
    assert 1 <= len(writes) <= 1 + elapsed / _live.MIN_GAP
    seen = _live.live_run(tmp_path)
    assert seen is not None and seen.run_id == "run-1" and seen.pid == os.getpid()
    time.sleep(_live.MIN_GAP)
    publisher.flush()  # the last change reaches the file once the gap has passed
    seen = _live.live_run(tmp_path)
    assert seen is not None and seen.running == ("stage1999",)
    publisher.close()
    assert _live.live_run(tmp_path) is None
