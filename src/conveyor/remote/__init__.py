"""Remote storage: push, fetch and pull data, models and the run cache on any fsspec filesystem.

Small objects travel bundled in pack files, large ones as they are; which objects a remote
holds is learnt from one listing and its pack indexes. Every download is verified against
its hash before it enters the cache, and no upload is visible on the remote until complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "Remote": "_config",
    "remote_add": "_config",
    "remote_list": "_config",
    "remote_modify": "_config",
    "remote_remove": "_config",
    "TransferResult": "_transfer",
    "push": "_transfer",
    "fetch": "_transfer",
    "pull": "_transfer",
    "RemoteStatus": "_status",
    "RemotePathStatus": "_status",
    "remote_status": "_status",
    "RemoteGcPlan": "_gc",
    "remote_gc": "_gc",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from conveyor.remote._config import Remote as Remote
    from conveyor.remote._config import remote_add as remote_add
    from conveyor.remote._config import remote_list as remote_list
    from conveyor.remote._config import remote_modify as remote_modify
    from conveyor.remote._config import remote_remove as remote_remove
    from conveyor.remote._gc import RemoteGcPlan as RemoteGcPlan
    from conveyor.remote._gc import remote_gc as remote_gc
    from conveyor.remote._status import RemotePathStatus as RemotePathStatus
    from conveyor.remote._status import RemoteStatus as RemoteStatus
    from conveyor.remote._status import remote_status as remote_status
    from conveyor.remote._transfer import TransferResult as TransferResult
    from conveyor.remote._transfer import fetch as fetch
    from conveyor.remote._transfer import pull as pull
    from conveyor.remote._transfer import push as push

__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
