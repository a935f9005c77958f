"""Progress bars that appear only on a terminal and only for work that lasts over a second."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """A counter that draws a bar (tqdm) once the work has taken a second, on a TTY only."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "file") -> None:
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit=unit, delay=1.0, leave=False, file=sys.stderr,
                unit_scale=unit == "B", dynamic_ncols=True,
            )

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
