"""`conveyor init` and configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Project, git
from conveyor.config import Config
from conveyor.errors import UsageError


def test_init_creates_the_workspace_and_its_gitignore(project: Project) -> None:
    conveyor_dir = project.root / ".conveyor"
    for name in ("cache", "tmp", "config", ".gitignore"):
        assert (conveyor_dir / name).exists(), name
    tracked = project.git("ls-files", ".conveyor").split()
    assert tracked == [".conveyor/.gitignore", ".conveyor/config"]
    # the state database, cache and lock stay out of git once they exist
    project.write("d.txt", "x")
    project.write("folder/e.txt", "y")
    project.ok("add", "d.txt", "folder")
    assert (project.root / ".conveyor" / "state.db.trees").is_dir()
    assert project.git("status", "--porcelain", "--ignored", ".conveyor").count("!!") >= 3
    assert project.git("status", "--porcelain", "--untracked-files=all", ".conveyor") == ""


def test_init_outside_git_refuses_with_the_fix(plain_dir: Project) -> None:
    result = plain_dir.cvy("init")
    assert result.code == 2
    assert "not a git repository" in result.err
    assert "git init" in result.err and "--no-scm" in result.err
    assert not (plain_dir.root / ".conveyor").exists()


def test_init_no_scm_works_without_git(plain_dir: Project) -> None:
    plain_dir.ok("init", "--no-scm")
    plain_dir.write("data/a.csv", "1,2\n")
    plain_dir.ok("add", "data")
    assert not (plain_dir.root / ".gitignore").exists()  # no git: nothing to ignore
    assert "in sync" in plain_dir.ok("status")
    (plain_dir.root / "data" / "a.csv").unlink()
    assert "missing" in plain_dir.ok("status") or "modified" in plain_dir.ok("status")
    plain_dir.ok("checkout")
    assert (plain_dir.root / "data" / "a.csv").read_text() == "1,2\n"


def test_init_twice_is_refused(project: Project) -> None:
    result = project.cvy("init")
    assert result.code == 2
    assert "already initialised" in result.err


def test_init_below_the_repository_top_points_to_it(project: Project) -> None:
    sub = project.root / "sub"
    sub.mkdir()
    result = project.cvy("init", str(sub))
    assert result.code == 2
    assert "run 'conveyor init' at the repository's top" in result.err


def test_commands_work_from_a_subdirectory(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("sub/data.csv", "x")
    monkeypatch.chdir(project.root / "sub")
    from conveyor import add

    add(["data.csv"])
    assert (project.root / "sub" / "data.csv.cvy").is_file()


def test_config_set_get_and_local(project: Project) -> None:
    project.ok("config", "cache.link", "hardlink,copy")
    assert project.ok("config", "cache.link").strip() == "hardlink,copy"
    assert "hardlink" in (project.root / ".conveyor" / "config").read_text()
    project.ok("config", "--local", "core.lock_timeout", "3")
    assert project.ok("config", "core.lock_timeout").strip() == "3.0"
    assert "lock_timeout" not in (project.root / ".conveyor" / "config").read_text()
    project.ok("config", "--unset", "cache.link")
    assert project.ok("config", "cache.link").strip() == "reflink,copy"
    listing = project.ok("config")
    assert "cache.dir = (not set)" in listing


def test_config_unknown_key_suggests_the_right_one(project: Project) -> None:
    result = project.cvy("config", "cache.lnk", "copy")
    assert result.code == 2
    assert "unknown config key 'cache.lnk'" in result.err
    assert "did you mean 'cache.link'?" in result.err


def test_config_bad_value_names_key_and_expectation(project: Project) -> None:
    result = project.cvy("config", "cache.link", "teleport")
    assert result.code == 2
    assert "'cache.link'" in result.err and "reflink, copy, hardlink, symlink" in result.err


def test_env_overrides_files(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_CACHE_LINK", "symlink")
    assert Config(project.root / ".conveyor").get("cache.link") == ("symlink",)
    monkeypatch.setenv("CONVEYOR_CORE_LOCK_TIMEOUT", "-1")
    with pytest.raises(UsageError, match="CONVEYOR_CORE_LOCK_TIMEOUT"):
        Config(project.root / ".conveyor")


def test_an_empty_environment_variable_counts_as_unset(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # a CI job gives an empty string for a secret nobody defined (CONVEYOR_DB: ${{ secrets.DB }})
    monkeypatch.setenv("CONVEYOR_DB", "")
    monkeypatch.setenv("CONVEYOR_CACHE_LINK", "")
    config = Config(project.root / ".conveyor")
    assert config.get("cache.link") == Config(project.root / ".conveyor", env={}).get("cache.link")
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: echo hi > s.txt\n    outs: [s.txt]\n")
    project.ok("run")  # records the run in the default SQLite database, not in a database named ""
    assert (project.root / ".conveyor" / "store" / "conveyor.db").is_file()
    assert "succeeded" in project.ok("runs", "list")


def test_corrupt_config_file_is_named(project: Project) -> None:
    (project.root / ".conveyor" / "config").write_text("cache: [unclosed\n")
    result = project.cvy("status")
    assert result.code == 65
    assert ".conveyor/config: not valid YAML" in result.err


def test_workspace_found_from_git_history(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    git(root, "init", "-q")
    from conveyor import init

    ws = init(root)
    assert ws.root == root.resolve()
    assert ws.has_scm
