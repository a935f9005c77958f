"""The registry's artifacts as roots for gc and push, without importing SQLAlchemy when there
is no database to ask (a workspace that only versions data: its gc and push stay as fast)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.workspace import Workspace


def registry_roots(ws: Workspace) -> list[tuple[str, str]]:
    """(hash, label) of the artifact of every registered version."""
    from conveyor.config import Config
    from conveyor.store._db_location import DEFAULT_DIR, DEFAULT_FILE, ENV_URL

    configured = os.environ.get(ENV_URL) or Config(ws.conveyor_dir).get("store.url")
    if not configured and not (ws.conveyor_dir / DEFAULT_DIR / DEFAULT_FILE).exists():
        return []  # no database: nothing is registered
    from conveyor.registry._registry import _registry_roots

    return _registry_roots(ws)
