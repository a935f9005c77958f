"""The measured side of ``bench_checks.py``: runs one tool's validation suite(s) in this process.

It runs under either venv: conveyor's (``.venv``: NumPy 2, pandas 3, scikit-learn 1.9) or Deepchecks'
(``bench/.venv-deepchecks``: NumPy 1.26, pandas 2.1, scikit-learn 1.5), so it imports neither tool at the top
and uses only what both sets of versions share. Three modes:

* ``train``: train the model the model evaluation suite needs (untimed, in its own process, once per venv and
  data size) and save it with pickle (protocol 5). Pickles do not carry across scikit-learn versions, so each
  venv trains and loads its own file.
* ``perf``: read the CSV files, load that pickle when the suite needs a model (as a user's check step loads a
  trained model rather than training one), then time the suite call
  (``time.perf_counter``; for Deepchecks the ``Dataset`` objects are built inside the timed part, as
  ``conveyor.checks.run_suite`` builds its own). The peak RSS of the suite phase alone is read from
  ``/proc/self/status`` (``VmHWM``) after resetting it with ``/proc/self/clear_refs``; since that reset also
  lowers the process's ``ru_maxrss``, the peak before the reset is reported too and the benchmark takes the
  larger of both as the process's peak.
* ``detect``: run every case of a manifest (planted defects, clean data) and record what each check said.

Each writes one JSON object to ``--out``.

    python bench/checks_runner.py train --tool conveyor --train TRAIN.csv --test TEST.csv --label target
        --categorical c1,c2 --model-out MODEL.pkl --out RESULT.json
    python bench/checks_runner.py perf --tool conveyor --suite train_test --train TRAIN.csv --test TEST.csv
        --label target --categorical c1,c2 --out RESULT.json
    python bench/checks_runner.py perf --tool conveyor --suite model_evaluation --model MODEL.pkl ...
    python bench/checks_runner.py detect --tool deepchecks --manifest CASES.json --out RESULT.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import sys
import time
import traceback
import warnings
from typing import Any

SEED = 0
PICKLE_PROTOCOL = 5
SUITES = ("data_integrity", "train_test", "model_evaluation", "champion_challenger")
DEEPCHECKS_SUITES = {
    "data_integrity": "data_integrity",
    "train_test": "train_test_validation",
    "model_evaluation": "model_evaluation",
}


# ---------------------------------------------------------------------------------------------- memory


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def reset_peak() -> bool:
    """Make VmHWM start again from the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------- model


def build_model(task: str, features: list[str], categorical: list[str], kind: str = "good", seed: int = SEED) -> Any:
    """The same model for both tools: a scikit-learn Pipeline taking the raw DataFrame, ordinal-encoding the
    categorical columns and passing the numbers through, into HistGradientBoosting (50 iterations, no early
    stopping, so both scikit-learn versions run the same iterations). ``kind="weak"``: a deliberately worse
    model (5 shallow iterations), for the champion/challenger case; ``kind="alike"``: an equally good
    variant (25 leaves instead of 31), for the clean champion/challenger case."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    numeric = [c for c in features if c not in categorical]
    parts: list[tuple[str, Any, list[str]]] = []
    if categorical:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2, dtype=np.float64
        )
        parts.append(("categorical", encoder, list(categorical)))
    if numeric:
        parts.append(("numeric", "passthrough", numeric))
    options: dict[str, Any] = {"max_iter": 50, "early_stopping": False, "random_state": seed}
    if kind == "weak":
        options.update(max_iter=5, max_depth=2)
    elif kind == "alike":
        options.update(max_leaf_nodes=25)
    estimator = (HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor)(
        **options
    )
    return Pipeline([("columns", ColumnTransformer(parts, remainder="drop")), ("model", estimator)])


def train_model(
    frame: Any, label: str, categorical: list[str], task: str, kind: str = "good", share: float = 1.0
) -> Any:
    """Fit build_model on the frame (on a seeded ``share`` of its rows when below 1)."""
    features = [c for c in frame.columns if c != label]
    rows = frame
    if share < 1.0:
        rows = frame.sample(frac=share, random_state=SEED)
    model = build_model(task, features, categorical, kind)
    model.fit(rows[features], rows[label])
    return model


def save_model(model: Any, path: str) -> int:
    """Pickle the model (protocol 5) to path; returns the file's size in bytes."""
    with open(path, "wb") as handle:
        pickle.dump(model, handle, protocol=PICKLE_PROTOCOL)
    return os.path.getsize(path)


