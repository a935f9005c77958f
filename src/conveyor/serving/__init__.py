"""Serving models from the registry.

``conveyor serve NAME@ALIAS`` (and :func:`serve`) answers predictions over HTTP in the Open
Inference Protocol v2 and MLflow's scoring protocol, with every request checked against the
model's signature. It follows its alias: when the alias moves, the new version is loaded and
warmed up in the background and swapped in without failing a request. A version on the
``canary`` alias is tried on a share of the traffic (or shadows it) and is promoted or rolled
back by its service-level objectives. Modules: ``_protocol`` (wire formats), ``_slot`` (a
loaded version), ``_rollout`` (windows and objectives), ``_deployment`` (what a process serves
and the thread that follows the registry), ``_metrics``, ``_requestlog`` and ``_app`` (HTTP).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.serving._rollout import RolloutSettings
    from conveyor.workspace import Workspace


def request_log_dir(ws: Workspace, name: str) -> Path:
    """Where a server of model ``name`` writes its sampled request logs by default."""
    from conveyor.workspace import private_dir

    return private_dir(ws.conveyor_dir, "serving") / name / "requests"


def serve(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    max_body: int | None = None,
    poll: float = 0.5,
    rollout: RolloutSettings | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    log_sample: float = 0.1,
    access_log: str | None = "-",
    admin_token: str | None = None,
    predict_token: str | None = None,
    workspace: Workspace | None = None,
    on_ready: Callable[[], None] | None = None,
    environment: str = "refuse",
) -> None:
    """Serve the registered version ``ref`` until interrupted: ``NAME@ALIAS`` follows the
    alias (hot swap, rollouts of the ``canary`` alias); ``NAME:N`` serves one version.

    The version is resolved and loaded (hash verified, warmed up) before the server starts,
    so a wrong reference or a model that cannot load is one clear error, not a server that
    never becomes ready; each of ``workers`` processes then loads its own copy. ``rollout``
    defaults to ``conveyor.yaml``'s ``deploy: rollout:``. ``log_sample`` of the requests are
    logged to Parquet under ``log_dir`` (default ``.conveyor/serving/NAME/requests``) for
    ``conveyor monitor``; 0 turns that off. ``access_log``: ``-`` (stderr), a file, or None.
    ``environment``: a version whose training run had other versions of the packages it loads
    with (another scikit-learn minor version, say) is refused (``refuse``), served with a
    warning (``warn``), or not compared (``off``).
    """
    from conveyor.delivery._config import load_deploy_config
    from conveyor.errors import UsageError
    from conveyor.registry import Registry, parse_ref
    from conveyor.serving._app import ADMIN_TOKEN_ENV, DEFAULT_MAX_BODY, PREDICT_TOKEN_ENV, ServerSettings
    from conveyor.serving._slot import ModelSlot
    from conveyor.workspace import Workspace

    try:
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError:
        raise UsageError(
            "serving needs Starlette, uvicorn and prometheus-client", hint="pip install 'conveyor[serve]'"
        ) from None
    for variable, token in ((ADMIN_TOKEN_ENV, admin_token), (PREDICT_TOKEN_ENV, predict_token)):
        value = token if token is not None else os.environ.get(variable)
        if value and len(value.strip()) < 16:
            raise UsageError(
                f"the {'admin' if variable == ADMIN_TOKEN_ENV else 'prediction'} token is shorter than 16 characters",
                hint=f"use a long random one: export {variable}=$(openssl rand -hex 32)",
            )
    if not 0.0 <= log_sample <= 1.0:
        raise UsageError(f"--log-sample {log_sample} is outside [0, 1]", hint="for example 0.1 logs one request in ten")
    if poll <= 0:
        raise UsageError(f"--poll {poll} must be positive", hint="for example 0.5 (seconds)")
    ws = workspace or Workspace.find()
    name, _number, alias = parse_ref(ref)
    with Registry.open(ws) as registry:
        version = registry.get(ref)
        ModelSlot(environment).load(registry, version)  # fail here, in one line, rather than in every worker
    if rollout is None:
        rollout = load_deploy_config(ws.root).rollout
    settings = ServerSettings(
        root=str(ws.root),
        ref=ref if alias is not None else version.ref,
        max_body=max_body or DEFAULT_MAX_BODY,
        poll=poll,
        rollout=rollout.to_json(),
        log_dir=str(Path(log_dir) if log_dir is not None else request_log_dir(ws, name)) if log_sample > 0 else None,
        log_sample=log_sample,
        access_log=access_log,
        environment=environment,
    )
    os.environ["CONVEYOR_SERVE_SETTINGS"] = settings.to_env()
    for variable, token in ((ADMIN_TOKEN_ENV, admin_token), (PREDICT_TOKEN_ENV, predict_token)):
        if token is not None:
            os.environ[variable] = token
    if on_ready is not None:  # everything is checked and loaded: what follows is the server itself
        on_ready()
    uvicorn.run(
        "conveyor.serving._app:create_app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )
