"""Data and model validation: checks, suites, gates and reports.

Usable on its own, for example inside a pytest test::

    from conveyor import checks

    result = checks.run_suite("data_integrity", data=frame, label="target")
    assert result.passed, checks.to_markdown(result)

Needs the ``checks`` extra (NumPy, pandas, SciPy): ``pip install 'conveyor[checks]'``.
"""

from __future__ import annotations

from conveyor.checks._dataset import Dataset, read_table
from conveyor.checks._model import Model, Predictions, load_model
from conveyor.checks._registry import CHECKS
from conveyor.checks._report import summary_lines, to_html, to_json, to_markdown, write_reports
from conveyor.checks._result import CheckResult, Condition, ConditionResult, SuiteResult
from conveyor.checks._schema import Schema, infer_schema, load_schema
from conveyor.checks._suite import BUILTIN, CheckSpec, Suite, run_suite

__all__ = [
    "BUILTIN",
    "CHECKS",
    "CheckResult",
    "CheckSpec",
    "Condition",
    "ConditionResult",
    "Dataset",
    "Model",
    "Predictions",
    "Schema",
    "Suite",
    "SuiteResult",
    "infer_schema",
    "load_model",
    "load_schema",
    "read_table",
    "run_suite",
    "summary_lines",
    "to_html",
    "to_json",
    "to_markdown",
    "write_reports",
]
