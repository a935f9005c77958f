"""Content-addressed versioning of data and models next to git.

``add`` caches files and folders and writes ``PATH.cvy`` pointers for git; ``status``,
``diff``, ``checkout``, ``gc`` and ``verify`` work from those pointers and the cache.
Each command lives in its own module and loads on first use, so ``conveyor status``
does not pay for importing ``checkout`` or ``gc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "AddResult": "_add",
    "add": "_add",
    "CheckoutResult": "_checkout",
    "checkout": "_checkout",
    "unprotect": "_checkout",
    "Change": "_diff",
    "DiffResult": "_diff",
    "diff": "_diff",
    "GcResult": "_gc",
    "gc": "_gc",
    "PathStatus": "_status",
    "StatusReport": "_status",
    "status": "_status",
    "VerifyReport": "_verify",
    "verify": "_verify",
}

__all__ = [
    "AddResult",
    "Change",
    "CheckoutResult",
    "DiffResult",
    "GcResult",
    "PathStatus",
    "StatusReport",
    "VerifyReport",
    "add",
    "checkout",
    "diff",
    "gc",
    "status",
    "unprotect",
    "verify",
]

if TYPE_CHECKING:
    from conveyor.versioning._add import AddResult as AddResult
    from conveyor.versioning._add import add as add
    from conveyor.versioning._checkout import CheckoutResult as CheckoutResult
    from conveyor.versioning._checkout import checkout as checkout
    from conveyor.versioning._checkout import unprotect as unprotect
    from conveyor.versioning._diff import Change as Change
    from conveyor.versioning._diff import DiffResult as DiffResult
    from conveyor.versioning._diff import diff as diff
    from conveyor.versioning._gc import GcResult as GcResult
    from conveyor.versioning._gc import gc as gc
    from conveyor.versioning._status import PathStatus as PathStatus
    from conveyor.versioning._status import StatusReport as StatusReport
    from conveyor.versioning._status import status as status
    from conveyor.versioning._verify import VerifyReport as VerifyReport
    from conveyor.versioning._verify import verify as verify


__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
