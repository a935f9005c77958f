"""Bad input from a user: each gets one line naming the thing and the fix, a non-zero exit, nothing lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import Project


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def test_path_outside_the_workspace(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("x")
    for raw in (str(outside), "../outside.csv"):
        result = project.cvy("add", raw)
        assert result.code == 2
        line = one_error_line(result.err)
        assert f"{raw}: outside the workspace" in line and "move or copy the data into the workspace" in line


def test_dotdot_that_escapes_and_comes_back_is_fine(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", f"../{project.root.name}/a.txt")
    assert (project.root / "a.txt.cvy").exists()


def test_symlink_leading_out_of_the_workspace(project: Project, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("x")
    (project.root / "link.csv").symlink_to(secret)
    result = project.cvy("add", "link.csv")
    assert result.code == 2
    assert "outside the workspace" in one_error_line(result.err) and str(secret) in result.err
    assert not (project.root / "link.csv.cvy").exists()


def test_symlink_inside_a_folder_leading_out(project: Project, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.csv").write_text("x")
    project.write("data/ok.csv", "ok")
    (project.root / "data" / "escape.csv").symlink_to(tmp_path / "elsewhere.csv")
    result = project.cvy("add", "data")
    assert result.code == 2
    assert "symlink leads outside the workspace" in one_error_line(result.err)
    assert not (project.root / "data.cvy").exists()
    assert project.cache_objects() == []


def test_git_and_conveyor_folders_are_off_limits(project: Project) -> None:
    for raw in (".git/config", ".conveyor/config", ".conveyor"):
        result = project.cvy("add", raw)
        assert result.code == 2
        assert "which conveyor and git manage" in one_error_line(result.err)


def test_workspace_root_cannot_be_tracked(project: Project) -> None:
    result = project.cvy("add", ".")
    assert result.code == 2
    assert "is the workspace root" in one_error_line(result.err)


def test_missing_file(project: Project) -> None:
    result = project.cvy("add", "nope.csv")
    assert result.code == 66
    assert one_error_line(result.err) == "error: nope.csv: no such file or directory; check the path"


def test_not_a_regular_file(project: Project) -> None:
    os.mkfifo(project.root / "pipe")
    result = project.cvy("add", "pipe")
    assert result.code == 2
    assert "pipe: not a regular file or folder" in one_error_line(result.err)


def test_corrupt_pointer_file_is_named_and_nothing_changes(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", "a.txt")
    pointer = project.root / "a.txt.cvy"
    pointer.write_text("schema: 1\npath: a.txt\nkind: file\nhash: blake3:zzz\nsize: 1\nfiles: 1\n")
    for command in (["status"], ["checkout"], ["gc"], ["diff"]):
        result = project.cvy(*command)
        assert result.code == 65, command
        line = one_error_line(result.err)
        assert "a.txt.cvy: field 'hash'" in line and "git checkout --" in line
    assert (project.root / "a.txt").read_text() == "a"
    assert len(project.cache_objects()) == 1  # gc refused rather than guessing


def test_binary_garbage_pointer(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", "a.txt")
    (project.root / "a.txt.cvy").write_bytes(b"\xff\xfe\x00garbage")
    result = project.cvy("status")
    assert result.code == 65
    assert "a.txt.cvy: not UTF-8 text" in one_error_line(result.err)


def test_hand_edited_hash_points_to_a_missing_object(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", "a.txt")
    pointer = project.root / "a.txt.cvy"
    text = pointer.read_text()
    digest = text.split("blake3:")[1].split()[0]
    pointer.write_text(text.replace(digest, "0" * 64))
    (project.root / "a.txt").unlink()
    result = project.cvy("checkout")
    assert result.code == 66
    line = one_error_line(result.err)
    assert "not in the cache: a.txt" in line and "fetch them from a remote" in line
    assert "not in cache" in project.ok("status") or "missing" in project.ok("status")


def test_corrupt_manifest_object(project: Project) -> None:
    project.write("d/a", "a")
    project.ok("add", "d")
    digest = (project.root / "d.cvy").read_text().split("blake3:")[1].split()[0]
    obj = project.root / ".conveyor" / "cache" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_text("{not json")
    project.write("d/a", "changed")
    result = project.cvy("checkout", "--force")
    assert result.code == 65
    assert "cache object is corrupt" in one_error_line(result.err)
    assert (project.root / "d" / "a").read_text() == "changed"


def test_add_with_no_paths_is_a_usage_error(project: Project) -> None:
    result = project.cvy("add")
    assert result.code == 2
    assert "Missing argument" in result.err


def test_checkout_of_an_untracked_path(project: Project) -> None:
    project.write("free.txt", "x")
    result = project.cvy("checkout", "free.txt")
    assert result.code == 2
    assert "free.txt: not tracked by conveyor" in one_error_line(result.err)
    assert "conveyor add free.txt" in result.err


def test_a_pointer_git_would_ignore_is_refused(project: Project) -> None:
    (project.root / ".gitignore").write_text("out/\n")
    project.commit("ignore out")
    project.write("out/model.bin", "m")
    result = project.cvy("add", "out/model.bin")
    assert result.code == 2
    line = one_error_line(result.err)
    assert "out/model.bin.cvy: git ignores this path" in line and "!*.cvy" in line
    assert not (project.root / "out" / "model.bin.cvy").exists()
    (project.root / ".gitignore").write_text("out/*\n!out/*.cvy\n")
    project.ok("add", "out/model.bin")
    assert json.loads(project.ok("status", "--json"))["tracked"] == 1


def test_a_name_with_a_line_break_is_refused(project: Project) -> None:
    project.write("odd\nname.csv", "x")
    result = project.cvy("add", "odd\nname.csv")
    assert result.code == 2
    assert "a name with a line break cannot be listed in .gitignore" in result.err
    assert not (project.root / ".gitignore").exists()


def test_a_damaged_state_database_is_rebuilt(project: Project) -> None:
    project.write("a.txt", "a")
    project.ok("add", "a.txt")
    (project.root / ".conveyor" / "state.db").write_bytes(b"this is not sqlite" * 100)
    for name in ("state.db-wal", "state.db-shm"):
        (project.root / ".conveyor" / name).unlink(missing_ok=True)
    assert "in sync" in project.ok("status")
