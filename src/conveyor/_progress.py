"""Progress bars that appear only on a terminal and only for work that lasts over a second."""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import Any


class Progress:
    """A counter that draws a bar (tqdm) once the work has taken a second, on a TTY only.

    ``CONVEYOR_PROGRESS_DELAY`` (seconds, default 1) changes how long work runs unseen.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "file") -> None:
        self._bar: Any = None
        if sys.stderr.isatty():
            import shutil

            from tqdm import tqdm

            # A terminal that reports no size (a fresh pty) would otherwise hide the bar.
            size = shutil.get_terminal_size(fallback=(80, 24))
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                delay=_delay(),
                leave=False,
                file=sys.stderr,
                unit_scale=unit == "B",
                ncols=min(size.columns, 120),
                nrows=max(size.lines, 2),
            )

    def update(self, n: int = 1, *, files: int | None = None) -> None:
        """Advance by ``n`` units; ``files`` (for a byte counter) also shows files done and files/s."""
        if self._bar is not None:
            self._bar.update(n)
            if files is not None:
                self._files = getattr(self, "_files", 0) + files
                rate = self._bar.format_dict.get("elapsed") or 0
                per_second = self._files / rate if rate else 0.0
                self._bar.set_postfix_str(f"{self._files} files, {per_second:.0f} files/s", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("CONVEYOR_PROGRESS_DELAY", "1")))
    except ValueError:
        return 1.0
