"""What a ``conveyor run`` is doing now, for whoever watches it (the dashboard).

The runner rewrites ``.conveyor/live/run.json`` (atomically, unsynced: it is only a view)
when the set of running stages changes, at most five times a second, and removes it at the
end. Finished stages are in the run store already; this adds the stages running now.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from conveyor import _fs
from conveyor.errors import ConveyorError

LIVE_DIR = "live"
_FILE = "run.json"
MIN_GAP = 0.2  # seconds between two writes


@dataclass(frozen=True)
class LiveRun:
    """A run in progress: its id, its process and the stages running at ``updated_at``."""

    run_id: str
    pid: int
    running: tuple[str, ...]
    updated_at: float


class LivePublisher:
    """The runner's side: :meth:`update` with the running stages; :meth:`close` at the end."""

    def __init__(self, conveyor_dir: Path, run_id: str) -> None:
        self.conveyor_dir = conveyor_dir
        self.run_id = run_id
        self._path: Path | None = None
        self._written: tuple[str, ...] | None = None
        self._pending: tuple[str, ...] | None = None
        self._last = 0.0

    def update(self, running: tuple[str, ...]) -> None:
        self._pending = running
        self.flush()

    def flush(self) -> None:
        """Write what :meth:`update` was last given, if it is not on disk yet and the last write
        was :data:`MIN_GAP` ago or more (a run of many quick stages writes five times a second)."""
        running = self._pending
        if running is None or running == self._written or time.monotonic() - self._last < MIN_GAP:
            return
        try:
            if self._path is None:
                from conveyor.workspace import private_dir

                self._path = private_dir(self.conveyor_dir, LIVE_DIR) / _FILE
            data = {"run_id": self.run_id, "pid": os.getpid(), "running": list(running), "updated_at": time.time()}
            _fs.atomic_write_text(self._path, json.dumps(data), sync="none")
        except (OSError, ConveyorError):
            return  # a view only: a run never fails for it
        self._written = running
        self._last = time.monotonic()

    def close(self) -> None:
        if self._path is not None:
            try:
                self._path.unlink(missing_ok=True)
            except OSError:
                pass


def live_run(conveyor_dir: Path) -> LiveRun | None:
    """The run in progress in this workspace, if one is (its process is alive)."""
    try:
        data = json.loads((conveyor_dir / LIVE_DIR / _FILE).read_text(encoding="utf-8"))
        run = LiveRun(
            str(data["run_id"]), int(data["pid"]), tuple(map(str, data["running"])), float(data["updated_at"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return None  # killed without removing it: nothing runs
    except PermissionError:
        pass  # alive, someone else's
    return run
