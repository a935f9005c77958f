"""Records of every ``conveyor run``: what ran, where, with which params, and what came out.

:class:`RunStore` keeps them in ``.conveyor/runs/runs.db``; the pipeline runner writes them
(``start_run``, ``record_stage``, ``finish_run``) and ``conveyor runs`` reads them.
Names load on first use, so ``import conveyor.store`` costs nothing until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "RunEnvironment": "_records",
    "RunRecord": "_records",
    "RunStore": "_runs",
    "StageRecord": "_records",
    "RUN_STATUSES": "_records",
    "STAGE_STATUSES": "_records",
    "environment_info": "_records",
    "git_state": "_records",
    "installed_distributions": "_records",
    "new_run_id": "_records",
    "RunComparison": "_report",
    "ValueChange": "_report",
    "StageChange": "_report",
    "compare_runs": "_report",
}

__all__ = [
    "RUN_STATUSES",
    "STAGE_STATUSES",
    "RunComparison",
    "RunEnvironment",
    "RunRecord",
    "RunStore",
    "StageChange",
    "StageRecord",
    "ValueChange",
    "compare_runs",
    "environment_info",
    "git_state",
    "installed_distributions",
    "new_run_id",
]

if TYPE_CHECKING:
    from conveyor.store._records import RUN_STATUSES as RUN_STATUSES
    from conveyor.store._records import STAGE_STATUSES as STAGE_STATUSES
    from conveyor.store._records import RunEnvironment as RunEnvironment
    from conveyor.store._records import RunRecord as RunRecord
    from conveyor.store._records import StageRecord as StageRecord
    from conveyor.store._records import environment_info as environment_info
    from conveyor.store._records import git_state as git_state
    from conveyor.store._records import installed_distributions as installed_distributions
    from conveyor.store._records import new_run_id as new_run_id
    from conveyor.store._report import RunComparison as RunComparison
    from conveyor.store._report import StageChange as StageChange
    from conveyor.store._report import ValueChange as ValueChange
    from conveyor.store._report import compare_runs as compare_runs
    from conveyor.store._runs import RunStore as RunStore


__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
