"""The "did you mean" of every error about a misspelt name (a key, a stage, a check)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str | None:
    """``did you mean 'x'?`` (or ``'x' or 'y'``) for the choices close to ``word``; None when none is."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=n, cutoff=cutoff)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
