"""Regression tests for defects a review found in the pipeline engine.

One test per defect, each driving the real CLI (in-process, or the real ``conveyor``
executable where signals, pipes or process groups matter) in a temporary git repository.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml

from conftest import CONVEYOR_BIN, Project, Result

# -- helpers --------------------------------------------------------------------------------------


def write_pipeline(project: Project, text: str) -> None:
    project.write("conveyor.yaml", textwrap.dedent(text).lstrip("\n"))


def lock_data(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((project.root / "conveyor.lock").read_text())
    return data


def cache_object(project: Project, digest: str) -> Path:
    return project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]


def the_error_line(result: Result) -> str:
    assert "Traceback" not in result.err, result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.err
    return errors[0]


def stale_text(project: Project) -> str:
    """``conveyor status`` (which exits 0 whether or not something is stale): what it prints."""
    return project.ok("status")


PERSIST = """
stages:
  grow:
    cmd: echo ${n} >> hist.txt
    params: [n]
    outs:
      - hist.txt:
          persist: true
"""


# -- 1. inputs that change while the stage runs ---------------------------------------------------

REWRITE_PARAMS = """\
import yaml

with open("params.yaml") as f:
    lr = yaml.safe_load(f)["lr"]
with open("params.yaml", "w") as f:
    f.write("lr: 3\\n")
with open("model.txt", "w") as f:
    f.write(f"trained with {lr}\\n")
"""


def test_a_param_rewritten_while_the_stage_runs_leaves_it_stale_and_out_of_the_run_cache(project: Project) -> None:
    project.write("params.yaml", "lr: 0.1\n")
    project.write("rewrite.py", REWRITE_PARAMS)
    write_pipeline(
        project,
        f"""
        stages:
          train:
            cmd: {sys.executable} rewrite.py
            params: [lr]
            outs: [model.txt]
        """,
    )
    project.ok("run")
    assert (project.root / "model.txt").read_text() == "trained with 0.1\n"
    assert (project.root / "params.yaml").read_text() == "lr: 3\n"

    status = stale_text(project)
    assert "stale: train" in status, status
    assert re.search(r"param lr changed: 0\.1 -> 3\b", status), status

    # no run-cache entry was written for that run: going back to lr 0.1 must run the command
    project.write("params.yaml", "lr: 0.1\n")
    (project.root / "model.txt").unlink()
    out = project.ok("run")
    assert "✔ ran: train" in out, out
    assert "restored" not in out, out


# -- 2. a persistent output that is a hard link into the cache ------------------------------------


def test_a_persistent_output_hard_linked_into_the_cache_is_not_written_through(project: Project) -> None:
    project.ok("config", "cache.link", "hardlink")
    project.write("params.yaml", "n: 1\n")
    write_pipeline(project, PERSIST)
    project.ok("run")
    first = lock_data(project)["stages"]["grow"]["outs"][0]["hash"]

    hist = project.root / "hist.txt"
    hist.unlink()
    project.ok("checkout")
    assert hist.read_text() == "1\n"
    assert hist.stat().st_nlink > 1, "checkout did not hard-link the output (the scenario needs a link)"

    project.write("params.yaml", "n: 2\n")
    project.ok("run")
    assert hist.read_text() == "1\n2\n"
    assert cache_object(project, first).read_bytes() == b"1\n"
    result = project.cvy("verify")
    assert result.code == 0, (result.out, result.err)


# -- 3. the execute bit of a file output ----------------------------------------------------------


def test_the_execute_bit_of_a_file_output_survives_a_restore(project: Project) -> None:
    write_pipeline(
        project,
        r"""
        stages:
          build:
            cmd: printf '#!/bin/sh\necho hi\n' > tool && chmod +x tool
            outs: [tool]
        """,
    )
    project.ok("run")
    tool = project.root / "tool"
    assert os.access(tool, os.X_OK)
    assert lock_data(project)["stages"]["build"]["outs"][0].get("executable") is True

    tool.unlink()
    project.ok("checkout")
    assert tool.read_text() == "#!/bin/sh\necho hi\n"
    assert tool.stat().st_mode & stat.S_IXUSR, oct(tool.stat().st_mode)
    assert "up to date" in stale_text(project)


# -- 4. a params file that another stage writes ---------------------------------------------------


def test_a_params_file_written_by_another_stage_orders_the_stages(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          train:
            cmd: echo train >> calls.log && cat cfg.yaml > model.txt
            params:
              - cfg.yaml:
                  - lr
            outs: [model.txt]
          gen:
            cmd: "echo gen >> calls.log && echo 'lr: 0.5' > cfg.yaml"
            outs: [cfg.yaml]
        """,
    )
    result = project.cvy("run", "-j", "1")
    assert result.code == 0, result.err
    assert (project.root / "calls.log").read_text().split() == ["gen", "train"]
    assert (project.root / "model.txt").read_text() == "lr: 0.5\n"
    assert lock_data(project)["stages"]["train"]["params"] == {"cfg.yaml": {"lr": 0.5}}
    dot = project.ok("dag", "--dot")
    assert re.search(r'"?gen"?\s*->\s*"?train"?', dot), dot


