"""GitHub/GitLab-flavoured Markdown pieces: escaped text, code spans, tables, folded sections.

Everything a user wrote (paths, metric and param names, values, check summaries) reaches the
page through :func:`text` or :func:`code`, so a ``|`` never splits a table cell, ``<b>`` is not
HTML, and ``*`` or ``_`` start no emphasis.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# ASCII punctuation CommonMark lets a backslash escape, minus those harmless in running text
# (".", ",", ":", ";", "-", "+", "=", "/", "%", "'", '"', "(", ")", "?", "@", "$", "^", "{", "}")
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!&])")


def text(value: object) -> str:
    """``value`` as literal Markdown text on one line, safe in a table cell."""
    flat = " ".join(str(value).split())
    return _SPECIAL.sub(r"\\\1", flat)


def code(value: object) -> str:
    """``value`` as an inline code span, safe in a table cell (GFM takes ``\\|`` as ``|`` there).

    A backslash cannot be escaped inside a code span, and GFM's table rows read ``\\\\|`` as an
    escaped backslash and a cell border, so text with a backslash is :func:`text` instead."""
    flat = " ".join(str(value).split())
    if "\\" in flat:
        return text(flat)
    flat = flat.replace("|", "\\|")
    if not flat:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> str:
    """A Markdown table of cells that are Markdown already (made with :func:`text` or :func:`code`);
    ``right``: the right-aligned columns."""
    rule = ["---:" if i in right else ":---" for i in range(len(headers))]
    lines = [headers, rule, *rows]
    return "\n".join("| " + " | ".join(cell or " " for cell in line) + " |" for line in lines)


def details(summary: str, body: str) -> str:
    """A folded section (``summary`` is Markdown-escaped already); blank lines let Markdown inside render."""
    return f"<details><summary>{summary}</summary>\n\n{body.strip()}\n\n</details>"


def html_text(value: object) -> str:
    """``value`` inside an HTML element on one line (``<summary>``): entities, not backslashes."""
    from html import escape

    return escape(" ".join(str(value).split()), quote=False)
