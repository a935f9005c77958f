"""What a run record holds (plain dataclasses, no database), and the facts about where a run
ran: its id, the environment, the git state. Kept apart from the store so that deciding what
to run never imports SQLAlchemy: only a run that does something is recorded."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")
STAGE_STATUSES = ("ran", "restored", "up-to-date", "frozen", "failed", "skipped", "interrupted")


@dataclass
class StageRecord:
    """One stage of a run, recorded when it finished."""

    name: str
    status: str  # one of STAGE_STATUSES
    started_at: float  # unix seconds
    duration: float  # seconds
    attempts: int = 1
    outs: dict[str, str] = field(default_factory=dict)  # output path -> content hash
    error: str | None = None
    deps: dict[str, str] = field(default_factory=dict)  # dependency path -> content hash it ran with


@dataclass
class RunRecord:
    """One ``conveyor run``: where it ran, what it was given, what it produced."""

    id: str
    started_at: float
    ended_at: float | None = None
    status: str = "running"  # one of RUN_STATUSES
    commit: str | None = None
    dirty: bool = False
    targets: list[str] = field(default_factory=list)
    command: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    stages: list[StageRecord] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or None while it has not ended."""
        return None if self.ended_at is None else self.ended_at - self.started_at


@dataclass(frozen=True)
class RunEnvironment:
    """What a run ran with: Python, platform, conveyor, and every installed distribution."""

    python: str
    platform: str
    conveyor: str
    packages: dict[str, str]  # normalised name (PEP 503) -> version

    def version_of(self, name: str) -> str | None:
        import re

        return self.packages.get(re.sub(r"[-_.]+", "-", name).lower())


# -- ids, environment, git -------------------------------------------------------------------


def new_run_id(at: float | None = None) -> str:
    """A new run id such as ``20261127-093012-3f9a1c``: UTC start time, then 24 random bits.

    Ids sort by time (to the second), so a prefix such as ``20261127`` names a day's runs.
    """
    import secrets

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if at is None else at))
    return f"{stamp}-{secrets.token_hex(3)}"


_environment: dict[str, str] | None = None
_packages: list[str] = []


def environment_info() -> dict[str, str]:
    """Where a run ran: Python, platform, conveyor's version, and a fingerprint of every
    installed distribution (``packages``: BLAKE3 of the sorted ``name==version`` lines).

    Computed once per process (a few milliseconds: distributions are read from the names
    of their ``.dist-info`` folders, not their metadata files).
    """
    global _environment, _packages
    if _environment is None:
        import platform

        from blake3 import blake3

        from conveyor import __version__

        packages = _packages = installed_distributions()
        _environment = {
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "conveyor": __version__,
            "packages": blake3("\n".join(packages).encode()).hexdigest(),
            "package_count": str(len(packages)),
        }
    return dict(_environment)


def environment_packages() -> list[str]:
    """The sorted ``name==version`` lines :func:`environment_info` fingerprinted."""
    environment_info()
    return list(_packages)


def installed_distributions() -> list[str]:
    """Sorted ``name==version`` of the distributions importlib.metadata finds on ``sys.path``.

    The same search as ``importlib.metadata.distributions()`` (``*.dist-info`` and
    ``*.egg-info`` in each ``sys.path`` folder; the first of a name wins, as for imports),
    but names and versions come from the folder names: reading every METADATA file costs
    about a millisecond a package. Names are normalised (PEP 503).
    """
    import re

    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue  # a zip file, or a folder that does not exist
        for name in names:
            if name.endswith(".dist-info"):  # NAME-VERSION.dist-info
                stem, dash, version = name[: -len(".dist-info")].rpartition("-")
                if not dash:
                    stem = version
                    version = ""
            elif name.endswith(".egg-info"):  # NAME-VERSION-pyX.Y.egg-info, or NAME.egg-info
                stem, _, rest = name[: -len(".egg-info")].partition("-")
                version = rest.split("-", 1)[0]
            else:
                continue
            if not version:
                version = _version_from_metadata(os.path.join(entry or ".", name)) or "unknown"
            key = re.sub(r"[-_.]+", "-", stem).lower()
            found.setdefault(key, version)
    return sorted(f"{name}=={version}" for name, version in found.items())


def _version_from_metadata(path: str) -> str | None:
    candidates = [path] if os.path.isfile(path) else [os.path.join(path, n) for n in ("METADATA", "PKG-INFO")]
    for candidate in candidates:
        try:
            with open(candidate, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line.strip():
                        break  # the end of the headers
        except OSError:
            continue
    return None


def git_state(root: Path) -> tuple[str | None, bool]:
    """(HEAD's commit, or None outside git or before the first commit; whether the work tree differs
    from it: changed tracked files, or new files git would see, which a checkout of the commit lacks).

    One ``git status`` call; it takes no lock on the index, so it never gets in the way of
    a git command the user runs meanwhile.
    """
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=normal"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except OSError:  # no git, or no such folder
        return None, False
    if proc.returncode != 0:
        return None, False
    commit: str | None = None
    dirty = False
    for line in proc.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid ") :].strip()
            commit = None if oid == "(initial)" else oid
        elif line and not line.startswith("#"):
            dirty = True
    return commit, dirty