# -- 5. a background process the stage leaves behind ----------------------------------------------


def test_a_background_process_left_by_a_stage_is_stopped_when_the_stage_ends(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          bg:
            cmd: (sleep 5; echo late >> out.txt) & echo early > out.txt
            outs: [out.txt]
        """,
    )
    started = time.monotonic()
    result = project.run("run", timeout=30)
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    assert elapsed < 4, f"conveyor run waited {elapsed:.1f} s for the stage's background process"
    time.sleep(1.5)
    assert (project.root / "out.txt").read_text() == "early\n"


# -- 6. unexpected trouble fails one stage, not the whole run -------------------------------------


def test_an_output_that_is_a_dangling_symlink_fails_the_stage_cleanly(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          dangle:
            cmd: ln -s missing out.txt
            outs: [out.txt]
        """,
    )
    result = project.run("run")
    assert result.code == 1, (result.out, result.err)
    line = the_error_line(result)
    assert "stage 'dangle'" in line and "out.txt" in line, line


def test_an_unquoted_date_in_kwargs_is_a_spec_error_with_a_hint(project: Project) -> None:
    project.write("job.py", "def main(when):\n    open('when.txt', 'w').write(str(when))\n")
    write_pipeline(
        project,
        """
        stages:
          job:
            call: job:main
            kwargs:
              when: 2024-01-02
            outs: [when.txt]
        """,
    )
    result = project.run("run")
    assert result.code == 2, (result.out, result.err)
    line = the_error_line(result)
    match = re.match(r"error: conveyor\.yaml:(\d+):(\d+): (.*)$", line)
    assert match, line
    assert int(match.group(1)) == 5, line  # the line of `when: 2024-01-02`
    assert "stages.job.kwargs.when" in match.group(3), line
    assert "quote" in result.err.lower(), result.err


# -- 7. a damaged cache object met during a run-cache restore -------------------------------------


