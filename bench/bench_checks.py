"""Time conveyor.checks and Deepchecks 0.19.1 side by side on the same data, and compare what each detects.

Speed and memory. Seeded synthetic tabular data (``make_frame``): 25 features — 18 numeric with different
distributions (normal, log-normal, exponential, gamma, beta, Student t, uniform, a bimodal mixture, counts),
several correlated as real data is, two with a few missing values; 7 categorical with 3 to 50 categories — and a
binary label ``target`` drawn from a logistic function of several features plus noise. It is split 70/30
(seeded) and written once to CSV, which both venvs read. For each tool, each size (--rows, 100,000 and
1,000,000 rows) and each suite, a separate process (``checks_runner.py perf``):

* data integrity, on the training set (conveyor ``data_integrity``, Deepchecks ``data_integrity()``);
* train/test validation (conveyor ``train_test``, Deepchecks ``train_test_validation()``);
* model evaluation (conveyor ``model_evaluation``, Deepchecks ``model_evaluation()``), with a trained model the
  measured process loads, as a user's check step does: the same scikit-learn Pipeline in both venvs
  (ordinal-encoded categories, numbers passed through, ``HistGradientBoostingClassifier(max_iter=50,
  early_stopping=False, random_state=0)``), trained once per venv and data size in a separate, untimed process
  (``checks_runner.py train``) and saved with pickle (protocol 5) in the run's work folder, one file per venv
  (pickles do not carry across scikit-learn versions); both test accuracies are recorded, and must agree within
  0.01.

Each is timed twice: the suite call inside the process (``time.perf_counter``; Deepchecks' ``Dataset`` objects
are built inside it, as conveyor's ``run_suite`` builds its own; both tools and ``scipy.stats`` are imported
before it) and the whole process (wall time and peak RSS of its process tree with ``bench_versioning.run_timed``;
it includes reading the CSV, the imports and loading the model, not training it). The suite phase's own peak
RSS comes from ``VmHWM`` reset before the suite starts. Median of --repeat runs (3) for sizes up to 100,000 rows,
one run above. The tools alternate run by run, so load changes hit both alike.

Memory like for like. The two venvs' libraries differ in size before either tool does anything (scikit-learn
1.9 imports pandas 3, which imports pyarrow: about 190 MiB against about 120 MiB in Deepchecks' venv), so
conveyor is measured a third time (``--no-same-libraries`` skips it) in ``bench/.venv-conveyor-dclibs``: conveyor
installed editable from this checkout with exactly the NumPy, pandas, SciPy and scikit-learn versions pinned for
Deepchecks, training and loading its own model there. Both memory ratios are reported.

Detection (--detection, on by default). Data sets each with ONE planted defect, and clean ones, each run through
the suite holding the check meant to find it, by both tools in one process per tool (``checks_runner.py
detect``): leakage (a feature = label + small noise), drift (one numeric feature shifted by one standard
deviation in test), 10% duplicated training rows, 1% of rows duplicated with the label flipped, one category
written in three ways ("US", "us ", "U.S."), 10% of test rows copied from train, and a worse challenger model
(conveyor's champion_challenger suite; Deepchecks has no such suite: n/a). Clean: a synthetic split, random
70/30 splits of scikit-learn's bundled breast_cancer, wine, iris (classification) and diabetes (regression),
run through all three suites, and a challenger as good as its champion. A check "flags" when conveyor says
warn or fail, and when a Deepchecks condition did not pass (FAIL or WARN).

    .venv/bin/python bench/bench_checks.py [--rows 100000,1000000] [--only both] [--quick] [--repeat 3]
        [--no-detection | --detection-only] [--deepchecks-venv bench/.venv-deepchecks] [--no-same-libraries]
        [--same-libraries-venv bench/.venv-conveyor-dclibs] [--workdir bench/.work]
        [--keep] [--markdown FILE]

Deepchecks is installed into its own venv (default ``bench/.venv-deepchecks``), created with the pinned set in
``DEEPCHECKS_REQUIREMENTS`` when missing: 0.19.1 breaks with NumPy 2 (``np.NaN``), with scikit-learn >= 1.6
(``make_scorer(needs_proba=...)``), imports ``pkg_resources`` (setuptools < 81) and asks the network for its
latest version on import unless ``DEEPCHECKS_DISABLE_LATEST=true``. The raw numbers go to
``bench/results/checks-YYYYMMDD-HHMMSS.json`` (with both venvs' ``pip freeze``); the Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_pipeline as bp
import bench_remote as br
import bench_versioning as bv
import numpy as np
import pandas as pd

BENCH_DIR = bv.BENCH_DIR
RUNNER = BENCH_DIR / "checks_runner.py"
DEFAULT_DEEPCHECKS_VENV = BENCH_DIR / ".venv-deepchecks"
# conveyor again, under the NumPy, pandas, SciPy and scikit-learn versions of Deepchecks' venv: the libraries
# alone differ in size between the venvs (scikit-learn 1.9 imports pandas 3, which imports pyarrow), so this is
# the like-for-like memory comparison; conveyor is installed editable from this checkout.
DEFAULT_SAME_LIBRARIES_VENV = BENCH_DIR / ".venv-conveyor-dclibs"
SAME_LIBRARIES_TOOL = "conveyor-dclibs"
DEEPCHECKS_REQUIREMENTS = [
    "deepchecks==0.19.1",
    "numpy==1.26.4",
    "pandas==2.1.4",
    "scikit-learn==1.5.2",
    "scipy==1.11.4",
    "setuptools==80.9.0",
    "category-encoders==2.6.4",
    "plotly<6",
    "ipywidgets<8",
    "jsonpickle<4",
]
RELEVANT = ("numpy", "pandas", "scipy", "scikit-learn", "deepchecks", "conveyor", "category-encoders", "plotly")
DEFAULT_ROWS = (100_000, 1_000_000)
QUICK_ROWS = (20_000,)
DEFAULT_REPEAT = 3
REPEAT_UP_TO = 100_000  # sizes above this are measured once
DETECTION_ROWS = 10_000
LABEL = "target"
SUITES = ("data_integrity", "train_test", "model_evaluation")
SUITE_TITLES = {
    "data_integrity": "data integrity (train)",
    "train_test": "train/test validation",
    "model_evaluation": "model evaluation",
}
# Targets of the issue: conveyor at least 10x faster, at most a third of Deepchecks' peak memory.
TARGET_SPEED_UP = 10.0
TARGET_MEMORY_SHARE = 1 / 3
SCORE_TOLERANCE = 0.01  # the two venvs' models must agree this closely in test accuracy


def progress(message: str) -> None:
    bv.progress(message)


# ------------------------------------------------------------------------------------------------------ data

COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "IT", "NL", "SE"]
CATEGORIES: dict[str, list[str]] = {
    "country": COUNTRIES,  # 12
    "plan": ["basic", "plus", "pro"],  # 3
    "device": ["android", "ios", "web", "desktop", "tv"],  # 5
    "channel": [f"ch{i}" for i in range(8)],  # 8
    "region": [f"r{i:02d}" for i in range(20)],  # 20
    "segment": [f"s{i:02d}" for i in range(30)],  # 30
    "product": [f"p{i:02d}" for i in range(50)],  # 50
}
CATEGORICAL = list(CATEGORIES)


def _zipf_shares(k: int, rng: np.random.Generator, a: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1) ** a
    weights = weights[rng.permutation(k)]
    return weights / weights.sum()


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """n rows × 25 features and a binary label; the same for the same (n, seed)."""
    rng = np.random.default_rng(seed)
    cat_rng = np.random.default_rng(4321)  # category shares and effects: the same for every seed
    cols: dict[str, np.ndarray] = {}
    z = rng.standard_normal((n, 3))  # latent factors shared by correlated features
    cols["age"] = np.clip(np.round(40 + 12 * z[:, 0]), 18, 90)
    cols["income"] = np.exp(10.3 + 0.25 * z[:, 0] + 0.4 * rng.standard_normal(n))  # log-normal, tied to age
    cols["spend"] = cols["income"] * 0.3 * np.exp(0.3 * rng.standard_normal(n))  # tied to income
    cols["tenure_months"] = np.round(rng.exponential(24, n) * np.exp(0.2 * z[:, 0]))
    cols["visits"] = rng.poisson(8, n).astype(np.float64)
    cols["score_a"] = z[:, 1]
    cols["score_b"] = 0.7 * z[:, 1] + 0.71 * rng.standard_normal(n)
    cols["score_c"] = -0.5 * z[:, 1] + 0.87 * rng.standard_normal(n)
    cols["ratio"] = rng.beta(2, 5, n)
    cols["temperature"] = rng.uniform(-10, 35, n)
    cols["latency_ms"] = rng.gamma(2.0, 50.0, n)
    cols["balance"] = 5000 + 1000 * rng.standard_t(5, n)
    cols["pct_used"] = rng.uniform(0, 1, n)
    cols["weight"] = 70 + 12 * z[:, 2] + 5 * rng.standard_normal(n)
    cols["height"] = 170 + 0.5 * (cols["weight"] - 70) + 7 * rng.standard_normal(n)
    cols["clicks"] = rng.negative_binomial(5, 0.3, n).astype(np.float64)
    cols["bimodal"] = np.where(rng.random(n) < 0.4, -2.0, 2.0) + rng.standard_normal(n)
    cols["sensor"] = 100 + 20 * rng.standard_normal(n)
    frame = pd.DataFrame({name: np.round(values, 4) for name, values in cols.items()})
    frame.loc[rng.random(n) < 0.02, "pct_used"] = np.nan  # a few missing values, as real data has
    frame.loc[rng.random(n) < 0.01, "weight"] = np.nan
    codes: dict[str, np.ndarray] = {}
    for name, values in CATEGORIES.items():
        codes[name] = rng.choice(len(values), size=n, p=_zipf_shares(len(values), cat_rng))
        frame[name] = np.asarray(values, dtype=object)[codes[name]]
    plan_effect = np.array([-0.4, 0.1, 0.5])[codes["plan"]]
    country_effect = cat_rng.normal(0, 0.3, len(COUNTRIES))[codes["country"]]
    product_effect = cat_rng.normal(0, 0.2, 50)[codes["product"]]
    logit = (
        -0.6
        + 0.8 * cols["score_a"]
        + 0.5 * (np.log(cols["income"]) - 10.3) / 0.47
        - 0.3 * (cols["tenure_months"] - 24) / 24
        + 0.4 * (cols["bimodal"] > 0)
        + 0.05 * (cols["visits"] - 8)
        + plan_effect
        + country_effect
        + product_effect
    )
    frame[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return frame


def split(frame: pd.DataFrame, seed: int, test_share: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed + 1).permutation(len(frame))
    cut = round(len(frame) * (1 - test_share))
    train = frame.iloc[order[:cut]].reset_index(drop=True)
    test = frame.iloc[order[cut:]].reset_index(drop=True)
    return train, test


def write_split(folder: Path, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"train": str(folder / "train.csv"), "test": str(folder / "test.csv")}
    train.to_csv(paths["train"], index=False)
    test.to_csv(paths["test"], index=False)
    return paths


# ---------------------------------------------------------------------------------------------- detection


@dataclass
class Case:
    name: str
    defect: str  # "" for a clean case
    suites: list[str]
    train: pd.DataFrame
    test: pd.DataFrame
    task: str = "classification"
    categorical: list[str] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {"model": {"kind": "good"}})
    expected: dict[str, str | None] = field(default_factory=dict)  # tool -> the check meant to flag it

    @property
    def clean(self) -> bool:
        return not self.defect


def detection_cases(seed: int, rows: int = DETECTION_ROWS) -> list[Case]:
    from sklearn import datasets as sk

    train, test = split(make_frame(rows, seed + 100), seed)
    rng = np.random.default_rng(seed + 200)
    all_suites = list(SUITES)
    cases = [Case("clean synthetic", "", all_suites, train, test, categorical=CATEGORICAL)]
    for name, loader, task in (
        ("breast_cancer", sk.load_breast_cancer, "classification"),
        ("wine", sk.load_wine, "classification"),
        ("iris", sk.load_iris, "classification"),
        ("diabetes", sk.load_diabetes, "regression"),
    ):
        frame = loader(as_frame=True).frame.rename(columns={"target": LABEL})
        frame.columns = [str(c) for c in frame.columns]
        real_train, real_test = split(frame, seed)
        cases.append(Case(f"clean {name} (random split)", "", all_suites, real_train, real_test, task=task))
    cases.append(
        Case(
            "clean: challenger as good as the champion",
            "",
            ["champion_challenger"],
            train,
            test,
            categorical=CATEGORICAL,
            models={"model": {"kind": "alike"}, "champion": {"kind": "good"}},
            expected={"deepchecks": None},
        )
    )

    def leaky(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out.insert(0, "leak", np.round(out[LABEL] + rng.normal(0, 0.1, len(out)), 4))
        return out

    cases.append(
        Case(
            "leakage: a feature = label + noise",
            "leakage",
            ["data_integrity"],
            leaky(train),
            leaky(test),
            categorical=CATEGORICAL,
            expected={"conveyor": "feature_label_leakage", "deepchecks": "Feature Label Correlation"},
        )
    )
    drifted = test.copy()
    drifted["sensor"] = np.round(drifted["sensor"] + train["sensor"].std(), 4)
    cases.append(
        Case(
            "drift: one feature shifted by 1 std in test",
            "drift",
            ["train_test"],
            train,
            drifted,
            categorical=CATEGORICAL,
            expected={"conveyor": "feature_drift", "deepchecks": "Feature Drift"},
        )
    )
    copies = train.sample(frac=0.10, random_state=seed)
    duplicated = pd.concat([train, copies]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cases.append(
        Case(
            "duplicates: 10% of train rows twice",
            "duplicates",
            ["data_integrity"],
            duplicated,
            test,
            categorical=CATEGORICAL,
            expected={"conveyor": "duplicate_rows", "deepchecks": "Data Duplicates"},
        )
    )
    flipped = train.sample(frac=0.01, random_state=seed + 1).copy()
    flipped[LABEL] = 1 - flipped[LABEL]
    conflicting = pd.concat([train, flipped]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cases.append(
        Case(
            "conflicting labels: 1% of rows again, label flipped",
            "conflicting labels",
            ["data_integrity"],
            conflicting,
            test,
            categorical=CATEGORICAL,
            expected={"conveyor": "conflicting_labels", "deepchecks": "Conflicting Labels"},
        )
    )
    variants = train.copy()
    us = np.flatnonzero(variants["country"].to_numpy() == "US")
    picked = rng.permutation(us)[: max(2, len(variants) // 50)]
    half = len(picked) // 2
    variants.loc[picked[:half], "country"] = "us "
    variants.loc[picked[half:], "country"] = "U.S."
    cases.append(
        Case(
            'string variants: "US" / "us " / "U.S."',
            "string variants",
            ["data_integrity"],
            variants,
            test,
            categorical=CATEGORICAL,
            expected={"conveyor": "string_variants", "deepchecks": "String Mismatch"},
        )
    )
    overlapping = test.copy()
    replaced = rng.choice(len(test), size=len(test) // 10, replace=False)
    overlapping.iloc[replaced] = train.iloc[rng.choice(len(train), size=len(replaced), replace=False)].to_numpy()
    overlapping = overlapping.astype(test.dtypes.to_dict())
    cases.append(
        Case(
            "10% of test rows copied from train",
            "train rows in test",
            ["train_test"],
            train,
            overlapping,
            categorical=CATEGORICAL,
            expected={"conveyor": "train_test_overlap", "deepchecks": "Train Test Samples Mix"},
        )
    )
    cases.append(
        Case(
            "worse challenger (5 shallow trees, 5% of rows)",
            "worse challenger",
            ["champion_challenger"],
            train,
            test,
            categorical=CATEGORICAL,
            models={"model": {"kind": "weak", "share": 0.05}, "champion": {"kind": "good"}},
            expected={"conveyor": "champion_challenger", "deepchecks": None},
        )
    )
    return cases


def write_manifest(cases: list[Case], folder: Path) -> Path:
    entries = []
    for index, case in enumerate(cases):
        paths = write_split(folder / f"case{index:02d}", case.train, case.test)
        entries.append(
            {
                "name": case.name,
                "suites": case.suites,
                "label": LABEL,
                "task": case.task,
                "categorical": case.categorical,
                "models": case.models,
                **paths,
            }
        )
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"cases": entries}, indent=1))
    return manifest


# ----------------------------------------------------------------------------------------------------- tools


def conveyor_tool(run_dir: Path) -> bv.Tool:
    tool = bv.Tool("conveyor", [sys.executable], dict(os.environ))
    tool.version = bp_version("conveyor")
    tool.python_version = platform.python_version()
    bp.use_bytecode_cache(tool, run_dir)
    return tool


def bp_version(name: str, python: str | None = None) -> str:
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    try:
        return bv.run_checked([python or sys.executable, "-c", code]).strip()
    except bv.BenchError:
        return "not installed"


def deepchecks_tool(venv: Path, run_dir: Path) -> bv.Tool:
    python = venv / "bin" / "python"
    env = dict(os.environ, DEEPCHECKS_DISABLE_LATEST="true")
    probe = [
        str(python),
        "-c",
        "import warnings; warnings.simplefilter('ignore'); import deepchecks; "
        "from deepchecks.tabular import Dataset; "
        "from deepchecks.tabular.suites import data_integrity, train_test_validation, model_evaluation; "
        "print(deepchecks.__version__)",
    ]
    if not python.exists():
        interpreter = shutil.which("python3.11") or sys.executable
        progress(f"[setup] creating the Deepchecks venv {venv} with {' '.join(DEEPCHECKS_REQUIREMENTS)} ...")
        bv.run_checked([interpreter, "-m", "venv", str(venv)])
        bv.run_checked([str(python), "-m", "pip", "install", "--quiet", *DEEPCHECKS_REQUIREMENTS], env=env)
    tool = bv.Tool("deepchecks", [str(python)], env)
    tool.version = bv.run_checked(probe, env=env).strip().splitlines()[-1]
    if tool.version != "0.19.1":
        raise bv.BenchError(f"{venv} has Deepchecks {tool.version}; this benchmark compares against 0.19.1")
    tool.python_version = bv.run_checked([str(python), "-c", "import platform; print(platform.python_version())"])
    tool.python_version = tool.python_version.strip()
    bp.use_bytecode_cache(tool, run_dir)
    return tool


def same_libraries_tool(venv: Path, run_dir: Path) -> bv.Tool:
    """conveyor in a venv pinned to the library versions Deepchecks' venv uses (DEEPCHECKS_REQUIREMENTS)."""
    python = venv / "bin" / "python"
    pins = [r for r in DEEPCHECKS_REQUIREMENTS if r.split("==")[0] in ("numpy", "pandas", "scikit-learn", "scipy")]
    if not python.exists():
        interpreter = shutil.which("python3.11") or sys.executable
        progress(f"[setup] creating {venv}: conveyor (editable) with {' '.join(pins)} ...")
        bv.run_checked([interpreter, "-m", "venv", str(venv)])
    # every time: cheap when satisfied, and it keeps the editable install pointing at this checkout
    bv.run_checked([str(python), "-m", "pip", "install", "--quiet", "-e", f"{BENCH_DIR.parent}[checks]", *pins])
    tool = bv.Tool(SAME_LIBRARIES_TOOL, [str(python)], dict(os.environ))
    tool.version = bp_version("conveyor", str(python))
    tool.python_version = bv.run_checked([str(python), "-c", "import platform; print(platform.python_version())"])
    tool.python_version = tool.python_version.strip()
    bp.use_bytecode_cache(tool, run_dir)
    return tool


