"""Conveyor: continuous delivery for machine learning, from a commit to a model in production.

The public Python API. Every CLI command is one call to a function here. Names load
lazily so that ``import conveyor`` (and ``conveyor --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "init": "conveyor._api",
    "Workspace": "conveyor.workspace",
    "Config": "conveyor.config",
    "add": "conveyor.versioning",
    "status": "conveyor.versioning",
    "checkout": "conveyor.versioning",
    "unprotect": "conveyor.versioning",
    "diff": "conveyor.versioning",
    "gc": "conveyor.versioning",
    "verify": "conveyor.versioning",
    "ConveyorError": "conveyor.errors",
    "run": "conveyor.pipeline",
    "pipeline_status": "conveyor.pipeline",
    "dag": "conveyor.pipeline",
    "verify_reproducible": "conveyor.pipeline",
    "diff_params": "conveyor.pipeline",
    "show_metrics": "conveyor.pipeline",
    "diff_metrics": "conveyor.pipeline",
    "show_plots": "conveyor.pipeline",
    "diff_plots": "conveyor.pipeline",
    "import_dvc": "conveyor.pipeline",
    "push": "conveyor.remote",
    "fetch": "conveyor.remote",
    "pull": "conveyor.remote",
    "remote_add": "conveyor.remote",
    "remote_list": "conveyor.remote",
    "remote_modify": "conveyor.remote",
    "remote_remove": "conveyor.remote",
    "remote_status": "conveyor.remote",
    "remote_gc": "conveyor.remote",
    "serve": "conveyor.serving",
    "deliver": "conveyor.delivery",
    "watch": "conveyor.delivery",
    "monitor": "conveyor.delivery",
}

__all__ = [
    "Config",
    "ConveyorError",
    "Workspace",
    "add",
    "checkout",
    "dag",
    "deliver",
    "diff",
    "diff_metrics",
    "diff_params",
    "diff_plots",
    "fetch",
    "gc",
    "import_dvc",
    "init",
    "monitor",
    "pipeline_status",
    "pull",
    "push",
    "remote_add",
    "remote_gc",
    "remote_list",
    "remote_modify",
    "remote_remove",
    "remote_status",
    "run",
    "serve",
    "show_metrics",
    "show_plots",
    "status",
    "unprotect",
    "verify",
    "verify_reproducible",
    "watch",
]

if TYPE_CHECKING:
    from conveyor._api import init as init
    from conveyor.config import Config as Config
    from conveyor.delivery import deliver as deliver
    from conveyor.delivery import monitor as monitor
    from conveyor.delivery import watch as watch
    from conveyor.errors import ConveyorError as ConveyorError
    from conveyor.pipeline import dag as dag
    from conveyor.pipeline import diff_metrics as diff_metrics
    from conveyor.pipeline import diff_params as diff_params
    from conveyor.pipeline import diff_plots as diff_plots
    from conveyor.pipeline import import_dvc as import_dvc
    from conveyor.pipeline import pipeline_status as pipeline_status
    from conveyor.pipeline import run as run
    from conveyor.pipeline import show_metrics as show_metrics
    from conveyor.pipeline import show_plots as show_plots
    from conveyor.pipeline import verify_reproducible as verify_reproducible
    from conveyor.remote import fetch as fetch
    from conveyor.remote import pull as pull
    from conveyor.remote import push as push
    from conveyor.remote import remote_add as remote_add
    from conveyor.remote import remote_gc as remote_gc
    from conveyor.remote import remote_list as remote_list
    from conveyor.remote import remote_modify as remote_modify
    from conveyor.remote import remote_remove as remote_remove
    from conveyor.remote import remote_status as remote_status
    from conveyor.serving import serve as serve
    from conveyor.versioning import add as add
    from conveyor.versioning import checkout as checkout
    from conveyor.versioning import diff as diff
    from conveyor.versioning import gc as gc
    from conveyor.versioning import status as status
    from conveyor.versioning import unprotect as unprotect
    from conveyor.versioning import verify as verify
    from conveyor.workspace import Workspace as Workspace


__getattr__ = lazy_exports(__name__, _EXPORTS)