def test_a_damaged_object_during_a_run_cache_restore_runs_the_stage_instead(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          copy:
            cmd: cp params.yaml out.txt
            params: [v]
            outs: [out.txt]
        """,
    )
    project.write("params.yaml", "v: 1\n")
    project.ok("run")
    first = lock_data(project)["stages"]["copy"]["outs"][0]["hash"]
    project.write("params.yaml", "v: 2\n")
    project.ok("run")
    assert (project.root / "out.txt").read_text() == "v: 2\n"

    obj = cache_object(project, first)
    obj.chmod(obj.stat().st_mode | stat.S_IWUSR)
    obj.write_bytes(b"garbage, not the v=1 output\n")
    project.write("params.yaml", "v: 1\n")
    result = project.cvy("run")
    assert result.code == 0, result.err
    assert (project.root / "out.txt").read_bytes() == b"v: 1\n"
    assert "✔ ran: copy" in result.out, (result.out, result.err)
    assert "restored from the run cache: copy" not in result.out


def test_rerunning_after_a_damaged_run_cache_object_heals_the_cache(project: Project) -> None:
    write_pipeline(
        project,
        """
        stages:
          copy:
            cmd: cp params.yaml out.txt
            params: [v]
            outs: [out.txt]
        """,
    )
    project.write("params.yaml", "v: 1\n")
    project.ok("run")
    first = lock_data(project)["stages"]["copy"]["outs"][0]["hash"]
    project.write("params.yaml", "v: 2\n")
    project.ok("run")
    obj = cache_object(project, first)
    obj.chmod(obj.stat().st_mode | stat.S_IWUSR)
    obj.write_bytes(b"garbage, not the v=1 output\n")
    project.write("params.yaml", "v: 1\n")
    project.ok("run")
    assert lock_data(project)["stages"]["copy"]["outs"][0]["hash"] == first
    assert obj.read_bytes() == b"v: 1\n"
    (project.root / "out.txt").unlink()
    assert project.cvy("checkout").code == 0
    assert (project.root / "out.txt").read_bytes() == b"v: 1\n"


# -- 8. --verify with a symlink to the parent folder ----------------------------------------------


def test_verify_copes_with_a_symlink_to_the_parent_and_runs_outside_the_workspace(project: Project) -> None:
    real = os.path.realpath(project.root)
    # "leaked" when the stage runs below the real workspace, or git finds the real project from where it runs
    write_pipeline(
        project,
        """
        stages:
          where:
            cmd: >-
              here=$(pwd -P);
              top=$(git rev-parse --show-toplevel 2>/dev/null || echo none);
              case "$here" in "$REAL") echo ok ;; "$REAL"/*) echo leaked ;; *)
              if [ "$top" = "$REAL" ]; then echo leaked; else echo ok; fi ;; esac > where.txt
            env:
              REAL: "REAL_ROOT"
            outs: [where.txt]
        """.replace("REAL_ROOT", real),
    )
    os.symlink("..", project.root / "up")
    project.commit("a pipeline and a symlink up")
    project.ok("run")
    assert (project.root / "where.txt").read_text() == "ok\n"

    started = time.monotonic()
    result = project.run("run", "--verify", timeout=10)
    elapsed = time.monotonic() - started
    assert result.code == 0, (result.out, result.err)
    assert elapsed < 10
    assert "reproducible: where" in result.out and "NOT reproducible" not in result.out, result.out
    tmp = project.root / ".conveyor" / "tmp"
    leftovers = [p.name for p in tmp.iterdir()] if tmp.exists() else []
    assert not [n for n in leftovers if "verify" in n], leftovers


# -- 9. a dependency folder holding `conveyor add`-ed files ---------------------------------------


def test_a_dependency_folder_holding_added_files_works(project: Project) -> None:
    project.write("data/raw.csv", "x\n")
    project.ok("add", "data/raw.csv")
    write_pipeline(
        project,
        """
        stages:
          use:
            cmd: cat data/raw.csv > copy.txt
            deps: [data]
            outs: [copy.txt]
        """,
    )
    result = project.cvy("run")
    assert result.code == 0, result.err
    assert (project.root / "copy.txt").read_text() == "x\n"
    status = project.cvy("status")
    assert status.code == 0, status.err
    assert "Pipeline is up to date" in status.out, status.out

    project.write("data/raw.csv", "y\n")
    status = project.cvy("status")
    assert status.code == 0, status.err
    assert "stale: use" in status.out, status.out
    assert "data" in status.out
    project.ok("run")
    assert (project.root / "copy.txt").read_text() == "y\n"


# -- 10. persistent outputs and the run cache -----------------------------------------------------


def test_a_stage_with_a_persistent_output_never_uses_the_run_cache(project: Project) -> None:
    write_pipeline(project, PERSIST)
    outputs = []
    for n in (1, 2, 1):
        project.write("params.yaml", f"n: {n}\n")
        outputs.append(project.ok("run"))
    assert (project.root / "hist.txt").read_text() == "1\n2\n1\n"
    assert "✔ ran: grow" in outputs[-1], outputs[-1]
    assert "restored" not in outputs[-1], outputs[-1]


# -- 11. kwargs types and wdir are part of what a stage is ----------------------------------------


def test_a_kwargs_type_change_makes_the_stage_stale(project: Project) -> None:
    project.write("fn.py", "def main(x):\n    open('x.txt', 'w').write(repr(x))\n")
    spec = """
        stages:
          fn:
            call: fn:main
            kwargs: {x: %s}
            outs: [x.txt]
        """
    write_pipeline(project, spec % "1")
    project.ok("run")
    assert (project.root / "x.txt").read_text() == "1"
    write_pipeline(project, spec % "true")
    status = stale_text(project)
    assert "stale: fn" in status, status
    assert "kwargs" in status, status
    project.ok("run")
    assert (project.root / "x.txt").read_text() == "True"


def test_a_wdir_change_makes_the_stage_stale(project: Project) -> None:
    (project.root / "a").mkdir()
    (project.root / "b").mkdir()
    spec = """
        stages:
          name:
            cmd: basename "$PWD" > ../name.txt
            wdir: %s
            outs: [../name.txt]
        """
    write_pipeline(project, spec % "a")
    project.ok("run")
    assert (project.root / "name.txt").read_text() == "a\n"
    assert "Pipeline is up to date" in stale_text(project)
    write_pipeline(project, spec % "b")
    status = stale_text(project)
    assert "stale: name" in status, status
    project.ok("run")
    assert (project.root / "name.txt").read_text() == "b\n"


# -- 12. a reader that goes away (`conveyor run | head -1`) ---------------------------------------

CHATTY = """
stages:
  chatty:
    cmd: >-
      i=1; while [ $i -le 2000 ]; do
      echo "line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
      i=$((i+1)); done; echo done > out.txt
    outs: [out.txt]
"""


def run_and_read_one_line(project: Project) -> tuple[bytes, int, str]:
    """``conveyor run | head -1``: read one line of stdout, close the pipe, wait for conveyor."""
    # 2,000 lines of ~90 bytes: far more than a pipe buffer, so conveyor is still writing when the reader leaves
    write_pipeline(project, CHATTY)
    proc = subprocess.Popen(
        [CONVEYOR_BIN, "run"],
        cwd=project.root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert first.startswith(b"line 1 "), first
    return first, code, err


def test_a_broken_stdout_pipe_does_not_kill_the_stage(project: Project) -> None:
    _first, _code, err = run_and_read_one_line(project)
    assert "Traceback" not in err, err
    assert (project.root / "out.txt").read_text() == "done\n"
    outs = lock_data(project)["stages"]["chatty"]["outs"]
    assert [o["path"] for o in outs] == ["out.txt"]
    logs = list((project.root / ".conveyor" / "logs").glob("*/chatty.log"))
    assert len(logs) == 1, logs
    lines = [line for line in logs[0].read_text().splitlines() if line.startswith("line ")]
    assert len(lines) == 2000
    assert lines[-1].startswith("line 2000 ")
    assert "Pipeline is up to date" in stale_text(project)


def test_a_broken_stdout_pipe_exits_0_or_141_not_as_a_failure(project: Project) -> None:
    _first, code, err = run_and_read_one_line(project)
    # 0 (the run succeeded) or 141 (128 + SIGPIPE, as a shell reports a writer stopped by `head`); never 1
    assert code in (0, 128 + signal.SIGPIPE), (code, err)


# -- 13. SIGHUP during a run: covered by test_a_hangup_stops_the_stages_too in test_pipeline_run.py
