"""Data integrity: one data set on its own (``data``, or the training set).

Default conditions are set so that a clean data set passes: each one fails only on what
is a defect in any data set (a column with no information, rows that duplicate others in
bulk, labels that contradict each other, a feature that gives the label away), and warns
on what deserves a look.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks._dataset import Column, Dataset
from conveyor.checks._registry import CheckSkipped, Context, Measured, check, condition
from conveyor.checks._result import Figure

MAX_LISTED = 20


def _top(items: dict[str, float], limit: int = MAX_LISTED) -> dict[str, float]:
    return dict(sorted(items.items(), key=lambda kv: -kv[1])[:limit])


@check(
    "missing_values",
    "Missing values",
    needs=("data",),
    conditions=(
        condition("max_missing_share", "max_share", "max", warn=0.05, fail=0.5, text="share missing in any column"),
    ),
)
def missing_values(ctx: Context, params: dict[str, Any]) -> Measured:
    """Share of missing values in each column (the label included)."""
    ds = ctx.reference()
    shares = {c: float(ds.column(c).missing.mean()) for c in [*ds.features, *([ds.label] if ds.label else [])]}
    missing = {c: s for c, s in shares.items() if s > 0}
    worst = max(shares.values(), default=0.0)
    empty = [c for c, s in shares.items() if s == 1.0]
    if empty:
        summary = f"{len(empty)} column(s) entirely missing: {', '.join(empty[:5])}"
    elif missing:
        name = max(missing, key=missing.__getitem__)
        summary = f"{len(missing)} column(s) have missing values; most in '{name}' ({worst:.1%})"
    else:
        summary = "no missing values"
    figures = [Figure("bars", "Share missing", {"labels": list(_top(missing)), "values": list(_top(missing).values())})]
    return Measured(
        summary,
        {"max_share": worst, "columns_with_missing": len(missing), "all_missing_columns": len(empty)},
        {"share_by_column": _top(missing, 1000), "all_missing": empty},
        figures if missing else [],
    )


@check(
    "duplicate_rows",
    "Duplicate rows",
    needs=("data",),
    conditions=(condition("max_duplicate_share", "share", "max", warn=0.0, fail=0.05, text="share of duplicate rows"),),
)
def duplicate_rows(ctx: Context, params: dict[str, Any]) -> Measured:
    """Rows that repeat an earlier row exactly (every column, the label included)."""
    ds = ctx.reference()
    hashes = ds.full_row_hashes
    unique, first, counts = np.unique(hashes, return_index=True, return_counts=True)
    duplicates = int(len(hashes) - len(unique))
    share = duplicates / len(hashes)
    repeated = np.argsort(-counts)[: min(5, int((counts > 1).sum()))]
    examples = [
        {"row": int(first[i]), "copies": int(counts[i])}
        for i in repeated  # first occurrence, as an example
    ]
    summary = f"{duplicates:,} duplicate row(s) ({share:.2%})" if duplicates else "no duplicate rows"
    return Measured(summary, {"share": share, "count": duplicates}, {"most_repeated": examples})


@check(
    "single_value",
    "Single-value and near-constant columns",
    needs=("data",),
    conditions=(
        condition("no_single_value", "single_value_columns", "max", fail=0, text="columns with one value"),
        condition("no_near_constant", "near_constant_columns", "max", warn=0, text="columns with one dominant value"),
    ),
    params={"dominant_share": 0.995},
)
def single_value(ctx: Context, params: dict[str, Any]) -> Measured:
    """Columns that carry no information (one value), or almost none (one value in 99.5% of rows)."""
    ds = ctx.reference()
    single: list[str] = []
    near: dict[str, float] = {}
    for name in ds.features:
        column = ds.column(name)
        if column.kind == "numeric":  # counted without keeping a code per row for every number
            counts = column.series.value_counts(dropna=True, sort=True).to_numpy()
        else:
            codes, uniques = column.codes()
            counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        if len(counts) <= 1:
            single.append(name)
            continue
        top = counts.max() / len(ds)
        if top >= params["dominant_share"]:
            near[name] = float(top)
    parts = []
    if single:
        parts.append(f"{len(single)} column(s) with a single value: {', '.join(single[:5])}")
    if near:
        parts.append(f"{len(near)} near-constant: {', '.join(list(near)[:5])}")
    return Measured(
        "; ".join(parts) or "every column varies",
        {"single_value_columns": len(single), "near_constant_columns": len(near)},
        {"single_value": single, "near_constant": near},
    )


@check(
    "mixed_types",
    "Mixed types in a column",
    needs=("data",),
    conditions=(condition("no_mixed_types", "columns", "max", warn=0, text="columns mixing numbers and text"),),
)
def mixed_types(ctx: Context, params: dict[str, Any]) -> Measured:
    """Text columns where some values are numbers and others words (a unit slipped in, a code
    read as text): the share of rows of the rarer kind."""
    ds = ctx.reference()
    found: dict[str, float] = {}
    for name in ds.features:
        column = ds.column(name)
        if column.series.dtype != object and not pd.api.types.is_string_dtype(column.series.dtype):
            continue
        codes, uniques = column.codes()
        if len(uniques) == 0:
            continue
        numeric = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").notna().to_numpy()
        if numeric.all() or not numeric.any():
            continue
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        numeric_rows = counts[numeric].sum() / counts.sum()
        found[name] = float(min(numeric_rows, 1 - numeric_rows))
    summary = (
        f"{len(found)} column(s) mix numbers and text: "
        + ", ".join(f"{c} ({s:.1%} rarer kind)" for c, s in found.items())
        if found
        else "no column mixes numbers and text"
    )
    return Measured(summary, {"columns": len(found)}, {"rarer_kind_share": found})


_NOT_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


@check(
    "string_variants",
    "Variants of one category",
    needs=("data",),
    conditions=(condition("no_variants", "groups", "max", fail=0, text="categories written in several ways"),),
)
def string_variants(ctx: Context, params: dict[str, Any]) -> Measured:
    """Categories that are the same once case, spaces and punctuation are ignored ("US", "us ", "U.S.")."""
    ds = ctx.reference()
    groups: dict[str, list[list[str]]] = {}
    total = 0
    for column in ds.of_kind("categorical", "text"):
        _codes, uniques = column.codes()
        texts = [u for u in uniques if isinstance(u, str)]
        by_key: dict[str, list[str]] = {}
        for text in texts:
            key = _NOT_ALNUM.sub("", text).casefold()
            if key:
                by_key.setdefault(key, []).append(text)
        found = [sorted(v) for v in by_key.values() if len(v) > 1]
        if found:
            groups[column.name] = found[:MAX_LISTED]
            total += len(found)
    summary = (
        f"{total} category group(s) written in several ways, e.g. "
        + ", ".join(f"{c}: {' / '.join(repr(v) for v in g[0])}" for c, g in list(groups.items())[:3])
        if total
        else "no category is written in several ways"
    )
    return Measured(summary, {"groups": total}, {"variants": groups})


@check(
    "conflicting_labels",
    "Conflicting labels",
    needs=("data",),
    needs_label=True,
    conditions=(
        condition("max_conflicting_share", "share", "max", warn=0.0, fail=0.05, text="share of rows with conflicts"),
    ),
)
def conflicting_labels(ctx: Context, params: dict[str, Any]) -> Measured:
    """Rows with identical features but different labels: the label is noisy, or a feature is missing."""
    ds = _labelled(ctx.reference())
    label = ds.column(ds.label)  # type: ignore[arg-type]
    codes, _ = label.codes()
    known = codes >= 0  # a missing label conflicts with nothing
    hashes, labels = ds.row_hashes[known], codes[known]
    # sorted by features then label: a group of identical features conflicts when its label changes inside it
    order = np.lexsort((labels, hashes))
    hashes, labels = hashes[order], labels[order]
    del order
    starts = np.r_[True, hashes[1:] != hashes[:-1]]
    group = np.cumsum(starts) - 1
    distinct = np.bincount(group, weights=starts | np.r_[True, labels[1:] != labels[:-1]])
    conflicted = distinct > 1
    count = int(np.count_nonzero(conflicted[group]))
    groups = int(np.count_nonzero(conflicted))
    share = count / len(ds) if len(ds) else 0.0
    summary = (
        f"{count:,} row(s) in {groups:,} group(s) of identical features carry different labels ({share:.2%})"
        if count
        else "no identical features with different labels"
    )
    return Measured(summary, {"share": share, "rows": count, "groups": groups})


@check(
    "outliers",
    "Outliers",
    needs=("data",),
    conditions=(condition("max_outlier_share", "share", "max", warn=0.1, text="share of rows with an extreme value"),),
    params={"iqr_factor": 3.0},
)
def outliers(ctx: Context, params: dict[str, Any]) -> Measured:
    """Values beyond Tukey's far fences (3 interquartile ranges past the quartiles), per numeric
    column, and the share of rows with at least one."""
    ds = ctx.reference()
    columns = ds.of_kind("numeric")
    if not columns:
        raise CheckSkipped("no numeric column")
    any_outlier = np.zeros(len(ds), dtype=bool)
    per_column: dict[str, float] = {}
    for column in columns:
        values = column.numbers
        finite = values[np.isfinite(values)]
        if len(finite) < 8:
            continue
        q1, q3 = np.quantile(finite, [0.25, 0.75])
        spread = params["iqr_factor"] * (q3 - q1)
        if spread == 0:
            continue
        with np.errstate(invalid="ignore"):
            out = (values < q1 - spread) | (values > q3 + spread)
        if out.any():
            per_column[column.name] = float(out.mean())
            any_outlier |= out
    share = float(any_outlier.mean())
    top = _top(per_column)
    summary = (
        f"{int(any_outlier.sum()):,} row(s) ({share:.2%}) have an extreme value, most in '{next(iter(top))}'"
        if per_column
        else "no extreme values"
    )
    figures = [Figure("bars", "Share of extreme values", {"labels": list(top), "values": list(top.values())})]
    return Measured(summary, {"share": share, "columns": len(per_column)}, {"share_by_column": top}, figures)


@check(
    "class_imbalance",
    "Class imbalance",
    needs=("data",),
    needs_label=True,
    conditions=(condition("min_class_ratio", "ratio", "min", warn=0.05, text="rarest class ÷ most common class"),),
)
def class_imbalance(ctx: Context, params: dict[str, Any]) -> Measured:
    """The label's class shares, and the rarest class's size relative to the most common one."""
    ds = _labelled(ctx.reference())
    if ds.task != "classification":
        raise CheckSkipped("the label is numeric (regression): no classes")
    codes, uniques = ds.column(ds.label).codes()  # type: ignore[arg-type]
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    if counts.sum() == 0:
        raise CheckSkipped("the label is entirely missing")
    shares = {str(u): float(c / counts.sum()) for u, c in zip(uniques, counts, strict=True)}
    ratio = float(counts.min() / counts.max())
    rarest = min(shares, key=shares.__getitem__)
    return Measured(
        f"{len(shares)} classes; the rarest, '{rarest}', is {shares[rarest]:.1%} of rows (ratio {ratio:.3f})",
        {"ratio": ratio, "classes": len(shares)},
        {"share_by_class": _top(shares, 100)},
        [Figure("bars", "Class shares", {"labels": list(shares), "values": list(shares.values())})],
    )


@check(
    "feature_label_leakage",
    "A feature that predicts the label alone",
    needs=("data",),
    needs_label=True,
    conditions=(
        # a hint, not a verdict: some real features are that good (petal width in iris)
        condition("max_predictive_power", "max_power", "max", warn=0.9, text="predictive power of one feature"),
    ),
)
def feature_label_leakage(ctx: Context, params: dict[str, Any]) -> Measured:
    """How well each feature alone predicts the label on held-out rows (0 = no better than the
    majority class or the mean, 1 = perfectly). A feature near 1 is usually a leak: the label
    in disguise, or something known only after the fact."""
    ds = _labelled(ctx.reference())
    powers = predictive_power(ds, seed=ctx.seed)
    if not powers:
        raise CheckSkipped("no feature to score")
    top = _top(powers)
    best = next(iter(top))
    return Measured(
        f"strongest single feature: '{best}' (predictive power {top[best]:.2f})",
        {"max_power": top[best]},
        {"power_by_feature": top},
        [Figure("bars", "Predictive power of each feature alone", {"labels": list(top), "values": list(top.values())})],
    )


def _labelled(ds: Dataset) -> Dataset:
    if ds.label is None:
        raise CheckSkipped("no label column given")
    if ds.column(ds.label).missing.all():
        raise CheckSkipped(f"the label column '{ds.label}' is entirely missing")
    return ds


def binned(column: Column, bins: int = 20, max_categories: int = 50) -> np.ndarray:
    """A small integer per row: quantile bins for numbers, the most common categories otherwise;
    missing values get a bin of their own."""
    if column.kind in ("numeric", "datetime"):
        values = column.numbers
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            return np.zeros(len(values), dtype=np.int64)
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
        out = np.searchsorted(edges, values, side="right").astype(np.int64)
        out[~np.isfinite(values)] = len(edges) + 1
        return out
    codes, uniques = column.codes()
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    keep = np.argsort(-counts)[:max_categories]
    mapping = np.full(len(uniques) + 1, max_categories, dtype=np.int64)  # the rest share one bin
    mapping[keep] = np.arange(len(keep))
    out = mapping[codes]
    out[codes < 0] = max_categories + 1
    return out


def predictive_power(ds: Dataset, seed: int = 0) -> dict[str, float]:
    """Each feature's predictive power score alone, on a 70/30 split of the rows."""
    label = ds.column(ds.label)  # type: ignore[arg-type]
    keep = ~label.missing
    n = int(keep.sum())
    if n < 10:
        return {}
    order = np.random.default_rng(seed).permutation(n)
    fit, hold = order[: int(n * 0.7)], order[int(n * 0.7) :]
    regression = ds.task == "regression"
    if regression:
        y = label.numbers[keep]
        base_error = np.mean((y[hold] - y[fit].mean()) ** 2)
    else:
        codes, uniques = label.codes()
        y = codes[keep]
        k = len(uniques)
        majority = np.bincount(y[fit], minlength=k).argmax()
        base_accuracy = np.mean(y[hold] == majority)
    powers: dict[str, float] = {}
    for name in ds.features:
        b = binned(ds.column(name))[keep]
        nbins = int(b.max()) + 1
        if regression:
            sums = np.bincount(b[fit], weights=y[fit], minlength=nbins)
            counts = np.bincount(b[fit], minlength=nbins)
            means = np.where(counts > 0, sums / np.maximum(counts, 1), y[fit].mean())
            error = np.mean((y[hold] - means[b[hold]]) ** 2)
            power = 1 - error / base_error if base_error > 0 else 0.0
        else:
            table = np.bincount(b[fit] * k + y[fit], minlength=nbins * k).reshape(nbins, k)
            guess = np.where(table.sum(axis=1) > 0, table.argmax(axis=1), majority)
            accuracy = np.mean(y[hold] == guess[b[hold]])
            power = (accuracy - base_accuracy) / (1 - base_accuracy) if base_accuracy < 1 else 0.0
        powers[name] = float(max(0.0, min(1.0, power)))
    return powers