def runner_tool(tool: bv.Tool) -> str:
    """The runner's --tool: which library the measured process calls."""
    return "conveyor" if tool.name.startswith("conveyor") else tool.name


def pip_freeze(python: str) -> list[str]:
    try:
        out = bv.run_checked([python, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"])
    except bv.BenchError as error:
        return [f"pip freeze failed: {error}"]
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def relevant(freeze: list[str]) -> dict[str, str]:
    found = {}
    for line in freeze:
        name, sep, version = line.partition("==")
        if sep and name.lower().replace("_", "-") in RELEVANT:
            found[name.lower()] = version
        elif " @ " in line and line.split(" @ ")[0].lower() in RELEVANT:
            found[line.split(" @ ")[0].lower()] = "editable/local"
    return found


# ------------------------------------------------------------------------------------------------ measuring


@dataclass
class PerfRun:
    process_seconds: float
    process_peak_kib: int  # max(ru_maxrss of the process tree, VmHWM before the reset)
    suite_seconds: float
    suite_hwm_kib: int  # VmHWM during the suite phase (reset just before it)
    rss_before_suite_kib: int
    read_seconds: float
    import_seconds: float  # the tool and scipy.stats, before the suite's timer
    load_seconds: float | None  # unpickling the model (model evaluation only)
    train_seconds: float | None  # in the separate training process, untimed (the same for every run)
    test_score: float | None  # of that trained model, from the training process


@dataclass
class PerfMeasurement:
    tool: str
    rows: int
    suite: str
    command: list[str]
    runs: list[PerfRun] = field(default_factory=list)
    result: dict[str, Any] | None = None  # the suite's outcome, from the last run
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    model: dict[str, Any] | None = None  # the training process's record (model evaluation only)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(run, attribute) for run in self.runs)

    @property
    def peak_mib(self) -> float:
        return max(run.process_peak_kib for run in self.runs) / 1024

    @property
    def suite_peak_mib(self) -> float:
        return max(run.suite_hwm_kib for run in self.runs) / 1024

    @property
    def suite_added_mib(self) -> float:
        return max(run.suite_hwm_kib - run.rss_before_suite_kib for run in self.runs) / 1024

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "tool": self.tool,
            "rows": self.rows,
            "suite": self.suite,
            "command": self.command,
            "runs": [vars(run) for run in self.runs],
            "versions": self.versions,
            "error": self.error,
            "model": self.model,
            "result": self.result,
        }
        if self.runs:
            record.update(
                median_suite_seconds=self.median("suite_seconds"),
                median_process_seconds=self.median("process_seconds"),
                peak_rss_mib=self.peak_mib,
                suite_phase_peak_rss_mib=self.suite_peak_mib,
                suite_phase_added_mib=self.suite_added_mib,
            )
        return record


@dataclass
class ChecksBench:
    tools: list[bv.Tool]
    run_dir: Path
    repeat: int
    no_display: bool
    measurements: list[PerfMeasurement] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    detection: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool -> runner output
    detection_runs: dict[str, dict[str, float]] = field(default_factory=dict)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (tool, data) -> training record

    def perf_argv(
        self, tool: bv.Tool, suite: str, paths: dict[str, str], out: Path, model: str | None = None
    ) -> list[str]:
        argv = [
            *tool.exe,
            str(RUNNER),
            "perf",
            "--tool",
            runner_tool(tool),
            "--suite",
            suite,
            "--train",
            paths["train"],
        ]
        if suite != "data_integrity":
            argv += ["--test", paths["test"]]
        argv += ["--label", LABEL, "--categorical", ",".join(CATEGORICAL), "--out", str(out)]
        if suite == "model_evaluation":
            if model is None:
                raise bv.BenchError(f"[{tool.name}] model evaluation without a trained model")
            argv += ["--model", model]
        if self.no_display and tool.name == "deepchecks":
            argv.append("--no-display")
        return argv

    def train_model(self, tool: bv.Tool, data: str, paths: dict[str, str]) -> dict[str, Any]:
        """Train the model evaluation's model once in tool's venv, in a separate untimed process, and pickle it to
        the run's work folder (one file per venv: pickles do not carry across scikit-learn versions)."""
        folder = self.run_dir / "models"
        folder.mkdir(exist_ok=True)
        model, out = folder / f"{tool.name}-{data}.pkl", folder / f"{tool.name}-{data}.json"
        argv = [*tool.exe, str(RUNNER), "train", "--tool", runner_tool(tool), "--train", paths["train"]]
        argv += ["--test", paths["test"], "--label", LABEL, "--categorical", ",".join(CATEGORICAL)]
        argv += ["--model-out", str(model), "--out", str(out)]
        began = time.perf_counter()
        bv.run_checked(argv, cwd=self.run_dir, env=tool.env)
        record = json.loads(out.read_text())
        record["process_seconds"] = time.perf_counter() - began
        self.models[(tool.name, data)] = record
        return record

    def train_models(self, rows: int, paths: dict[str, str]) -> None:
        """Train each tool's model for this data size; a tool whose training fails gets a failed measurement."""
        for tool in self.tools:
            progress(f"[{tool.name}] training the model on {rows:,} rows (separate process, untimed) ...")
            try:
                record = self.train_model(tool, str(rows), paths)
            except (bv.BenchError, OSError, ValueError) as error:
                message = f"[{tool.name}] training the model on {rows:,} rows failed: {error}"
                self.failures.append(message)
                progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{message}\n")
                failed = PerfMeasurement(tool.name, rows, "model_evaluation", [], error="training failed")
                self.measurements.append(failed)
                continue
            progress(
                f"[{tool.name}] trained in {record['train_seconds']:.1f} s, test accuracy {record['test_score']:.4f}, "
                f"pickle {record['model_bytes'] / 2**10:.0f} KiB"
            )

    def measure(self, tool: bv.Tool, rows: int, suite: str, paths: dict[str, str], repeats: int) -> None:
        out = self.run_dir / f"perf-{tool.name}-{rows}-{suite}.json"
        measurement = next(
            (m for m in self.measurements if (m.tool, m.rows, m.suite) == (tool.name, rows, suite)), None
        )
        if measurement is not None and (measurement.error or len(measurement.runs) >= repeats):
            return
        trained = self.models.get((tool.name, str(rows))) if suite == "model_evaluation" else None
        argv = self.perf_argv(tool, suite, paths, out, trained["model_path"] if trained else None)
        if measurement is None:
            measurement = PerfMeasurement(tool.name, rows, suite, argv, model=trained)
            self.measurements.append(measurement)
        out.unlink(missing_ok=True)
        run, code, stdout, stderr = bv.run_timed(argv, self.run_dir, tool.env)
        if code != 0 or not out.is_file():
            measurement.error = f"exited with {code}"
            raise bv.BenchError(
                f"[{tool.name}] {suite} on {rows:,} rows: `{shlex.join(argv)}` exited with {code}\n"
                f"--- stdout ---\n{stdout[-3000:]}--- stderr ---\n{stderr[-5000:]}"
            )
        record = json.loads(out.read_text())
        measurement.result = record["result"]
        measurement.versions = record["versions"]
        measurement.runs.append(
            PerfRun(
                process_seconds=run.seconds,
                process_peak_kib=max(run.max_rss_kib, record["hwm_before_reset_kib"]),
                suite_seconds=record["suite_seconds"],
                suite_hwm_kib=record["suite_hwm_kib"],
                rss_before_suite_kib=record["rss_before_suite_kib"],
                read_seconds=record["read_seconds"],
                import_seconds=record["import_seconds"],
                load_seconds=record.get("load_seconds"),
                train_seconds=trained["train_seconds"] if trained else None,
                test_score=trained["test_score"] if trained else None,
            )
        )
        if not record["peak_reset"]:
            progress(f"[{tool.name}] could not reset VmHWM: the suite-phase peak is the process's peak")
        last = measurement.runs[-1]
        extra = f", model loaded in {last.load_seconds:.2f} s" if last.load_seconds is not None else ""
        progress(
            f"[{tool.name}] {suite}, {rows:,} rows, run {len(measurement.runs)}/{repeats}: suite "
            f"{last.suite_seconds:.2f} s, process {last.process_seconds:.2f} s, peak RSS "
            f"{last.process_peak_kib / 1024:.0f} MiB (suite phase {last.suite_hwm_kib / 1024:.0f} MiB){extra}"
        )

    def warm_up(self, seed: int) -> None:
        """Run every suite once per tool on 2,000 rows, untimed: fills conveyor's bytecode cache (kept in the work
        folder) and the page cache with both venvs' files, so the first timed run is not billed for them."""
        paths = write_split(self.run_dir / "warm-up", *split(make_frame(2_000, seed + 7), seed))
        for tool in self.tools:
            progress(f"[setup] warm-up run of {tool.name} ...")
            model = self.train_model(tool, "warm-up", paths)["model_path"]
            for suite in SUITES:
                out = self.run_dir / "warm-up" / f"{tool.name}-{suite}.json"
                bv.run_checked(self.perf_argv(tool, suite, paths, out, model), cwd=self.run_dir, env=tool.env)

    def run_perf(self, sizes: list[int], seed: int) -> None:
        self.warm_up(seed)
        for rows in sizes:
            progress(f"[data] generating {rows:,} rows × 25 features (seed {seed}) and writing the CSV files ...")
            began = time.perf_counter()
            train, test = split(make_frame(rows, seed), seed)
            paths = write_split(self.run_dir / f"data-{rows}", train, test)
            progress(
                f"[data] {len(train):,} train / {len(test):,} test rows, label share {train[LABEL].mean():.3f}, "
                f"{(Path(paths['train']).stat().st_size + Path(paths['test']).stat().st_size) / 2**20:.0f} MiB "
                f"of CSV in {time.perf_counter() - began:.1f} s"
            )
            del train, test
            self.train_models(rows, paths)
            repeats = self.repeat if rows <= REPEAT_UP_TO else 1
            for suite in SUITES:
                for _ in range(repeats):
                    for tool in self.tools:
                        try:
                            self.measure(tool, rows, suite, paths, repeats)
                        except bv.BenchError as error:
                            self.failures.append(str(error))
                            progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{error}\n")
                self.check_scores(rows, suite)
            shutil.rmtree(self.run_dir / f"data-{rows}", ignore_errors=True)

    def check_scores(self, rows: int, suite: str) -> None:
        if suite != "model_evaluation":
            return
        scores = {
            m.tool: score
            for m in self.measurements
            if (m.rows, m.suite) == (rows, suite) and m.runs and (score := m.runs[-1].test_score) is not None
        }
        if len(scores) > 1 and max(scores.values()) - min(scores.values()) > SCORE_TOLERANCE:
            message = f"the venvs' models disagree on {rows:,} rows: test accuracy {scores}"
            self.failures.append(message)
            progress(f"!!!!! {message}")

    def run_detection(self, seed: int) -> None:
        folder = self.run_dir / "detection"
        progress(f"[detection] writing the cases ({DETECTION_ROWS:,} synthetic rows, scikit-learn's bundled sets) ...")
        cases = detection_cases(seed)
        manifest = write_manifest(cases, folder)
        self.cases = cases
        for tool in self.tools:
            if tool.name == SAME_LIBRARIES_TOOL:
                continue  # the same code as conveyor's: the detection table needs it once
            out = folder / f"detect-{tool.name}.json"
            argv = [
                *tool.exe,
                str(RUNNER),
                "detect",
                "--tool",
                tool.name,
                "--manifest",
                str(manifest),
                "--out",
                str(out),
            ]
            if self.no_display and tool.name == "deepchecks":
                argv.append("--no-display")
            progress(f"[detection] {tool.name}: {len(cases)} cases ...")
            run, code, stdout, stderr = bv.run_timed(argv, folder, tool.env)
            if code != 0 or not out.is_file():
                message = (
                    f"[{tool.name}] detection exited with {code}\n--- stdout ---\n{stdout[-3000:]}"
                    f"--- stderr ---\n{stderr[-5000:]}"
                )
                self.failures.append(message)
                progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{message}\n")
                continue
            self.detection[tool.name] = json.loads(out.read_text())
            self.detection_runs[tool.name] = {"seconds": run.seconds, "peak_rss_mib": run.max_rss_kib / 1024}
            progress(f"[detection] {tool.name}: {run.seconds:.1f} s, peak RSS {run.max_rss_kib / 1024:.0f} MiB")
            for entry in self.detection[tool.name]["cases"]:
                broken = [f"{s}: {r['crashed']}" for s, r in entry["suites"].items() if "crashed" in r]
                if "error" in entry or broken:
                    message = f"[{tool.name}] detection case {entry['case']!r}: {entry.get('error') or broken}"
                    self.failures.append(message)
                    progress(f"!!!!! {message}")

    def result(self, tool: str, rows: int, suite: str) -> PerfMeasurement | None:
        return next((m for m in self.measurements if (m.tool, m.rows, m.suite) == (tool, rows, suite)), None)


# ---------------------------------------------------------------------------------------------------- report


def ratio(numerator: float, denominator: float, digits: int = 1) -> str:
    if denominator <= 0:
        return "∞"
    return f"{numerator / denominator:.{digits}f}×"


def cell(m: PerfMeasurement | None, text: str) -> str:
    if m is None:
        return "not run"
    if m.error or not m.runs:
        return "FAILED"
    return text


def outcome(m: PerfMeasurement | None) -> str:
    if m is None or m.result is None:
        return "—"
    result = m.result
    if m.tool == "conveyor":
        parts = ["passed" if result["passed"] else "**did not pass**"]
        if result["failed"]:
            parts.append("fail: " + ", ".join(result["failed"]))
        if result["errors"]:
            parts.append("error: " + "; ".join(result["errors"]))
        if result["warned"]:
            parts.append("warn: " + ", ".join(result["warned"]))
        return "; ".join(parts)
    parts = ["passed" if result["passed"] else "**did not pass**"]
    if result["failed"]:
        parts.append("fail: " + ", ".join(compact(result["failed"])))
    if result["warned"]:
        parts.append("warn: " + ", ".join(compact(result["warned"])))
    if result["errors"]:
        parts.append("condition error: " + ", ".join(compact(result["errors"])))
    if result["not_ran"]:
        parts.append(f"{len(compact(result['not_ran']))} not ran")
    return "; ".join(parts)


def perf_tables(bench: ChecksBench, sizes: list[int]) -> list[str]:
    lines = [
        "### Speed and memory",
        "",
        "| data | suite | conveyor suite (s) | Deepchecks suite (s) | speed-up | conveyor process (s) "
        "| Deepchecks process (s) | conveyor peak RSS (MiB) | Deepchecks peak RSS (MiB) | memory (conveyor ÷ DC) "
        "| suite-phase added RSS conveyor / DC (MiB) | conveyor with DC's libraries: suite (s) / peak RSS (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in sizes:
        for suite in SUITES:
            ours, theirs = bench.result("conveyor", rows, suite), bench.result("deepchecks", rows, suite)
            ok = all(m is not None and m.runs and not m.error for m in (ours, theirs))
            row = [
                f"{rows:,} rows",
                SUITE_TITLES[suite],
                cell(ours, f"{ours.median('suite_seconds'):.2f}" if ours and ours.runs else ""),
                cell(theirs, f"{theirs.median('suite_seconds'):.2f}" if theirs and theirs.runs else ""),
                ratio(theirs.median("suite_seconds"), ours.median("suite_seconds")) if ok else "—",  # type: ignore[union-attr]
                cell(ours, f"{ours.median('process_seconds'):.2f}" if ours and ours.runs else ""),
                cell(theirs, f"{theirs.median('process_seconds'):.2f}" if theirs and theirs.runs else ""),
                cell(ours, f"{ours.peak_mib:.0f}" if ours and ours.runs else ""),
                cell(theirs, f"{theirs.peak_mib:.0f}" if theirs and theirs.runs else ""),
                f"{ours.peak_mib / theirs.peak_mib:.2f}" if ok else "—",  # type: ignore[union-attr]
                (f"{ours.suite_added_mib:.0f} / {theirs.suite_added_mib:.0f}" if ok else "—"),  # type: ignore[union-attr]
                same_libraries_cell(bench.result(SAME_LIBRARIES_TOOL, rows, suite)),
            ]
            lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "### Suite outcomes (last run)",
        "",
        "| data | suite | conveyor | Deepchecks |",
        "|---|---|---|---|",
    ]
    for rows in sizes:
        for suite in SUITES:
            ours, theirs = bench.result("conveyor", rows, suite), bench.result("deepchecks", rows, suite)
            lines.append(f"| {rows:,} rows | {SUITE_TITLES[suite]} | {outcome(ours)} | {outcome(theirs)} |")
    return lines


def same_libraries_cell(m: PerfMeasurement | None) -> str:
    if m is None:
        return "not run"
    return cell(m, f"{m.median('suite_seconds'):.2f} / {m.peak_mib:.0f}" if m.runs else "")


def targets_table(bench: ChecksBench, sizes: list[int]) -> list[str]:
    lines = [
        "### Against the targets (≥ 10× faster, ≤ ⅓ of Deepchecks' peak RSS)",
        "",
        "Memory is compared twice: conveyor in its own venv (current NumPy, pandas, scikit-learn: heavier to import) "
        "and conveyor under the very library versions of Deepchecks' venv, where only the tools differ.",
        "",
        "| data | suite | speed-up | met | peak RSS conveyor ÷ Deepchecks, own libraries | met "
        "| same libraries | met |",
        "|---|---|---:|:-:|---:|:-:|---:|:-:|",
    ]
    for rows in sizes:
        for suite in SUITES:
            ours, theirs = bench.result("conveyor", rows, suite), bench.result("deepchecks", rows, suite)
            if not all(m is not None and m.runs and not m.error for m in (ours, theirs)):
                continue
            speed = theirs.median("suite_seconds") / max(ours.median("suite_seconds"), 1e-9)  # type: ignore[union-attr]
            memory = ours.peak_mib / theirs.peak_mib  # type: ignore[union-attr]
            same = bench.result(SAME_LIBRARIES_TOOL, rows, suite)
            if same is not None and same.runs and not same.error:
                share = same.peak_mib / theirs.peak_mib  # type: ignore[union-attr]
                like = f"{share:.2f} | {'yes' if share <= TARGET_MEMORY_SHARE else '**no**'}"
            else:
                like = "not run | —"
            lines.append(
                f"| {rows:,} rows | {SUITE_TITLES[suite]} | {speed:.1f}× "
                f"| {'yes' if speed >= TARGET_SPEED_UP else '**no**'} "
                f"| {memory:.2f} | {'yes' if memory <= TARGET_MEMORY_SHARE else '**no**'} | {like} |"
            )
    return lines


def flagged(tool: str, summary: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(failed, warned, errors or not ran) check names of one suite run."""
    if "crashed" in summary:
        return [], [], [f"CRASHED: {summary['crashed']}"]
    if "n/a" in summary:
        return [], [], []
    if tool == "conveyor":
        return summary["failed"], summary["warned"], summary["errors"]
    return summary["failed"], summary["warned"], [*summary["errors"], *(f"{c} (not ran)" for c in summary["not_ran"])]


def compact(names: list[str]) -> list[str]:
    """Deepchecks' check headers without their " - Train Dataset" suffixes, each once, in order."""
    out: list[str] = []
    for name in names:
        base = name.replace(" - Train Dataset", "").replace(" - Test Dataset", "")
        if base not in out:
            out.append(base)
    return out


def expected_status(statuses: dict[str, str], expected: str) -> str:
    """The worst status of the checks named ``expected`` (Deepchecks adds " - Train Dataset" and the like)."""
    order = {"absent": 0, "no condition": 1, "pass": 2, "skipped": 3, "not ran": 4, "error": 5, "warn": 6, "fail": 7}
    found = [s for name, s in statuses.items() if name == expected or name.startswith(expected + " - ")]
    return max(found, key=lambda s: order.get(s, 0), default="absent")


def detection_rows(bench: ChecksBench) -> list[dict[str, Any]]:
    rows = []
    for case in getattr(bench, "cases", []):
        row: dict[str, Any] = {"case": case.name, "defect": case.defect or "none", "suites": case.suites}
        for tool in ("conveyor", "deepchecks"):
            out = bench.detection.get(tool)
            entry = next((e for e in out["cases"] if e["case"] == case.name), None) if out else None
            if entry is None:
                row[tool] = None
                continue
            fails, warns, errors = [], [], []
            statuses: dict[str, str] = {}
            na = False
            for summary in entry.get("suites", {}).values():
                if "n/a" in summary:
                    na = True
                    continue
                f, w, e = flagged(tool, summary)
                fails += [f"{c}" for c in f]
                warns += [f"{c}" for c in w]
                errors += [f"{c}" for c in e]
                for check in summary.get("checks", []):
                    statuses[check["check"]] = check["status"]
            expected = case.expected.get(tool)
            if case.clean:
                detected = None
            elif na or expected is None:
                detected = "n/a"
            else:
                status = expected_status(statuses, expected)
                detected = f"yes ({status})" if status in ("warn", "fail") else f"**no** ({status})"
            row[tool] = {
                "expected": expected,
                "detected": detected,
                "fail": fails,
                "warn": warns,
                "errors": errors,
                "n/a": na,
                "error": entry.get("error"),
                "scores": entry.get("scores"),
                "seconds": {s: r.get("seconds") for s, r in entry.get("suites", {}).items()},
            }
        rows.append(row)
    return rows


def detection_table(bench: ChecksBench) -> list[str]:
    rows = detection_rows(bench)
    lines = [
        "### Detection: one planted defect per data set, and clean data",
        "",
        "A check flags when conveyor says warn or fail, and when a Deepchecks condition did not pass (FAIL or WARN). "
        '"Right check": the check meant for that defect flagged it. Clean cases should flag nothing.',
        "",
        "| case | suites | conveyor: right check | conveyor fail / error | conveyor warn "
        "| Deepchecks: right check | Deepchecks fail | Deepchecks warn / not ran |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def names(items: list[str]) -> str:
        return ", ".join(items) if items else "none"

    for row in rows:
        cells = [row["case"], ", ".join(row["suites"])]
        for tool in ("conveyor", "deepchecks"):
            info = row[tool]
            if info is None:
                cells += ["not run", "—", "—"]
                continue
            if info["n/a"] and not (info["fail"] or info["warn"] or info["errors"]):
                cells += ["n/a (no such suite)", "—", "—"]
                continue
            detected = info["detected"] or "— (clean)"
            if info["error"]:
                cells += [f"CASE FAILED: {info['error']}", "—", "—"]
                continue
            if tool == "conveyor":
                cells += [detected, names(info["fail"] + info["errors"]), names(info["warn"])]
            else:
                not_ran = [e for e in info["errors"] if e.endswith("(not ran)")]
                other = [e for e in info["errors"] if not e.endswith("(not ran)")]
                warn = names(compact(info["warn"] + other))
                if not_ran:
                    warn += f" ({len(compact(not_ran))} not ran)"
                cells += [detected, names(compact(info["fail"])), warn]
        lines.append("| " + " | ".join(cells) + " |")
    clean = [r for r in rows if r["defect"] == "none"]
    defects = [r for r in rows if r["defect"] != "none"]
    summary = []
    for tool, title in (("conveyor", "conveyor"), ("deepchecks", "Deepchecks")):
        found = [r for r in defects if r[tool] and str(r[tool]["detected"]).startswith("yes")]
        applicable = [r for r in defects if r[tool] and r[tool]["detected"] != "n/a"]
        ran_clean = [r for r in clean if r[tool] and not r[tool]["n/a"]]
        hard = [e for r in ran_clean for e in r[tool]["errors"] if not e.endswith("(not ran)")]
        failing_clean = [
            r["case"]
            for r in ran_clean
            if r[tool]["fail"] or any(not e.endswith("(not ran)") for e in r[tool]["errors"])
        ]
        warning_clean = [r["case"] for r in ran_clean if r[tool]["warn"]]
        summary.append(
            f"- {title}: {len(found)} of {len(applicable)} planted defects found by the right check; clean cases "
            f"with a failure: {len(failing_clean)} of {len(ran_clean)}"
            + (f" ({'; '.join(failing_clean)})" if failing_clean else "")
            + f"; with a warning: {len(warning_clean)} of {len(ran_clean)}"
            + (f"; checks that errored: {', '.join(hard)}" if hard else "")
            + "."
        )
    return [*lines, "", *summary]


def markdown(bench: ChecksBench, meta: dict[str, Any], sizes: list[int], detection: bool) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    conveyor_env = versions.get("conveyor_venv", {})
    dc_env = versions.get("deepchecks_venv", {})
    lines = [
        "## Validation benchmark: conveyor.checks vs Deepchecks",
        "",
        f"- Date: {meta['date_utc']}; the whole run took {meta.get('elapsed_seconds', 0) / 60:.1f} min",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']:.1f} GiB RAM, "
        f"{machine['kernel']}; load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end', '?')}",
        f"- conveyor {versions.get('conveyor', 'not run')} (Python {versions['python']}: "
        + ", ".join(f"{k} {v}" for k, v in conveyor_env.items() if k != "conveyor")
        + ")",
        f"- Deepchecks {versions.get('deepchecks', 'not run')}"
        + (
            f" (Python {versions.get('deepchecks_python')}: "
            + ", ".join(f"{k} {v}" for k, v in dc_env.items() if k != "deepchecks")
            + f"); `DEEPCHECKS_DISABLE_LATEST=true`; `suite.run(..., with_display={not meta['no_display']})`"
            if dc_env
            else ""
        ),
        *(
            [
                "- conveyor with Deepchecks' libraries (Python "
                + str(versions.get(f"{SAME_LIBRARIES_TOOL}_python", "?"))
                + ": "
                + ", ".join(f"{k} {v}" for k, v in versions["same_libraries_venv"].items() if k != "conveyor")
                + ")"
            ]
            if versions.get("same_libraries_venv")
            else []
        ),
        f"- Command: `{meta['command']}`",
        f"- conveyor source: commit {meta['conveyor_source_start']['commit'][:10]}"
        + (" with uncommitted changes in src/" if meta["conveyor_source_start"]["src_uncommitted_changes"] else "")
        + (
            "; **src/ changed during the run**"
            if meta.get("conveyor_source_end", {}).get("src_sha256") != meta["conveyor_source_start"]["src_sha256"]
            else ""
        ),
        f"- Data: seeded synthetic (seed {meta['seed']}), 25 features (18 numeric, 7 categorical with 3–50 "
        "categories), binary label; 70/30 split; CSV read by each process. Model: the same scikit-learn Pipeline "
        "in each venv (OrdinalEncoder + HistGradientBoostingClassifier(max_iter=50, early_stopping=False, "
        "random_state=0)).",
        "- Model evaluation: the model is trained once per venv in a separate process and loaded from a pickle by "
        "the measured process (protocol 5, one file per venv, since pickles do not carry across scikit-learn "
        "versions), as a user's check step loads a trained model; that process reads the CSV files, loads the "
        "model, imports the tool and runs the suite, so its peak RSS covers data, model and suite, not training.",
        "- Suite time: the suite call alone (Deepchecks: with building its Dataset objects), after importing the "
        "tool and scipy.stats in both processes (Deepchecks imports it on import; conveyor lazily, on its first "
        "drift test: about 1.2 s that the process time still counts); median of "
        f"{meta['repeat']} runs up to {REPEAT_UP_TO:,} rows, one run above. Process: wall time and peak RSS of the "
        "whole process (reading the CSV, imports, loading the model included; `ru_maxrss` via `wait4`). "
        "Suite-phase added RSS: peak during the suite minus RSS just before it (`VmHWM` reset via "
        "`/proc/self/clear_refs`).",
    ]
    if meta.get("sizes"):
        scores = {
            m.tool: m.runs[-1].test_score
            for m in bench.measurements
            if m.suite == "model_evaluation" and m.runs and m.rows == max(sizes)
        }
        if scores:
            trained = {tool: bench.models.get((tool, str(max(sizes)))) for tool in scores}
            lines.append(
                f"- Test accuracy of the model on {max(sizes):,} rows: "
                + ", ".join(f"{k} venv {v:.4f}" for k, v in scores.items())
                + "; pickle "
                + ", ".join(f"{k} {t['model_bytes'] / 2**10:.0f} KiB" for k, t in trained.items() if t)
                + "; loading it (median) "
                + ", ".join(
                    f"{m.tool} {m.median('load_seconds'):.2f} s"
                    for m in bench.measurements
                    if m.suite == "model_evaluation" and m.runs and m.rows == max(sizes)
                )
            )
        lines += ["", *perf_tables(bench, sizes)]
        if {"conveyor", "deepchecks"} <= {tool.name for tool in bench.tools}:
            lines += ["", *targets_table(bench, sizes)]
    if detection:
        lines += ["", *detection_table(bench)]
        if bench.detection_runs:
            lines += [
                "- Detection runs (one process per tool, all cases): "
                + ", ".join(
                    f"{tool} {r['seconds']:.1f} s, {r['peak_rss_mib']:.0f} MiB"
                    for tool, r in bench.detection_runs.items()
                )
            ]
    if bench.failures:
        lines += ["", f"**{len(bench.failures)} failure(s)**: rows marked FAILED or not run have no ratio."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ main


def parse_rows(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of row counts: {text!r}") from None
    if not sizes or sizes[0] < 100:
        raise argparse.ArgumentTypeError("row counts must be at least 100")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time conveyor.checks and Deepchecks 0.19.1 side by side, and compare what each detects."
    )
    parser.add_argument(
        "--rows", type=parse_rows, default=None, help="data sizes in rows, comma-separated (100000,1000000)"
    )
    parser.add_argument("--only", choices=["conveyor", "deepchecks", "both"], default="both", help="tools (both)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS[0]:,} rows, one run each")
    parser.add_argument(
        "--repeat", type=bv.positive_int, default=None, help="runs per measurement up to 100,000 rows (3)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-detection", action="store_true", help="skip the detection table")
    group.add_argument("--detection-only", action="store_true", help="only the detection table")
    parser.add_argument(
        "--deepchecks-no-display",
        action="store_true",
        help="run Deepchecks' suites with with_display=False (default: True, as suite.run() does)",
    )
    parser.add_argument(
        "--deepchecks-venv",
        type=Path,
        default=DEFAULT_DEEPCHECKS_VENV,
        help="venv with Deepchecks 0.19.1; created with the pinned set when missing (bench/.venv-deepchecks)",
    )
    parser.add_argument(
        "--same-libraries-venv",
        type=Path,
        default=DEFAULT_SAME_LIBRARIES_VENV,
        help="venv for conveyor under Deepchecks' library versions, created when missing (bench/.venv-conveyor-dclibs)",
    )
    parser.add_argument(
        "--no-same-libraries",
        action="store_true",
        help="skip measuring conveyor a second time under Deepchecks' library versions",
    )
    parser.add_argument("--workdir", type=Path, default=bv.DEFAULT_WORKDIR, help="where the data go (bench/.work)")
    parser.add_argument("--keep", action="store_true", help="keep the data and the runners' outputs")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data (0)")
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = list(QUICK_ROWS if args.quick else DEFAULT_ROWS)
    if args.repeat is None:
        args.repeat = 1 if args.quick else DEFAULT_REPEAT
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    sizes = [] if args.detection_only else args.rows
    detection = not args.no_detection
    with bv.RunDir(args.workdir.resolve() / f"checks-{stamp}", args.keep) as run_dir:
        versions: dict[str, Any] = {"python": platform.python_version()}
        freezes: dict[str, list[str]] = {}
        try:
            tools = []
            if args.only in ("conveyor", "both"):
                tools.append(conveyor_tool(run_dir))
                freezes["conveyor_venv"] = pip_freeze(sys.executable)
            if args.only in ("deepchecks", "both"):
                tools.append(deepchecks_tool(args.deepchecks_venv.absolute(), run_dir))
                freezes["deepchecks_venv"] = pip_freeze(tools[-1].exe[0])
            if args.only == "both" and sizes and not args.no_same_libraries:
                tools.append(same_libraries_tool(args.same_libraries_venv.absolute(), run_dir))
                freezes["same_libraries_venv"] = pip_freeze(tools[-1].exe[0])
        except bv.BenchError as error:
            progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
            return 2
        for tool in tools:
            versions[tool.name] = tool.version
            if tool.name != "conveyor":
                versions[f"{tool.name}_python"] = tool.python_version
        for name, freeze in freezes.items():
            versions[name] = relevant(freeze)
        progress("[setup] " + ", ".join(f"{k} {v}" for k, v in versions.items() if isinstance(v, str)))
        meta: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": bv.machine_info(run_dir),
            "versions": versions,
            "pip_freeze": freezes,
            "deepchecks_requirements": DEEPCHECKS_REQUIREMENTS,
            "sizes": sizes,
            "repeat": args.repeat,
            "repeat_up_to_rows": REPEAT_UP_TO,
            "detection_rows": DETECTION_ROWS,
            "seed": args.seed,
            "no_display": args.deepchecks_no_display,
            "tools": [tool.name for tool in tools],
            "loadavg_start": bp.loadavg(),
            "conveyor_source_start": br.source_state(),
        }
        bench = ChecksBench(tools, run_dir, args.repeat, args.deepchecks_no_display)
        if sizes:
            bench.run_perf(sizes, args.seed)
        if detection:
            bench.run_detection(args.seed)
        meta["loadavg_end"] = bp.loadavg()
        meta["conveyor_source_end"] = br.source_state()
        if meta["conveyor_source_end"]["src_sha256"] != meta["conveyor_source_start"]["src_sha256"]:
            progress("[setup] WARNING: conveyor's source changed while the benchmark ran")
        meta["elapsed_seconds"] = (dt.datetime.now(dt.UTC) - started).total_seconds()

    report = markdown(bench, meta, sizes, detection)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "measurements": [m.to_json() for m in bench.measurements],
        "detection": {"rows": detection_rows(bench), "raw": bench.detection, "runs": bench.detection_runs}
        if detection
        else None,
    }
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    results_file = bv.RESULTS_DIR / f"checks-{stamp}.json"
    results_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    progress(f"[setup] raw numbers in {results_file}")
    if bench.failures:
        progress(f"!!!!! {len(bench.failures)} FAILURE(S): see above; no ratio printed for them !!!!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
