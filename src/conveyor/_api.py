"""Top-level API functions that belong to no single pillar."""

from __future__ import annotations

import os
from pathlib import Path

from conveyor.workspace import Workspace


def init(path: str | os.PathLike[str] | None = None, *, no_scm: bool = False, force: bool = False) -> Workspace:
    """Create a conveyor workspace (``.conveyor/``) at the top of a git repository."""
    return Workspace.init(Path(path) if path is not None else None, no_scm=no_scm, force=force)
