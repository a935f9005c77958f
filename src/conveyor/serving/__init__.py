"""Serving models from the registry (issue 7, in progress).

``conveyor serve NAME@ALIAS`` (and :func:`serve`) answers predictions over HTTP in the Open
Inference Protocol v2 and MLflow's scoring protocol, with every request checked against the
model's signature. Hot swap, canary and shadow traffic, metrics and ``conveyor deliver``
build on the pieces here: ``_protocol`` (the wire formats), ``_slot`` (the loaded version,
swapped atomically) and ``_app`` (the HTTP API).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.workspace import Workspace


def serve(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    max_body: int | None = None,
    workspace: Workspace | None = None,
) -> None:
    """Serve the registered version ``ref`` (``NAME@ALIAS``, ``NAME:N``) until interrupted.

    The version is resolved and loaded (hash verified, warmed up) before the server starts,
    so a wrong reference or a model that cannot load is one clear error, not a server that
    never becomes ready; each of ``workers`` processes then loads its own copy."""
    from conveyor.errors import UsageError
    from conveyor.registry import Registry
    from conveyor.serving._app import DEFAULT_MAX_BODY
    from conveyor.serving._slot import ModelSlot
    from conveyor.workspace import Workspace

    try:
        import uvicorn
    except ImportError:
        raise UsageError("serving needs Starlette and uvicorn", hint="pip install 'conveyor[serve]'") from None
    ws = workspace or Workspace.find()
    with Registry.open(ws) as registry:
        version = registry.get(ref)
        ModelSlot().load(registry, version)  # fail here, in one line, rather than in every worker
    os.environ.update(
        CONVEYOR_SERVE_ROOT=str(ws.root),
        CONVEYOR_SERVE_REF=version.ref if "@" not in ref else ref,
        CONVEYOR_SERVE_MAX_BODY=str(max_body or DEFAULT_MAX_BODY),
    )
    uvicorn.run(
        "conveyor.serving._app:create_app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )
