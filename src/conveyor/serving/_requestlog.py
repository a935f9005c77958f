"""Sampled request and prediction logs, as Parquet files ``conveyor monitor`` reads.

A share of the requests (``sample``) is kept in memory with the prediction, version, role and
time, and written every few seconds (or every ``flush_rows`` rows) to a new Parquet file,
written under a temporary name and renamed, so a reader never sees half a file and a killed
server loses at most the rows not yet written.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.serving._protocol import InferRequest

log = logging.getLogger("conveyor.serve")

PREDICTION, VERSION, ROLE, TIME = "_prediction", "_version", "_role", "_time"  # columns beside the inputs
LOG_COLUMNS = (PREDICTION, VERSION, ROLE, TIME)


class RequestLog:
    def __init__(self, folder: Path, *, sample: float, flush_rows: int = 5000, flush_seconds: float = 5.0) -> None:
        self.folder = folder
        self.sample = sample
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._pending: list[tuple[InferRequest, np.ndarray, int, str, float]] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sequence = 0
        self._thread: threading.Thread | None = None
        self.written_files = 0

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="conveyor-request-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def record(self, request: InferRequest, labels: np.ndarray, version: int, role: str) -> None:
        """Keep this request (when sampled); it becomes a table row in the writer's thread."""
        if self.sample <= 0 or (self.sample < 1 and random.random() >= self.sample):
            return
        with self._lock:
            self._pending.append((request, labels, version, role, time.time()))
            self._rows += request.rows
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a full disk must not stop the server: log it and keep serving
                log.exception("writing the request log to %s failed", self.folder)

    def flush(self) -> Path | None:
        import pandas as pd

        with self._lock:
            pending, self._pending, self._rows = self._pending, [], 0
        if not pending:
            return None
        frames = _tables(pending)
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = self.folder / f"requests-{stamp}-{os.getpid()}-{self._sequence:05d}.parquet"
        temporary = path.with_name(f".{path.name}.tmp")
        table = pd.concat(frames, ignore_index=True)
        try:
            table.to_parquet(temporary, index=False)
        except Exception:  # mixed kinds in one column (text beside numbers): kept as text
            mixed = [c for c in table.columns if table[c].dtype == object]
            table[mixed] = table[mixed].astype(str)
            table.to_parquet(temporary, index=False)
        os.replace(temporary, path)
        self.written_files += 1
        return path


def _tables(pending: list[tuple[InferRequest, np.ndarray, int, str, float]]) -> list[pd.DataFrame]:
    """The pending requests as tables: plain-number requests with the same columns stacked into
    one (a handful of pandas calls per flush, not per request: the server's threads barely
    notice the writer), the others one by one."""
    import numpy as np
    import pandas as pd

    groups: dict[tuple[str, ...], list[tuple[InferRequest, np.ndarray, int, str, float]]] = {}
    frames = []
    for entry in pending:
        request = entry[0]
        if request.matrix is not None and request.columns is not None:
            groups.setdefault(request.columns, []).append(entry)
            continue
        kept = request.frame.copy()
        kept[PREDICTION], kept[VERSION], kept[ROLE], kept[TIME] = entry[1], entry[2], entry[3], entry[4]
        frames.append(kept)
    for columns, entries in groups.items():
        table = pd.DataFrame(np.vstack([e[0].matrix for e in entries]), columns=list(columns))  # type: ignore[misc]
        counts = [len(e[1]) for e in entries]
        table[PREDICTION] = np.concatenate([e[1] for e in entries])
        table[VERSION] = np.repeat([e[2] for e in entries], counts)
        table[ROLE] = np.repeat([e[3] for e in entries], counts)
        table[TIME] = np.repeat([e[4] for e in entries], counts)
        frames.append(table)
    return frames


def read_request_logs(folder: Path, *, since: float | None = None) -> pd.DataFrame:
    """Every logged request under ``folder`` (those at or after ``since``, a Unix time)."""
    import pandas as pd

    files = sorted(p for p in folder.glob("requests-*.parquet"))
    if not files:
        return pd.DataFrame()
    frame = pd.concat([pd.read_parquet(p) for p in files], ignore_index=True)
    if since is not None and TIME in frame:
        frame = frame[frame[TIME] >= since].reset_index(drop=True)
    return frame
