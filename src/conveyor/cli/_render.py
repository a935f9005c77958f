"""Small helpers for what commands print."""

from __future__ import annotations


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, many: str | None = None) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {many or noun + 's'}"


def relative_to_cwd(path: str) -> str:
    """``path`` (absolute) as the user would type it from here."""
    import os

    rel = os.path.relpath(path)
    return path if rel.startswith("../../") else rel
