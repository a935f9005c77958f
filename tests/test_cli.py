"""The command line as a user meets it: help, version, errors, start-up cost."""

from __future__ import annotations

import subprocess
import sys

from conftest import CONVEYOR_BIN, Project


def test_help_lists_every_command(project: Project) -> None:
    out = project.ok("--help")
    for command in ("init", "add", "status", "checkout", "diff", "gc", "verify", "unprotect", "config"):
        assert f"  {command} " in out


def test_version(project: Project) -> None:
    import conveyor

    assert conveyor.__version__ in project.ok("--version")


def test_cli_import_stays_light() -> None:
    """`conveyor --help` must start fast: the CLI module may not pull in the heavy parts."""
    code = (
        "import sys, conveyor.cli\n"
        "heavy = {'yaml', 'blake3', 'sqlite3', 'tqdm', 'conveyor.versioning'}\n"
        "print(sorted(m for m in sys.modules if m in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_user_error_is_one_line_without_traceback(project: Project) -> None:
    result = project.run("add", "no-such-file.csv")
    assert result.code == 66
    lines = result.err.strip().splitlines()
    assert lines == ["error: no-such-file.csv: no such file or directory; check the path"]
    assert "Traceback" not in result.err


def test_debug_shows_the_traceback(project: Project) -> None:
    result = project.run("--debug", "add", "no-such-file.csv")
    assert result.code != 0
    assert "Traceback (most recent call last)" in result.err
    assert "MissingFileError" in result.err


def test_outside_a_workspace_says_how_to_start(plain_dir: Project) -> None:
    result = plain_dir.cvy("status")
    assert result.code == 2
    assert "not inside a conveyor workspace" in result.err
    assert "conveyor init" in result.err


def test_unknown_command_is_a_usage_error(project: Project) -> None:
    result = project.run("ad", "x")
    assert result.code == 2
    assert "No such command" in result.err


def test_dash_c_runs_elsewhere(project: Project, tmp_path: object) -> None:
    project.write("a.txt", "a")
    result = subprocess.run([CONVEYOR_BIN, "-C", str(project.root), "add", "a.txt"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (project.root / "a.txt.cvy").is_file()


def test_python_module_entry_point(project: Project) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "status"], cwd=project.root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "in sync" in result.stdout


def test_api_reference_is_current() -> None:
    """docs/api.md is generated from the docstrings; regenerate it with `python docs/gen_api.py`."""
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    result = subprocess.run([sys.executable, str(docs / "gen_api.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, "docs/api.md is stale: run `python docs/gen_api.py`"


def test_api_quickstart_from_the_docs_runs(tmp_path: object) -> None:
    from pathlib import Path

    import conveyor

    root = Path(str(tmp_path)) / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    conveyor.init(str(root))
    ws = conveyor.Workspace.find(str(root))
    (root / "data").mkdir()
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    conveyor.add(["data/train.csv"], workspace=conveyor.Workspace(root))
    assert conveyor.status(workspace=ws).clean


def _run_on_a_terminal(project: Project, *args: str, delay: str) -> str:
    """Run conveyor with stderr on a real pseudo-terminal and return what it drew there."""
    import os
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "CONVEYOR_PROGRESS_DELAY": delay, "COLUMNS": "100"}
    proc = subprocess.Popen(
        [CONVEYOR_BIN, *args], cwd=project.root, stdout=subprocess.DEVNULL, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(project: Project) -> None:
    for i in range(300):
        project.write(f"data/f{i:03d}.bin", f"{i}")
    drawn = _run_on_a_terminal(project, "add", "data", delay="0")
    assert "hashing data" in drawn and "/300 [" in drawn and "file/s" in drawn
    project.write("data/f000.bin", "changed")
    assert "hashing" not in _run_on_a_terminal(project, "add", "data", delay="30")  # quick work stays quiet
    piped = project.run("add", "data", env={"CONVEYOR_PROGRESS_DELAY": "0"})
    assert "hashing" not in piped.err  # not a terminal: no bar at all
