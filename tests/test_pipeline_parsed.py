"""The parsed conveyor.yaml and lock are reused only while every file they came from is unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import Project


def age(*paths: Path, seconds: float = 10) -> None:
    """Make files look settled (older than the racy window), so their parse is kept.

    The mtime can be set back, the ctime cannot: wait out the 0.2 s window for it.
    """
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))
    time.sleep(0.25)


def test_a_settled_pipeline_is_kept_and_a_changed_one_is_parsed_again(project: Project) -> None:
    project.write("params.yaml", "n: 1\n")
    project.write("conveyor.yaml", "stages:\n  a:\n    cmd: echo ${n} > a.txt\n    outs: [a.txt]\n")
    age(project.root / "params.yaml", project.root / "conveyor.yaml")
    project.ok("run")
    age(project.root / "conveyor.lock")
    assert "up to date" in project.ok("status")
    parsed = project.root / ".conveyor" / "parsed"
    assert (parsed / "pipeline.pickle").is_file() and (parsed / "lock.pickle").is_file()
    assert (parsed / ".gitignore").read_text().splitlines()[-1] == "*"  # ignores itself
    assert ".conveyor" not in project.git("status", "--porcelain", "--ignored=no")

    # a params file used for templating changes the command: seen although conveyor.yaml did not change
    project.write("params.yaml", "n: 2\n")
    out = project.ok("status")
    assert "stale: a" in out and "command changed" in out, out
    project.ok("run")
    assert (project.root / "a.txt").read_text().strip() == "2"

    # conveyor.yaml rewritten with the same size and its old timestamps: still seen (inode and ctime change)
    text = (project.root / "conveyor.yaml").read_text()
    st = os.stat(project.root / "conveyor.yaml")
    project.write("conveyor.yaml", text.replace("a.txt", "b.txt"))
    os.utime(project.root / "conveyor.yaml", ns=(st.st_atime_ns, st.st_mtime_ns))
    out = project.ok("status")
    assert "new output b.txt" in out, out


def test_a_damaged_parse_cache_is_ignored(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  a:\n    cmd: echo 1 > a.txt\n    outs: [a.txt]\n")
    age(project.root / "conveyor.yaml")
    project.ok("run")
    age(project.root / "conveyor.lock")
    project.ok("status")
    for name in ("pipeline.pickle", "lock.pickle"):
        (project.root / ".conveyor" / "parsed" / name).write_bytes(b"\x80\x05garbage")
    assert "up to date" in project.ok("status")


def test_a_call_stage_module_appearing_later_is_seen(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  a:\n    call: tool:main\n    outs: [a.txt]\n")
    age(project.root / "conveyor.yaml")
    status = project.cvy("status")  # tool.py does not exist yet: no module dependency
    assert status.code == 0
    project.write("tool.py", "def main():\n    open('a.txt', 'w').write('x')\n")
    project.ok("run")
    lock = (project.root / "conveyor.lock").read_text()
    assert "path: tool.py" in lock, lock  # the module's source became a dependency
