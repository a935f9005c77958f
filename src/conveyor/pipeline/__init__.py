"""Reproducible pipelines: ``conveyor.yaml``, the stage graph, ``conveyor.lock`` and the run cache.

``run`` brings outputs up to date by running only stale stages; ``status`` says which are
stale and why; ``dag`` gives the graph; ``verify_reproducible`` re-runs up-to-date stages
in a scratch area to prove they are deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "Pipeline": "_spec",
    "Stage": "_spec",
    "Out": "_spec",
    "ParamRef": "_spec",
    "load_pipeline": "_spec",
    "Dag": "_dag",
    "dag": "_render",
    "Lock": "_lock",
    "LockEntry": "_lock",
    "run": "_runner",
    "RunReport": "_runner",
    "StageResult": "_runner",
    "StageFailedError": "_runner",
    "RunTimedOutError": "_runner",
    "pipeline_status": "_status",
    "PipelineStatus": "_status",
    "StageStatus": "_status",
    "verify_reproducible": "_verify",
    "diff_params": "_params",
    "import_dvc": "_import_dvc",
    "ImportResult": "_import_dvc",
    "show_metrics": "_metrics",
    "diff_metrics": "_metrics",
    "read_metrics": "_metrics",
    "show_plots": "_plots",
    "diff_plots": "_plots",
    "VerifyResult": "_verify",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from conveyor.pipeline._dag import Dag as Dag
    from conveyor.pipeline._import_dvc import ImportResult as ImportResult
    from conveyor.pipeline._import_dvc import import_dvc as import_dvc
    from conveyor.pipeline._lock import Lock as Lock
    from conveyor.pipeline._lock import LockEntry as LockEntry
    from conveyor.pipeline._metrics import diff_metrics as diff_metrics
    from conveyor.pipeline._metrics import read_metrics as read_metrics
    from conveyor.pipeline._metrics import show_metrics as show_metrics
    from conveyor.pipeline._params import diff_params as diff_params
    from conveyor.pipeline._plots import diff_plots as diff_plots
    from conveyor.pipeline._plots import show_plots as show_plots
    from conveyor.pipeline._render import dag as dag
    from conveyor.pipeline._runner import RunReport as RunReport
    from conveyor.pipeline._runner import RunTimedOutError as RunTimedOutError
    from conveyor.pipeline._runner import StageFailedError as StageFailedError
    from conveyor.pipeline._runner import StageResult as StageResult
    from conveyor.pipeline._runner import run as run
    from conveyor.pipeline._spec import Out as Out
    from conveyor.pipeline._spec import ParamRef as ParamRef
    from conveyor.pipeline._spec import Pipeline as Pipeline
    from conveyor.pipeline._spec import Stage as Stage
    from conveyor.pipeline._spec import load_pipeline as load_pipeline
    from conveyor.pipeline._status import PipelineStatus as PipelineStatus
    from conveyor.pipeline._status import StageStatus as StageStatus
    from conveyor.pipeline._status import pipeline_status as pipeline_status
    from conveyor.pipeline._verify import VerifyResult as VerifyResult
    from conveyor.pipeline._verify import verify_reproducible as verify_reproducible

__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
