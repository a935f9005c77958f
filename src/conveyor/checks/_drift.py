"""Distribution drift between a reference and a current sample of one column.

The test is chosen by the column's type and the reference's size, as Evidently's users know
it: up to 1,000 reference rows, a hypothesis test (Kolmogorov-Smirnov for numbers, chi-squared
for categories, a two-proportion z-test for two values) flags drift at p < 0.05; above that,
where any difference becomes "significant", a distance flags drift at 0.1 or more
(Wasserstein distance divided by the reference's standard deviation for numbers,
Jensen-Shannon distance for categories). PSI is available by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Method = Literal["auto", "ks", "wasserstein", "chisquare", "z", "jensenshannon", "psi"]
METHODS = ("ks", "wasserstein", "chisquare", "z", "jensenshannon", "psi")
LARGE_REFERENCE = 1000
FEW_VALUES = 5  # a numeric column with at most this many distinct values is tested as categories
DEFAULT_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}
P_VALUE_METHODS = ("ks", "chisquare", "z")
ALPHA = 0.05
# Up to this many rows on both sides together, a distance also needs a significant test to count:
# on a few thousand rows a Wasserstein distance of 0.1 standard deviations happens by chance
# (one feature in ten on clean random splits); on more rows the test is always significant.
SIGNIFICANCE_MAX_ROWS = 50_000


@dataclass
class Drift:
    method: str
    score: float  # the p-value (hypothesis tests) or the distance
    threshold: float
    drifted: bool
    reference: dict[str, list[float]]  # shares for the report: bins or categories
    current: dict[str, list[float]]
    labels: list[str]
    p_value: float | None = None  # of the hypothesis test, also behind a distance on smaller samples

    def judge(self, p_value: float | None = None) -> None:
        """Decide ``drifted`` from the score, and from ``p_value`` (adjusted, when given)."""
        p = self.p_value if p_value is None else p_value
        if np.isnan(self.score):
            self.drifted = False
        elif self.method in P_VALUE_METHODS:
            self.drifted = bool((p if p is not None else self.score) < self.threshold)
        else:
            self.drifted = bool(self.score >= self.threshold and (p is None or p < ALPHA))


def adjust(drifts: list[Drift]) -> None:
    """Benjamini-Hochberg across the features of one data set: with 25 features tested at 5%,
    one would "drift" by chance in most clean splits."""
    tested = [d for d in drifts if d.p_value is not None and not np.isnan(d.p_value)]
    if len(tested) < 2:
        return
    p = np.array([d.p_value for d in tested], dtype=np.float64)
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    for drift, value in zip(tested, result, strict=True):
        drift.judge(float(value))


def choose(kind: str, reference_size: int, n_unique: int) -> str:
    numeric = kind in ("numeric", "datetime") and n_unique > FEW_VALUES
    if reference_size <= LARGE_REFERENCE:
        if numeric:
            return "ks"
        return "chisquare" if n_unique > 2 else "z"
    return "wasserstein" if numeric else "jensenshannon"


def numeric_drift(ref: np.ndarray, cur: np.ndarray, method: str = "auto", threshold: float | None = None) -> Drift:
    """Drift of a numeric column; NaN and infinities are left out first."""
    from scipy import stats

    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("no values to compare (the column is empty or all missing on one side)")
    n_unique = len(np.unique(np.concatenate([ref, cur])))
    chosen = choose("numeric", len(ref), n_unique) if method == "auto" else method
    if chosen in ("chisquare", "z", "jensenshannon") and n_unique <= max(FEW_VALUES, 20):
        values, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
        return _categorical(inverse[: len(ref)], inverse[len(ref) :], [f"{v:g}" for v in values], chosen, threshold)
    labels, ref_share, cur_share = _binned(ref, cur)
    p_value: float | None = None
    if chosen == "ks" or len(ref) + len(cur) <= SIGNIFICANCE_MAX_ROWS:
        p_value = float(stats.ks_2samp(ref, cur).pvalue)
    if chosen == "ks":
        score = float(stats.ks_2samp(ref, cur).pvalue) if p_value is None else p_value
    elif chosen == "wasserstein":
        score = float(stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001))
    elif chosen == "jensenshannon":
        score = _jensenshannon(ref_share, cur_share)
    elif chosen == "psi":
        score = _psi(ref_share, cur_share)
    else:
        raise ValueError(f"drift method '{chosen}' is not for numbers (use one of ks, wasserstein, jensenshannon, psi)")
    return _verdict(chosen, score, threshold, labels, ref_share, cur_share, p_value)


def categorical_drift(
    ref_codes: np.ndarray,
    cur_codes: np.ndarray,
    labels: list[str],
    method: str = "auto",
    threshold: float | None = None,
) -> Drift:
    """Drift of a categorical column given shared codes (-1 = missing, left out)."""
    ref = ref_codes[ref_codes >= 0]
    cur = cur_codes[cur_codes >= 0]
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("no values to compare (the column is empty or all missing on one side)")
    n_unique = len(np.union1d(np.unique(ref), np.unique(cur)))
    chosen = choose("categorical", len(ref), n_unique) if method == "auto" else method
    return _categorical(ref, cur, labels, chosen, threshold)


def _categorical(ref: np.ndarray, cur: np.ndarray, labels: list[str], method: str, threshold: float | None) -> Drift:
    from scipy import stats

    k = len(labels)
    ref_counts = np.bincount(ref, minlength=k).astype(np.float64)
    cur_counts = np.bincount(cur, minlength=k).astype(np.float64)
    seen = (ref_counts + cur_counts) > 0
    ref_counts, cur_counts = ref_counts[seen], cur_counts[seen]
    shown = [label for label, keep in zip(labels, seen, strict=True) if keep]
    ref_share, cur_share = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    p_value = None
    if method not in P_VALUE_METHODS and ref_counts.sum() + cur_counts.sum() <= SIGNIFICANCE_MAX_ROWS:
        p_value = (
            float(stats.chi2_contingency(np.vstack([ref_counts, cur_counts])).pvalue) if len(ref_counts) > 1 else 1.0
        )
    if method == "chisquare":
        expected = ref_share * cur_counts.sum()
        # a category the reference never had: certainly not the same distribution
        score = 0.0 if (expected == 0).any() else float(stats.chisquare(cur_counts, expected).pvalue)
    elif method == "z":
        score = _z_test(ref_counts, cur_counts)
    elif method == "jensenshannon":
        score = _jensenshannon(ref_share, cur_share)
    elif method == "psi":
        score = _psi(ref_share, cur_share)
    else:
        raise ValueError(f"drift method '{method}' is not for categories (use chisquare, z, jensenshannon or psi)")
    if method in P_VALUE_METHODS:
        p_value = score
    return _verdict(method, score, threshold, shown, ref_share, cur_share, p_value)


def _verdict(
    method: str,
    score: float,
    threshold: float | None,
    labels: list[str],
    ref: np.ndarray,
    cur: np.ndarray,
    p_value: float | None,
) -> Drift:
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else threshold
    drift = Drift(method, score, limit, False, {"share": ref.tolist()}, {"share": cur.tolist()}, labels, p_value)
    drift.judge()
    return drift


def _binned(ref: np.ndarray, cur: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Shares of each side in shared bins (Sturges' rule over both samples)."""
    both = np.concatenate([ref, cur])
    edges = np.histogram_bin_edges(both, bins="sturges")
    if len(edges) > 41:  # very large samples: more bins than a plot or a distance needs
        edges = np.linspace(edges[0], edges[-1], 41)
    ref_counts = np.histogram(ref, bins=edges)[0].astype(np.float64)
    cur_counts = np.histogram(cur, bins=edges)[0].astype(np.float64)
    labels = [f"{edges[i]:.4g}" for i in range(len(edges) - 1)]
    return labels, ref_counts / len(ref), cur_counts / len(cur)


def _jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(p, q))


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = _floor(p)
    q = _floor(q)
    return float(np.sum((p - q) * np.log(p / q)))


def _floor(share: np.ndarray) -> np.ndarray:
    nonzero = share[share > 0]
    floor = 1e-4 if len(nonzero) == 0 or nonzero.min() > 1e-4 else nonzero.min() / 1e6
    return np.where(share > 0, share, floor)


def _z_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Two-sided pooled two-proportion z-test on the share of the first value."""
    from scipy import stats

    n1, n2 = ref_counts.sum(), cur_counts.sum()
    if len(ref_counts) < 2:
        return 1.0  # one value on both sides: nothing moved
    p1, p2 = ref_counts[0] / n1, cur_counts[0] / n2
    pooled = (ref_counts[0] + cur_counts[0]) / (n1 + n2)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    z = (p1 - p2) / spread
    return float(2 * stats.norm.sf(abs(z)))
