"""Regressions found while writing the demo and the docs of remotes, on both real backends."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from conftest import Project
from remote_fixtures import Remote, fixture_aws_env, fixture_remote, fixture_s3_server  # noqa: F401


def ok(project: Project, *args: str) -> str:
    result = project.cvy(*args)
    assert result.code == 0, (args, result)
    return result.out


def clone(project: Project) -> Project:
    target = project.root.parent / f"{project.root.name}-clone"
    subprocess.run(["git", "clone", "-q", str(project.root), str(target)], check=True)
    return Project(target, project._capsys)


def test_two_packs_of_the_same_bytes_cut_differently_both_survive(project: Project, remote: Remote) -> None:
    remote.configure(project)
    project.write("a.csv", "id,x\n1,a\n")
    project.write("b.csv", "2,b\n")
    ok(project, "add", "a.csv", "b.csv")
    ok(project, "push")
    project.write("both.csv", "2,b\nid,x\n1,a\n")  # the bytes of the first pack, one object
    ok(project, "add", "both.csv")
    ok(project, "push")
    project.commit("three files")
    other = clone(project)
    ok(other, "pull")
    for name in ("a.csv", "b.csv", "both.csv"):
        assert (other.root / name).read_bytes() == (project.root / name).read_bytes()
    remote.assert_sound()


def test_gc_remote_keeps_a_pack_that_rewrites_to_the_same_name(project: Project, remote: Remote) -> None:
    remote.configure(project)
    project.write("empty.txt", "")
    project.write("f.txt", "data\n")
    ok(project, "add", "empty.txt", "f.txt")
    project.commit("two files")
    ok(project, "push")
    (project.root / "empty.txt.cvy").unlink()
    project.commit("one file")
    ok(project, "gc", "--remote", "--yes")
    status = ok(project, "status", "--remote")
    assert "not pushed" not in status, status
    other = clone(project)
    ok(other, "pull")
    assert (other.root / "f.txt").read_text() == "data\n"


PIPELINE = """\
stages:
  make:
    cmd: "echo made > out.txt && echo '{\\"score\\": 1}' > metrics.json"
    outs: [out.txt]
    metrics: [metrics.json]
"""


def test_a_stage_name_with_metrics_is_a_target_and_a_clone_restores_it_without_the_run_cache(
    project: Project, remote: Remote
) -> None:
    remote.configure(project)
    project.write("conveyor.yaml", PIPELINE)
    ok(project, "run")
    ok(project, "push", "make")  # the stage's name: its outputs, metrics included
    project.commit("pipeline")
    other = clone(project)
    out = ok(other, "run", "--pull")  # no run cache pushed: conveyor.lock's outputs are enough
    assert "restored" in out and "ran" not in out.replace("restored", ""), out
    assert (other.root / "out.txt").read_text() == "made\n"


def test_a_secret_in_the_committed_config_is_refused(project: Project, remote: Remote) -> None:
    remote.configure(project)
    config = project.root / ".conveyor" / "config"
    config.write_text(
        config.read_text()
        + textwrap.dedent("""\
        remote:
          leak:
            url: /tmp/x
            secret_access_key: hunter2
        """)
    )
    result = project.cvy("status")
    assert result.code == 2 and "secret" in result.err and "config.local" in result.err, result
    assert "Traceback" not in result.err


@pytest.mark.parametrize("form", ["--remote=origin", "-r"])
def test_status_remote_takes_a_name(project: Project, remote: Remote, form: str) -> None:
    remote.configure(project)
    project.write("f.txt", "x\n")
    ok(project, "add", "f.txt")
    args = ["status", form] if "=" in form else ["status", form, "origin"]
    assert "not pushed: f.txt" in ok(project, *args)


def test_a_pull_restores_modes_and_bytes_of_small_and_large_files(project: Project, remote: Remote) -> None:
    """Small objects are written from the bytes just fetched, large ones copied in the kernel:
    both must give the recorded bytes and execute bits, files in a folder and alone."""
    import os

    remote.configure(project)
    (project.root / "tools").mkdir()
    project.write("tools/run.sh", "#!/bin/sh\necho hi\n")
    os.chmod(project.root / "tools" / "run.sh", 0o755)
    project.write("tools/notes.txt", "plain\n")
    big = os.urandom(600 * 1024)
    (project.root / "tools" / "big.bin").write_bytes(big)
    (project.root / "model.bin").write_bytes(big[::-1])
    os.chmod(project.root / "model.bin", 0o755)
    ok(project, "add", "tools", "model.bin")
    ok(project, "push")
    project.commit("tools and a model")
    other = clone(project)
    ok(other, "pull")
    for rel in ("tools/run.sh", "tools/notes.txt", "tools/big.bin", "model.bin"):
        mine, theirs = project.root / rel, other.root / rel
        assert theirs.read_bytes() == mine.read_bytes(), rel
        assert theirs.stat().st_mode & 0o111 == mine.stat().st_mode & 0o111, rel
    assert "modified" not in ok(other, "status")


def test_a_connection_lost_in_a_background_write_prints_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """The request that used the connection reports the failure in one line; aiohttp's writer
    task, garbage-collected later, must not add "Task exception was never retrieved"."""
    import asyncio

    from aiohttp.client_exceptions import ClientConnectionResetError

    from conveyor.remote._backend import _quiet_connection_errors

    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level("ERROR", logger="asyncio"):
            _quiet_connection_errors(loop, {"message": "lost", "exception": ClientConnectionResetError("closing")})
            assert not caplog.records
            _quiet_connection_errors(loop, {"message": "a real bug", "exception": ValueError("boom")})
            assert any("a real bug" in r.getMessage() for r in caplog.records)
    finally:
        loop.close()
