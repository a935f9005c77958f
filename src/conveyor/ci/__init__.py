"""CI integration: a workflow file that runs conveyor on every push and pull request, and the
report it posts on the pull request.

>>> from conveyor.ci import init_workflow, build_report
>>> init_workflow("github").path          # .github/workflows/conveyor.yml
>>> report = build_report(base="main", plots_dir="report_plots")
>>> report.verdict.status                 # 'passed', 'failed' or 'unknown'
>>> print(report.to_markdown())           # the pull-request comment
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "PROVIDERS": "_workflows",
    "Workflow": "_workflows",
    "init_workflow": "_workflows",
    "Gate": "_report",
    "PlotImage": "_report",
    "Report": "_report",
    "Verdict": "_report",
    "build_report": "_report",
    "report_markdown": "_report",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from conveyor.ci._report import Gate as Gate
    from conveyor.ci._report import PlotImage as PlotImage
    from conveyor.ci._report import Report as Report
    from conveyor.ci._report import Verdict as Verdict
    from conveyor.ci._report import build_report as build_report
    from conveyor.ci._report import report_markdown as report_markdown
    from conveyor.ci._workflows import PROVIDERS as PROVIDERS
    from conveyor.ci._workflows import Workflow as Workflow
    from conveyor.ci._workflows import init_workflow as init_workflow

__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
