"""Champion versus challenger: is the candidate model not worse than the reference one, with
statistics rather than point estimates?

Both models predict the same holdout rows, so the comparison is paired: a bootstrap
resamples rows (the same resample for both models) and gives the distribution of the metric
difference, for any metric. The gate is a non-inferiority test: at the stated confidence,
the challenger may be worse by at most the tolerance. For accuracy, McNemar's exact test
on the rows where exactly one model is right adds a p-value for "they differ".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from conveyor.checks import _metrics
from conveyor.checks._evaluation import PRIMARY, target
from conveyor.checks._registry import CheckSkipped, Context, Measured, check, condition
from conveyor.checks._result import Figure
from conveyor.errors import UsageError

_BUDGET = 10_000_000  # weights held at once (resamples × rows), about 80 MB


def paired_bootstrap(
    champion: _metrics.Target,
    challenger: _metrics.Target,
    fn: _metrics.MetricFn,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """``fn(challenger) − fn(champion)`` on each of ``resamples`` bootstrap resamples of the rows."""
    n = champion.n
    rng = np.random.default_rng(seed)
    step = max(1, min(resamples, _BUDGET // max(n, 1)))
    out = []
    done = 0
    while done < resamples:
        b = min(step, resamples - done)
        W = np.empty((b, n), dtype=np.float64)
        for i in range(b):
            W[i] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        out.append(fn(challenger, W) - fn(champion, W))
        done += b
    return np.concatenate(out)


def mcnemar(champion: _metrics.Target, challenger: _metrics.Target) -> tuple[int, int, float]:
    """Rows only the champion got right, rows only the challenger did, and the exact two-sided p."""
    from scipy import stats

    a = champion.y == champion.pred
    b = challenger.y == challenger.pred
    only_champion = int((a & ~b).sum())
    only_challenger = int((~a & b).sum())
    discordant = only_champion + only_challenger
    p = 1.0 if discordant == 0 else float(stats.binomtest(only_challenger, discordant, 0.5).pvalue)
    return only_champion, only_challenger, p


@check(
    "champion_challenger",
    "Challenger against champion",
    needs=("model", "champion", "test"),
    needs_label=True,
    conditions=(
        condition(
            "max_degradation", "worst_degradation", "max", fail=0.01, text="how much worse the challenger may be"
        ),
    ),
    params={"metric": None, "confidence": 0.95, "resamples": 1000},
)
def champion_challenger(ctx: Context, params: dict[str, Any]) -> Measured:
    """Paired bootstrap of the metric difference on the same test rows. ``worst_degradation``
    is how much worse than the champion the challenger may be at the stated confidence (the
    one-sided bound); the default condition fails above 0.01 (the tolerance)."""
    if ctx.test is None:
        raise CheckSkipped("no test set given")
    new, old = ctx.predictions("model", "test"), ctx.predictions("champion", "test")
    also: frozenset[str] = frozenset()
    if ctx.test.task == "classification":  # one class encoding for both models
        seen = [pd.unique(p.labels) for p in (new, old)]
        seen += [np.asarray(p.classes) for p in (new, old) if p.classes is not None]
        also = frozenset(_metrics.class_name(c) for values in seen for c in values)
    challenger = target(ctx.test, new, also)
    champion = target(ctx.test, old, also)
    name = params.get("metric") or PRIMARY[challenger.task]
    fn, higher, needs_proba = _metrics.metric(challenger.task, name)
    if needs_proba and (challenger.proba is None or champion.proba is None):
        raise CheckSkipped(f"{name} needs probabilities, and a model gives none")
    confidence = float(params["confidence"])
    if not 0.5 < confidence < 1:
        raise UsageError(f"confidence {confidence}: must be between 0.5 and 1", hint="for example 0.95")
    w = _metrics.ones(challenger.n)
    value_new, value_old = float(fn(challenger, w)[0]), float(fn(champion, w)[0])
    diffs = paired_bootstrap(champion, challenger, fn, resamples=int(params["resamples"]), seed=ctx.seed)
    gains = diffs if higher else -diffs  # positive: the challenger is better
    gains = gains[np.isfinite(gains)]
    gain = value_new - value_old if higher else value_old - value_new
    alpha = 1 - confidence
    low, high = (float(x) for x in np.quantile(gains, [alpha / 2, 1 - alpha / 2]))
    bound = float(np.quantile(gains, alpha))  # one-sided: the challenger is at least this much better
    worst = max(0.0, -bound)
    values: dict[str, Any] = {
        "metric_challenger": value_new,
        "metric_champion": value_old,
        "gain": gain,
        "ci_low": low,
        "ci_high": high,
        "worst_degradation": worst,
        "probability_better": float((gains > 0).mean()),
        "rows": challenger.n,
        "resamples": len(gains),
    }
    summary = (
        f"{name}: challenger {value_new:.4g}, champion {value_old:.4g} ({gain:+.4g}); "
        f"{confidence:.0%} interval of the gain [{low:+.4g}, {high:+.4g}]; "
        f"at {confidence:.0%} confidence the challenger is at most {worst:.4g} worse"
    )
    details: dict[str, Any] = {"metric": name, "higher_is_better": higher, "confidence": confidence}
    if name == "accuracy":
        only_old, only_new, p = mcnemar(champion, challenger)
        values.update({"mcnemar_p": p, "only_champion_right": only_old, "only_challenger_right": only_new})
        summary += (
            f"; McNemar p = {p:.3g} ({only_new} rows only the challenger got right, {only_old} only the champion)"
        )
    edges = np.histogram_bin_edges(gains, bins=30)
    counts = np.histogram(gains, bins=edges)[0]
    figure = Figure(
        "bars",
        f"Bootstrap distribution of the gain in {name} (challenger − champion, {len(gains)} resamples)",
        {"labels": [f"{e:+.3g}" for e in edges[:-1]], "values": (counts / max(1, counts.sum())).tolist()},
    )
    return Measured(summary, values, details, [figure])
