"""The dashboard: ``conveyor ui`` serves the pipeline, its runs, checks, the registry, what is
deployed and the team's delivery metrics, from the same ASGI stack as the model server.

Modules: ``_views`` (what each page shows, read from the workspace), ``_graph`` (the DAG's
layout), ``_charts`` (SVG charts), ``_app`` (the Starlette app: pages, the JSON the DAG page
polls, the promote and roll-back actions behind the token), ``templates/`` and ``static/``
(every asset ships in the package: nothing is fetched from the network).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.workspace import Workspace

__all__ = ["serve_ui"]


def serve_ui(
    *,
    host: str = "127.0.0.1",
    port: int = 8500,
    token: str | None = None,
    workspace: Workspace | None = None,
    on_ready: Callable[[str, str], None] | None = None,
) -> None:
    """Serve the dashboard of ``workspace`` until interrupted.

    Actions (promote, roll back) need ``token`` (default ``$CONVEYOR_UI_TOKEN``, else a new
    random one); on an address other than loopback every page needs it too. ``on_ready`` is
    called with the URL and the token once everything is checked, before the server starts.
    """
    from conveyor.errors import UsageError
    from conveyor.ui._app import TOKEN_ENV, create_app, is_loopback
    from conveyor.workspace import Workspace

    try:
        import jinja2  # noqa: F401
        import uvicorn
    except ImportError:
        raise UsageError(
            "the dashboard needs Starlette, uvicorn and Jinja2", hint="pip install 'conveyor[ui]'"
        ) from None
    token = token if token is not None else (os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24))
    if len(token.strip()) < 16:
        raise UsageError(
            "the dashboard's token is shorter than 16 characters",
            hint=f"use a long random one: export {TOKEN_ENV}=$(openssl rand -hex 32)",
        )
    ws = workspace or Workspace.find()
    app = create_app(ws, token=token, open_reads=is_loopback(host))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        shown = f"[{host}]" if ":" in host else host
        on_ready(f"http://{shown}:{port}/", token)
    server.run()