def load_model(path: str) -> Any:
    """Unpickle a model saved by ``save_model`` in this same venv. scikit-learn warns
    (``InconsistentVersionWarning``) when a pickle comes from another version of it: an error here, since the
    model would then not be the one the benchmark means."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open(path, "rb") as handle:
            model = pickle.load(handle)
    mismatched = [str(w.message) for w in caught if w.category.__name__ == "InconsistentVersionWarning"]
    if mismatched:
        raise RuntimeError(f"{path} was pickled by another scikit-learn version: {mismatched[0]}")
    return model


def model_score(model: Any, frame: Any, label: str, task: str) -> float:
    """Accuracy (classification) or R² (regression) on the frame: the same for both venvs, as a sanity check."""
    import numpy as np

    features = [c for c in frame.columns if c != label]
    predicted = np.asarray(model.predict(frame[features]))
    truth = frame[label].to_numpy()
    if task == "classification":
        return float(np.mean(predicted == truth))
    return float(1 - np.sum((truth - predicted) ** 2) / np.sum((truth - truth.mean()) ** 2))


# ------------------------------------------------------------------------------------------- the tools


def run_conveyor(suite: str, frames: dict[str, Any], label: str, categorical: list[str], models: dict[str, Any]) -> Any:
    from conveyor import checks

    kwargs: dict[str, Any] = {"label": label, "categorical": categorical}
    if suite == "data_integrity":
        kwargs["data"] = frames["train"]
    else:
        kwargs.update(train=frames["train"], test=frames["test"])
    if suite in ("model_evaluation", "champion_challenger"):
        kwargs["model"] = models["model"]
    if suite == "champion_challenger":
        kwargs["champion"] = models["champion"]
    return checks.run_suite(suite, **kwargs)


def conveyor_summary(result: Any) -> dict[str, Any]:
    record = result.to_dict()
    checks = [
        {
            "check": c["check"],
            "status": c["status"],
            "summary": c["summary"],
            "seconds": c.get("seconds"),
        }
        for c in record["checks"]
    ]
    return {
        "passed": bool(record["passed"]),
        "status": record["status"],
        "counts": record["counts"],
        "checks": checks,
        "failed": [c["check"] for c in checks if c["status"] == "fail"],
        "warned": [c["check"] for c in checks if c["status"] == "warn"],
        "errors": [c["check"] + ": " + c["summary"] for c in checks if c["status"] == "error"],
        "skipped": [c["check"] for c in checks if c["status"] == "skipped"],
    }


def deepchecks_task(task: str, frame: Any, label: str) -> str:
    if task == "regression":
        return "regression"
    return "binary" if frame[label].nunique() <= 2 else "multiclass"


def run_deepchecks(
    suite: str,
    frames: dict[str, Any],
    label: str,
    categorical: list[str],
    models: dict[str, Any],
    task: str,
    with_display: bool,
) -> Any:
    from deepchecks.tabular import Dataset
    from deepchecks.tabular import suites as dc_suites

    label_type = deepchecks_task(task, frames["train"], label)

    def dataset(frame: Any) -> Any:
        return Dataset(frame, label=label, cat_features=list(categorical), label_type=label_type)

    chosen = getattr(dc_suites, DEEPCHECKS_SUITES[suite])()
    if suite == "data_integrity":
        return chosen.run(dataset(frames["train"]), with_display=with_display)
    train, test = dataset(frames["train"]), dataset(frames["test"])
    if suite == "train_test":
        return chosen.run(train, test, with_display=with_display)
    return chosen.run(train, test, models["model"], with_display=with_display)


def deepchecks_summary(result: Any) -> dict[str, Any]:
    from deepchecks.core.check_result import CheckFailure

    checks = []
    for item in result.results:
        header = item.get_header()
        if isinstance(item, CheckFailure):
            reason = str(item.exception).strip().splitlines()
            checks.append(
                {
                    "check": header,
                    "status": "not ran",
                    "reason": f"{type(item.exception).__name__}: {reason[0] if reason else ''}",
                }
            )
            continue
        conditions = [
            {"name": c.name, "category": c.category.value, "details": str(c.details)[:300]}
            for c in item.conditions_results
        ]
        categories = {c["category"] for c in conditions}
        status = "no condition"
        for category, name in (("FAIL", "fail"), ("WARN", "warn"), ("ERROR", "error"), ("PASS", "pass")):
            if category in categories:
                status = name
                break
        checks.append({"check": header, "status": status, "conditions": conditions})
    not_passed = {r.get_header() for r in result.get_not_passed_checks(fail_if_warning=True)}
    not_ran = [r.get_header() for r in result.get_not_ran_checks()]
    return {
        "passed": bool(result.passed(fail_if_warning=False)),
        "passed_without_warnings": bool(result.passed(fail_if_warning=True)),
        "checks": checks,
        "failed": [c["check"] for c in checks if c["status"] == "fail"],
        "warned": [c["check"] for c in checks if c["status"] == "warn"],
        "errors": [c["check"] for c in checks if c["status"] == "error"],
        "not_passed": sorted(not_passed),
        "not_ran": not_ran,
    }


def run_suite(
    tool: str,
    suite: str,
    frames: dict[str, Any],
    label: str,
    categorical: list[str],
    models: dict[str, Any],
    task: str,
    with_display: bool,
) -> tuple[Any, dict[str, Any]]:
    if tool == "conveyor":
        result = run_conveyor(suite, frames, label, categorical, models)
        return result, conveyor_summary(result)
    if suite not in DEEPCHECKS_SUITES:
        return None, {"n/a": f"Deepchecks has no {suite} suite"}
    result = run_deepchecks(suite, frames, label, categorical, models, task, with_display)
    return result, deepchecks_summary(result)


def versions(tool: str) -> dict[str, str]:
    import importlib.metadata as metadata

    names = ["numpy", "pandas", "scipy", "scikit-learn", "conveyor" if tool == "conveyor" else "deepchecks"]
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def warm_imports(tool: str, suite: str) -> float:
    """Import the tool, and the SciPy modules its drift tests use, before the timer, for both tools alike:
    Deepchecks imports scipy.stats when it is imported, conveyor only when a drift test first needs it (about a
    second on this machine), which its data integrity suite never does. Returns the seconds it took."""
    began = time.perf_counter()
    if tool == "conveyor":
        import conveyor.checks  # noqa: F401

        if suite != "data_integrity":
            import scipy.spatial.distance
            import scipy.stats  # noqa: F401
    else:
        import deepchecks.tabular.suites  # noqa: F401
    return time.perf_counter() - began


def read_csv(path: str) -> Any:
    import pandas as pd

    return pd.read_csv(path)


def split_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


# -------------------------------------------------------------------------------------------------- modes


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train the model on the training CSV, pickle it to ``--model-out`` and score it on the test CSV."""
    categorical = split_list(args.categorical)
    frames = {"train": read_csv(args.train), "test": read_csv(args.test)}
    record: dict[str, Any] = {"tool": args.tool, "versions": versions(args.tool)}
    record["rows"] = {name: len(frame) for name, frame in frames.items()}
    began = time.perf_counter()
    model = train_model(frames["train"], args.label, categorical, args.task)
    record["train_seconds"] = time.perf_counter() - began
    record["test_score"] = model_score(model, frames["test"], args.label, args.task)
    record["model_path"] = args.model_out
    record["pickle_protocol"] = PICKLE_PROTOCOL
    record["model_bytes"] = save_model(model, args.model_out)
    return record


