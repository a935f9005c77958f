"""Content-addressed versioning of data and models next to git.

``add`` caches files and folders and writes ``PATH.cvy`` pointers for git; ``status``,
``diff``, ``checkout``, ``gc`` and ``verify`` work from those pointers and the cache.
"""

from conveyor.versioning._add import AddResult, add
from conveyor.versioning._checkout import CheckoutResult, checkout, unprotect
from conveyor.versioning._diff import Change, DiffResult, diff
from conveyor.versioning._gc import GcResult, gc
from conveyor.versioning._status import PathStatus, StatusReport, status
from conveyor.versioning._verify import VerifyReport, verify

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
