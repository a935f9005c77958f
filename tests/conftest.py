"""Shared fixtures: real git repositories, the real CLI in-process and as a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.cli import main

pytest_plugins = ["db_fixtures"]  # database_url, postgres_url, ... (tests/db_fixtures.py)


def pytest_configure(config: pytest.Config) -> None:
    """Give Ctrl-C back to the processes the tests start. A shell without job control starts
    background commands (``make test &``, a CI runner's) with SIGINT ignored, and an ignored
    signal stays ignored across exec: the tests that press Ctrl-C on ``conveyor run`` would
    then wait for a process that never hears it."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


CONVEYOR_BIN = str(Path(sys.executable).with_name("conveyor"))


@dataclass
class Result:
    code: int
    out: str
    err: str


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)


class Project:
    """A temporary git repository with a conveyor workspace; commands run in-process or for real."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self._capsys = capsys

    def cvy(self, *args: str) -> Result:
        """Run the CLI in-process (fast) and capture what it prints."""
        self._capsys.readouterr()
        old = Path.cwd()
        os.chdir(self.root)
        try:
            code = main(list(args))
        finally:
            os.chdir(old)
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str) -> str:
        result = self.cvy(*args)
        assert result.code == 0, f"conveyor {' '.join(args)} failed ({result.code}): {result.err}"
        return result.out

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        """Run the real ``conveyor`` executable as a subprocess."""
        proc = subprocess.run(
            [CONVEYOR_BIN, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def git(self, *args: str) -> str:
        return git(self.root, *args)

    def write(self, rel: str, data: bytes | str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        if path.exists() and not os.access(path, os.W_OK):
            path.unlink()
        path.write_bytes(data)
        return path

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)

    def cache_objects(self) -> list[Path]:
        cache = self.root / ".conveyor" / "cache"
        return [p for p in cache.glob("*/*") if p.is_file()]


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    proj = Project(root, capsys)
    proj.ok("init")
    proj.commit("conveyor init")
    yield proj


@pytest.fixture
def plain_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    root = tmp_path / "plain"
    root.mkdir()
    return Project(root, capsys)


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (mount, chown)")


def has_tool(name: str) -> bool:
    return shutil.which(name) is not None