def perf(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    categorical = split_list(args.categorical)
    frames = {"train": read_csv(args.train)}
    if args.test:
        frames["test"] = read_csv(args.test)
    read_seconds = time.perf_counter() - started
    models: dict[str, Any] = {}
    record: dict[str, Any] = {"tool": args.tool, "suite": args.suite, "versions": versions(args.tool)}
    record["rows"] = {name: len(frame) for name, frame in frames.items()}
    if args.suite == "model_evaluation":
        began = time.perf_counter()
        models["model"] = load_model(args.model)
        record["load_seconds"] = time.perf_counter() - began
    record["import_seconds"] = warm_imports(args.tool, args.suite)
    before = proc_status()
    record["read_seconds"] = read_seconds
    record["rss_before_suite_kib"] = before["VmRSS"]
    record["hwm_before_reset_kib"] = before["VmHWM"]
    record["peak_reset"] = reset_peak()
    began = time.perf_counter()
    _result, summary = run_suite(
        args.tool, args.suite, frames, args.label, categorical, models, args.task, not args.no_display
    )
    record["suite_seconds"] = time.perf_counter() - began
    record["suite_hwm_kib"] = proc_status()["VmHWM"]
    record["result"] = summary
    return record


def detect(args: argparse.Namespace) -> dict[str, Any]:
    with open(args.manifest) as handle:
        manifest = json.load(handle)
    out: dict[str, Any] = {"tool": args.tool, "versions": versions(args.tool), "cases": []}
    for case in manifest["cases"]:
        entry: dict[str, Any] = {"case": case["name"], "suites": {}}
        out["cases"].append(entry)
        try:
            frames = {"train": read_csv(case["train"]), "test": read_csv(case["test"])}
            categorical = case.get("categorical", [])
            label, task = case["label"], case["task"]
            models: dict[str, Any] = {}
            needs_model = any(s in ("model_evaluation", "champion_challenger") for s in case["suites"])
            if needs_model:
                for role, spec in case.get("models", {"model": {"kind": "good"}}).items():
                    models[role] = train_model(
                        frames["train"], label, categorical, task, spec.get("kind", "good"), spec.get("share", 1.0)
                    )
                    entry.setdefault("scores", {})[role] = model_score(models[role], frames["test"], label, task)
        except Exception as exc:  # a broken case must not hide the others
            entry["error"] = f"{type(exc).__name__}: {exc}"
            entry["traceback"] = traceback.format_exc()
            continue
        for suite in case["suites"]:
            began = time.perf_counter()
            try:
                _result, summary = run_suite(
                    args.tool, suite, frames, label, categorical, models, task, not args.no_display
                )
            except Exception as exc:
                summary = {"crashed": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            summary["seconds"] = time.perf_counter() - began
            entry["suites"][suite] = summary
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("perf")
    one.add_argument("--tool", choices=["conveyor", "deepchecks"], required=True)
    one.add_argument("--suite", choices=SUITES, required=True)
    one.add_argument("--train", required=True)
    one.add_argument("--test")
    one.add_argument("--label", required=True)
    one.add_argument("--categorical", default="")
    one.add_argument("--task", choices=["classification", "regression"], default="classification")
    one.add_argument("--no-display", action="store_true", help="Deepchecks: run(..., with_display=False)")
    one.add_argument("--model", help="the pickled model (from the train mode) for the model_evaluation suite")
    one.add_argument("--out", required=True)
    fit = sub.add_parser("train")
    fit.add_argument("--tool", choices=["conveyor", "deepchecks"], required=True)
    fit.add_argument("--train", required=True)
    fit.add_argument("--test", required=True)
    fit.add_argument("--label", required=True)
    fit.add_argument("--categorical", default="")
    fit.add_argument("--task", choices=["classification", "regression"], default="classification")
    fit.add_argument("--model-out", required=True)
    fit.add_argument("--out", required=True)
    many = sub.add_parser("detect")
    many.add_argument("--tool", choices=["conveyor", "deepchecks"], required=True)
    many.add_argument("--manifest", required=True)
    many.add_argument("--no-display", action="store_true")
    many.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.mode == "perf" and args.suite == "model_evaluation" and not args.model:
        parser.error("perf --suite model_evaluation needs --model (a pickle from the train mode)")
    if args.tool == "deepchecks":
        os.environ.setdefault("DEEPCHECKS_DISABLE_LATEST", "true")
    warnings.simplefilter("ignore")  # both tools' and their libraries' deprecation chatter
    record = {"perf": perf, "train": train, "detect": detect}[args.mode](args)
    with open(args.out, "w") as handle:
        json.dump(record, handle, indent=1, default=_plain)
    return 0


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
