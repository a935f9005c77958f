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

log = logging.getLogger("conveyor.serve")

PREDICTION, VERSION, ROLE, TIME = "_prediction", "_version", "_role", "_time"  # columns beside the inputs
LOG_COLUMNS = (PREDICTION, VERSION, ROLE, TIME)


class RequestLog:
    def __init__(self, folder: Path, *, sample: float, flush_rows: int = 5000, flush_seconds: float = 5.0) -> None:
        self.folder = folder
        self.sample = sample
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._frames: list[pd.DataFrame] = []
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

    def record(self, frame: pd.DataFrame, labels: np.ndarray, version: int, role: str) -> None:
        """Keep this request (when sampled)."""
        if self.sample <= 0 or (self.sample < 1 and random.random() >= self.sample):
            return
        kept = frame.copy()
        kept[PREDICTION] = labels
        kept[VERSION] = version
        kept[ROLE] = role
        kept[TIME] = time.time()
        with self._lock:
            self._frames.append(kept)
            self._rows += len(kept)
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
            frames, self._frames, self._rows = self._frames, [], 0
        if not frames:
            return None
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
