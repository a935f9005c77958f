"""Where a workspace's database is, by default and by configuration (no SQLAlchemy here)."""

from __future__ import annotations

ENV_URL = "CONVEYOR_DB"
DEFAULT_DIR = "store"
DEFAULT_FILE = "conveyor.db"
