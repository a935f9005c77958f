"""``call`` stages run in children forked by a warm server: each as fresh as a new interpreter.

The runner starts one fork server per run; these tests check that what a stage sees and
leaves behind is what a new ``python -c`` process would give: its own environment, folder,
exit code and process group, no state from the stage before it, and a clear failure (never a
hang) when the server itself dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from conftest import CONVEYOR_BIN, Project
from conveyor.pipeline._executor import Outcome, StageProcess, Terminal
from conveyor.pipeline._forkserver import ForkServer
from conveyor.pipeline._spec import Stage

PROBE = """
import json, os, sys, threading, time

SEEN = []

def probe(out, mark=None):
    SEEN.append(out)  # module state: a fresh process starts with an empty list every time
    with open(out, "w") as f:
        json.dump({"seen": list(SEEN), "cwd": os.getcwd(), "stage": os.environ.get("CONVEYOR_STAGE"),
                   "leaked": os.environ.get("LEAKED"), "greeting": os.environ.get("GREETING"),
                   "argv": sys.argv[1:3], "sid": os.getsid(0) == os.getpid()}, f)
    print("printed to stdout")
    print("printed to stderr", file=sys.stderr)
    if mark:  # must not reach the next stage
        os.environ["LEAKED"] = "yes"
        os.chdir("/")

def exit_with(code):
    sys.exit(code)

def late_thread(out):
    def work():
        time.sleep(0.3)
        with open(out, "w") as f:
            f.write("the thread finished")
    threading.Thread(target=work).start()  # not a daemon: the stage ends when it does

KEPT = None

def keep_open(out):
    global KEPT
    KEPT = open(out, "w")  # never closed: the interpreter's exit flushes it, so must the stage's
    KEPT.write("buffered, never flushed by the stage")

def hang(pidfile):
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
"""


def wait_for_pid(path: Path, timeout: float = 20) -> int:
    """The pid a stage wrote to ``path`` (it may exist a moment before it holds the number)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(path.read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.02)
    raise AssertionError(f"no pid in {path} after {timeout} s")


def call_stage(name: str, call: str, kwargs: dict[str, object]) -> Stage:
    return Stage(name=name, cmd=None, call=call, kwargs=kwargs, deps=(), params=(), outs=(), env={}, wdir=".")


def write(project: Project, pipeline: str) -> None:
    project.write("probe.py", PROBE)
    project.write("conveyor.yaml", textwrap.dedent(pipeline).lstrip("\n"))


def test_each_call_stage_gets_a_fresh_process_with_its_own_folder_and_environment(project: Project) -> None:
    write(
        project,
        """
        stages:
          first:
            call: probe:probe
            kwargs: {out: first.json, mark: true}
            env: {GREETING: hello}
            outs: [first.json]
          second:
            call: probe:probe
            kwargs: {out: second.json}
            wdir: sub
            deps: [../first.json]
            outs: [second.json]
        """,
    )
    project.write("sub/probe.py", PROBE)  # a call stage imports from its own folder, as `python -c` there would
    result = project.ok("run", "-j", "1")
    assert "printed to stdout" in result
    first = json.loads((project.root / "first.json").read_text())
    second = json.loads((project.root / "sub" / "second.json").read_text())
    assert first["seen"] == ["first.json"] and second["seen"] == ["second.json"]  # no state carried over
    assert first["stage"] == "first" and second["stage"] == "second"
    assert first["greeting"] == "hello" and second["greeting"] is None
    assert second["leaked"] is None  # the first stage's os.environ change stayed in its process
    assert Path(second["cwd"]).resolve() == (project.root / "sub").resolve()
    assert first["argv"] == ["probe", "probe"]
    assert first["sid"] and second["sid"]  # each in a session of its own: a timeout kills its whole group


