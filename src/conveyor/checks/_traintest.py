"""Train/test (or reference/current) checks: is the test set the same kind of data as the
training set, and is it really unseen?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks import _drift
from conveyor.checks._dataset import Column, Dataset, category_keys
from conveyor.checks._registry import CheckSkipped, Context, Measured, _empty, check, condition
from conveyor.checks._result import Figure

MAX_FIGURES = 12


def _pair(ctx: Context) -> tuple[Dataset, Dataset]:
    if ctx.train is None or ctx.test is None:
        raise CheckSkipped("needs a train and a test set")
    for ds in (ctx.train, ctx.test):
        if not len(ds):
            raise _empty(ds)
    return ctx.train, ctx.test


def _shared(train: Dataset, test: Dataset) -> list[str]:
    return [c for c in train.features if c in test.frame.columns]


def column_drift(a: Column, b: Column, method: str = "auto", threshold: float | None = None) -> _drift.Drift:
    """Drift of one column between two data sets, by its kind in the first."""
    if a.kind in ("numeric", "datetime") and b.kind in ("numeric", "datetime", "categorical"):
        return _drift.numeric_drift(a.numbers, b.numbers, method, threshold)
    codes, uniques = pd.factorize(pd.concat([a.series.astype(object), b.series.astype(object)], ignore_index=True))
    labels = [str(u) for u in uniques]
    return _drift.categorical_drift(codes[: len(a.series)], codes[len(a.series) :], labels, method, threshold)


def _drift_figure(name: str, drift: _drift.Drift) -> Figure:
    return Figure(
        "histograms",
        f"{name}: {drift.method} {'p' if drift.method in _drift.P_VALUE_METHODS else 'distance'} = {drift.score:.3g}",
        {"labels": drift.labels, "reference": drift.reference["share"], "current": drift.current["share"]},
    )


@check(
    "columns_match",
    "Same columns in train and test",
    needs=("train", "test"),
    conditions=(
        condition("no_missing_columns", "missing_in_test", "max", fail=0, text="train columns absent from test"),
    ),
)
def columns_match(ctx: Context, params: dict[str, Any]) -> Measured:
    """Columns of one set that the other lacks, and columns whose kind differs."""
    train, test = _pair(ctx)
    train_cols = [*train.features, *([train.label] if train.label else [])]
    missing = [c for c in train_cols if c not in test.frame.columns]
    extra = [c for c in test.frame.columns if c not in train.frame.columns]
    kinds = {
        c: f"{train.column(c).kind} in train, {test.column(c).kind} in test"
        for c in train.features
        if c in test.frame.columns and train.column(c).kind != test.column(c).kind
    }
    parts = []
    if missing:
        parts.append(f"missing in test: {', '.join(missing[:5])}")
    if extra:
        parts.append(f"only in test: {', '.join(extra[:5])}")
    if kinds:
        parts.append(f"kind differs: {', '.join(list(kinds)[:5])}")
    return Measured(
        "; ".join(parts) or "same columns, same kinds",
        {"missing_in_test": len(missing), "only_in_test": len(extra), "kind_differs": len(kinds)},
        {"missing_in_test": missing, "only_in_test": extra, "kind_differs": kinds},
    )


@check(
    "feature_drift",
    "Feature drift",
    needs=("train", "test"),
    conditions=(
        condition("max_drifted_share", "drifted_share", "max", warn=0.0, fail=0.5, text="share of drifted features"),
    ),
    params={"method": "auto", "threshold": None},
)
def feature_drift(ctx: Context, params: dict[str, Any]) -> Measured:
    """Per feature, a drift test chosen by its type and the reference's size (see ``_drift``);
    the data set drifted when half of its features did."""
    train, test = _pair(ctx)
    drifts: dict[str, _drift.Drift] = {}
    errors: dict[str, str] = {}
    for name in _shared(train, test):
        if train.column(name).kind == "text":
            continue
        try:
            drifts[name] = column_drift(train.column(name), test.column(name), params["method"], params["threshold"])
        except ValueError as exc:
            errors[name] = str(exc)
    _drift.adjust(list(drifts.values()))
    rows = {
        name: {
            "method": d.method,
            "score": d.score,
            "threshold": d.threshold,
            "p_value": d.p_value,
            "drifted": d.drifted,
        }
        for name, d in drifts.items()
    }
    figures = [_drift_figure(name, d) for name, d in drifts.items() if d.drifted][:MAX_FIGURES]
    if not rows:
        raise CheckSkipped("no feature could be compared" + (f": {next(iter(errors.values()))}" if errors else ""))
    drifted = [n for n, r in rows.items() if r["drifted"]]
    share = len(drifted) / len(rows)
    summary = (
        f"{len(drifted)} of {len(rows)} features drifted ({share:.0%}): {', '.join(drifted[:5])}"
        if drifted
        else f"none of {len(rows)} features drifted"
    )
    return Measured(
        summary,
        {"drifted_share": share, "drifted": len(drifted), "features": len(rows)},
        {"by_feature": rows, "not_compared": errors},
        figures,
    )


@check(
    "label_drift",
    "Label drift",
    needs=("train", "test"),
    needs_label=True,
    conditions=(condition("no_label_drift", "drifted", "max", warn=0, text="label drift"),),
    params={"method": "auto", "threshold": None},
)
def label_drift(ctx: Context, params: dict[str, Any]) -> Measured:
    """Whether the label's distribution differs between train and test."""
    train, test = _pair(ctx)
    if train.label is None or test.label is None or train.label not in test.frame.columns:
        raise CheckSkipped("no label column in both sets")
    drift = column_drift(train.column(train.label), test.column(train.label), params["method"], params["threshold"])
    verb = "drifted" if drift.drifted else "did not drift"
    kind = "p" if drift.method in _drift.P_VALUE_METHODS else "distance"
    return Measured(
        f"the label {verb} ({drift.method} {kind} = {drift.score:.3g}, threshold {drift.threshold:g})",
        {"drifted": int(drift.drifted), "score": drift.score},
        {"method": drift.method, "threshold": drift.threshold},
        [_drift_figure(train.label, drift)],
    )


@check(
    "train_test_overlap",
    "Rows shared by train and test",
    needs=("train", "test"),
    conditions=(
        condition("max_overlap_share", "share", "max", warn=0.0, fail=0.05, text="share of test rows also in train"),
    ),
)
def train_test_overlap(ctx: Context, params: dict[str, Any]) -> Measured:
    """Test rows whose features also appear in the training set: the model was evaluated on
    rows it saw (leakage), so the test score flatters it."""
    train, test = _pair(ctx)
    shared = _shared(train, test)
    if not shared:
        raise CheckSkipped("no feature in common")
    from conveyor.checks._dataset import _hash_rows

    a = _hash_rows(train.frame, shared)
    b = _hash_rows(test.frame, shared)
    inside = np.isin(b, a)
    share = float(inside.mean())
    count = int(inside.sum())
    summary = f"{count:,} test row(s) ({share:.2%}) also appear in train" if count else "no test row appears in train"
    return Measured(summary, {"share": share, "rows": count})


@check(
    "new_categories",
    "Categories the training set never saw",
    needs=("train", "test"),
    conditions=(
        condition("max_new_category_share", "max_share", "max", warn=0.0, fail=0.1, text="share of test rows"),
    ),
)
def new_categories(ctx: Context, params: dict[str, Any]) -> Measured:
    """Per categorical feature, the share of test rows whose category train never had."""
    train, test = _pair(ctx)
    found: dict[str, dict[str, Any]] = {}
    for name in _shared(train, test):
        if train.column(name).kind != "categorical":
            continue
        seen = set(category_keys(train.column(name).series.dropna()).unique())
        current = category_keys(test.column(name).series.dropna())
        new = ~current.isin(seen)
        if new.any():
            found[name] = {
                "share": float(new.sum() / len(test)),
                "examples": sorted(current[new].unique().tolist())[:5],
            }
    worst = max((f["share"] for f in found.values()), default=0.0)
    summary = (
        f"{len(found)} feature(s) with new categories: "
        + ", ".join(
            f"{n} ({f['share']:.2%}: {', '.join(map(repr, f['examples'][:3]))})" for n, f in list(found.items())[:3]
        )
        if found
        else "every test category was seen in train"
    )
    return Measured(summary, {"max_share": worst, "features": len(found)}, {"by_feature": found})


@check(
    "size_mismatch",
    "Sizes of train and test",
    needs=("train", "test"),
    conditions=(
        condition("min_test_share", "test_share", "min", warn=0.05, fail=0.01, text="test rows ÷ all rows"),
        condition("min_test_rows", "test_rows", "min", fail=10, text="test rows"),
    ),
)
def size_mismatch(ctx: Context, params: dict[str, Any]) -> Measured:
    """Whether the test set is large enough to say anything (and not larger than reason)."""
    if ctx.train is None or ctx.test is None:
        raise CheckSkipped("needs a train and a test set")
    n_train, n_test = len(ctx.train), len(ctx.test)
    share = n_test / (n_train + n_test) if n_train + n_test else 0.0
    return Measured(
        f"{n_train:,} train rows, {n_test:,} test rows (test = {share:.1%} of all)",
        {"train_rows": n_train, "test_rows": n_test, "test_share": share},
    )