def test_exit_codes_threads_and_output_are_those_of_a_new_interpreter(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    server = ForkServer(str(tmp_path), dict(os.environ))
    try:

        def run(call: str, **kwargs: object) -> tuple[int | None, str]:
            stage = call_stage("s", call, kwargs)
            log = tmp_path / "s.log"
            outcome = StageProcess(
                stage, tmp_path, log, Terminal(prefix=False, quiet=True), threading.Event(), None, server
            ).run()
            return outcome.returncode, log.read_text()

        assert run("probe:exit_with", code=3)[0] == 3
        assert run("probe:exit_with", code=0)[0] == 0
        code, log = run("probe:probe", out="x.json")
        assert code == 0 and "printed to stdout" in log and "printed to stderr" in log
        assert run("probe:keep_open", out="kept.txt")[0] == 0
        assert (tmp_path / "kept.txt").read_text() == "buffered, never flushed by the stage"
        assert run("probe:late_thread", out="thread.txt")[0] == 0
        assert (tmp_path / "thread.txt").read_text() == "the thread finished"  # joined before the stage ended
        code, log = run("probe:no_such_function")
        assert code == 1 and "AttributeError" in log and "_forkserver" not in log  # the traceback starts at the stage
    finally:
        server.close()


def test_a_call_stage_that_sets_pythonpath_gets_an_interpreter_of_its_own(project: Project) -> None:
    project.write("lib/helper_mod.py", "VALUE = 'from PYTHONPATH'\n")
    project.write("uses.py", "def main():\n    import helper_mod\n    open('v.txt', 'w').write(helper_mod.VALUE)\n")
    write(project, "stages:\n  s:\n    call: uses:main\n    env: {PYTHONPATH: lib}\n    outs: [v.txt]\n")
    project.ok("run")
    assert (project.root / "v.txt").read_text() == "from PYTHONPATH"


def test_a_timeout_kills_the_forked_stage(project: Project) -> None:
    write(project, "stages:\n  s:\n    call: probe:hang\n    kwargs: {pidfile: s.pid}\n    timeout: 1\n")
    result = project.cvy("run")
    assert result.code == 1 and "timed out after 1 s" in result.err
    pid = int((project.root / "s.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_dead_fork_server_fails_the_stage_instead_of_hanging(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    server = ForkServer(str(tmp_path), dict(os.environ))
    try:
        stage = call_stage("s", "probe:hang", {"pidfile": "s.pid"})
        results: list[Outcome] = []
        process = StageProcess(
            stage, tmp_path, tmp_path / "s.log", Terminal(prefix=False, quiet=True), threading.Event(), None, server
        )
        worker = threading.Thread(target=lambda: results.append(process.run()))
        worker.start()
        child = wait_for_pid(tmp_path / "s.pid")
        os.kill(server._proc.pid, signal.SIGKILL)
        os.killpg(child, signal.SIGKILL)  # the orphaned stage, which nobody would stop otherwise
        worker.join(timeout=10)
        assert not worker.is_alive()
        outcome = results[0]
        assert outcome.ok is False
        assert "fork server" in str(outcome.error)
        # a stage after that runs in an interpreter of its own
        again = StageProcess(
            call_stage("t", "probe:exit_with", {"code": 4}),
            tmp_path,
            tmp_path / "t.log",
            Terminal(prefix=False, quiet=True),
            threading.Event(),
            None,
            server,
        ).run()
        assert again.returncode == 4
    finally:
        server.close()


def test_the_server_outlives_a_killed_runner_only_as_long_as_its_children(project: Project) -> None:
    write(project, "stages:\n  s:\n    call: probe:hang\n    kwargs: {pidfile: s.pid}\n")
    proc = subprocess.Popen(
        [CONVEYOR_BIN, "run"],
        cwd=project.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = wait_for_pid(project.root / "s.pid")
    server = int(subprocess.check_output(["ps", "-o", "ppid=", "-p", str(child)]).decode().strip())
    proc.kill()
    proc.wait()
    os.kill(server, 0)  # still there: its child runs on, as a subprocess's would
    os.killpg(child, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the fork server outlived its runner and its last child")


# -- process: shared -------------------------------------------------------------------------------

SHARED = """
stages:
  first:
    call: probe:probe
    kwargs: {out: first.json, mark: true}
    process: shared
    outs: [first.json]
  second:
    call: probe:probe
    kwargs: {out: second.json}
    process: shared
    deps: [first.json]
    outs: [second.json]
  third:
    call: probe:exit_with
    kwargs: {code: 5}
    process: shared
    deps: [second.json]
"""


def test_shared_stages_reuse_one_process_and_get_their_folder_and_environment_back(project: Project) -> None:
    write(project, SHARED)
    result = project.cvy("run", "-j", "1")
    assert result.code == 1 and "stage 'third' failed: exit code 5" in result.err  # sys.exit is its code
    first = json.loads((project.root / "first.json").read_text())
    second = json.loads((project.root / "second.json").read_text())
    assert second["seen"] == ["first.json", "second.json"]  # one process: module state carries over
    assert second["leaked"] is None  # but not the first stage's environment change
    assert second["stage"] == "second" and first["stage"] == "first"
    assert Path(second["cwd"]).resolve() == project.root.resolve()


def test_a_shared_process_killed_by_a_timeout_is_replaced(project: Project) -> None:
    write(
        project,
        """
        stages:
          slow:
            call: probe:hang
            kwargs: {pidfile: slow.pid}
            process: shared
            timeout: 1
          after:
            call: probe:probe
            kwargs: {out: after.json}
            process: shared
            outs: [after.json]
        """,
    )
    result = project.cvy("run", "-j", "1", "-k")
    assert result.code == 1 and "timed out after 1 s" in result.err
    slow = int((project.root / "slow.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(slow, 0)
    after = json.loads((project.root / "after.json").read_text())
    assert after["seen"] == ["after.json"]  # a new process, not the killed one


def test_process_shared_is_for_call_stages_only(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: echo hi\n    process: shared\n")
    result = project.cvy("run")
    assert result.code == 2 and "Traceback" not in result.err
    assert "conveyor.yaml:4" in result.err and "only a call: stage can share a process" in result.err
    project.write("conveyor.yaml", "stages:\n  s:\n    call: m:f\n    process: pooled\n")
    result = project.cvy("run")
    assert result.code == 2 and "'pooled' is not a process mode" in result.err
