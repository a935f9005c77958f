"""The measured side of ``bench_registry.py``: one registry operation of one tool in this process.

It runs under either venv: conveyor's (``.venv``) or MLflow's (``bench/.venv-mlflow``), so it imports neither tool
at the top. Where the registry lives comes from the environment, as it does for a user: conveyor finds its
workspace from the current folder and its database from ``CONVEYOR_DB`` (else the workspace's SQLite file);
MLflow reads ``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI``. Modes:

* ``prepare`` (conveyor's venv, untimed): train the iris model, save it once with skops, write the data and the
  predictions every load is checked against.
* ``init`` (untimed): create the registry's tables (conveyor: open the registry; MLflow: create the experiment
  ``bench`` with its artifact root in the work folder) and, for MLflow, the MLflow model folder around the same
  skops file (``MLmodel``, requirements; the model bytes replaced by the prepared file's).
* ``register``: register ``--count`` versions of one model from that file, one API call each (MLflow: a run that
  logs the model folder as its artifact, then ``mlflow.register_model`` on ``runs:/RUN/model``).
* ``promote``: move an alias ``--count`` times over versions 1, 2, ... (conveyor ``promote``, MLflow
  ``set_registered_model_alias``); records when each move was made.
* ``load``: resolve ``NAME@ALIAS`` to a loaded model (conveyor ``Registry.load``, MLflow
  ``mlflow.sklearn.load_model("models:/NAME@ALIAS")``), then again ``--warm`` times in the same process.
* ``populate`` (untimed setup): ``--count`` versions of a model and an alias on its middle version.
* ``list``: every version of a model (conveyor ``Registry.versions``, MLflow ``search_model_versions``); with
  ``--again 1`` a second time in the same process (the store already open).
* ``models``: every registered model (conveyor ``Registry.models``, MLflow ``search_registered_models``).
* ``alias-at`` (conveyor only): which version the alias pointed at, at ``--when`` (``Registry.alias_at``).

In-process times start after the tool's top-level import (``conveyor.registry`` / ``mlflow``), which is timed on
its own, and include opening the registry (conveyor ``Registry.open``; MLflow's client builds its store on first
use). Each mode checks its result after the timed part and writes one JSON object to ``--out``.

    python bench/registry_runner.py register --tool conveyor --name iris --model models/model.skops --count 200
        --out RESULT.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

EXPERIMENT = "bench"
SEED = 0


def now() -> float:
    return time.perf_counter()


def summary(calls: list[float]) -> dict[str, Any]:
    ordered = sorted(calls)
    return {
        "calls": calls,
        "first_call_seconds": calls[0],
        "median_call_seconds": statistics.median(ordered),
        "p95_call_seconds": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max_call_seconds": ordered[-1],
    }


def targets(count: int, versions: int) -> list[int]:
    """The version each alias move points at: 1, 2, ..., versions, 1, 2, ... (never the current one)."""
    return [i % versions + 1 for i in range(count)]


def predictions_match(model: Any, data: Path) -> bool:
    expected = json.loads(data.read_text())
    return [int(p) for p in model.predict(expected["X"])] == expected["predictions"]


# ------------------------------------------------------------------------------------------------- prepare


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    import sklearn
    import skops.io as sio
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000, random_state=SEED).fit(features, labels)
    sio.dump(model, args.model)
    untrusted = sio.get_untrusted_types(file=args.model)
    Path(args.data).write_text(
        json.dumps({"X": features.tolist(), "predictions": [int(p) for p in model.predict(features)]})
    )
    return {
        "model_bytes": Path(args.model).stat().st_size,
        "untrusted_types": untrusted,
        "sklearn": sklearn.__version__,
        "skops": _version("skops"),
        "accuracy": float(model.score(features, labels)),
    }


def _version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ------------------------------------------------------------------------------------------------ conveyor


def conveyor_init(args: argparse.Namespace) -> dict[str, Any]:
    from conveyor.registry import Registry

    with Registry.open() as registry:
        backend = registry.db.backend
        registry.models()
    return {"backend": backend}


def conveyor_register(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from conveyor.registry import Registry

    imported = now()
    calls = []
    with Registry.open() as registry:
        opened = now()
        for _ in range(args.count):
            start = now()
            registry.register(args.name, args.model)
            calls.append(now() - start)
        done = now()
        info = registry.model(args.name)
        latest = registry.get(f"{args.name}:latest")
        stored = registry.artifact_path(latest).read_bytes() == Path(args.model).read_bytes()
        backend = registry.db.backend
    return {
        "import_seconds": imported - began,
        "open_seconds": opened - imported,
        "total_seconds": done - imported,
        **summary(calls),
        "versions": info.versions,
        "latest": info.latest,
        "artifact_matches": stored,
        "backend": backend,
    }


def conveyor_promote(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from conveyor.registry import Registry

    imported = now()
    calls, moved_at = [], []
    versions = targets(args.count, args.versions)
    with Registry.open() as registry:
        for version in versions:
            start = now()
            move = registry.promote(f"{args.name}:{version}", to=args.alias)
            calls.append(now() - start)
            moved_at.append(move.at)  # the time recorded in the audit history
        done = now()
        resolved = registry.get(f"{args.name}@{args.alias}").version
    return {
        "import_seconds": imported - began,
        "total_seconds": done - imported,
        **summary(calls),
        "targets": versions,
        "moved_at": moved_at,
        "resolved": resolved,
    }


def conveyor_load(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from conveyor.registry import Registry

    imported = now()
    ref = f"{args.name}@{args.alias}"
    with Registry.open() as registry:
        model = registry.load(ref)
        first = now() - imported
        warm = []
        for _ in range(args.warm):
            start = now()
            registry.load(ref)
            warm.append(now() - start)
        resolved = registry.get(ref).version
    return {
        "import_seconds": imported - began,
        "first_seconds": first,
        "warm_median_seconds": statistics.median(warm) if warm else None,
        "warm_calls": warm,
        "resolved": resolved,
        "type": type(model).__name__,
        "predictions_match": predictions_match(model, Path(args.data)),
    }


def conveyor_populate(args: argparse.Namespace) -> dict[str, Any]:
    record = conveyor_register(args)
    from conveyor.registry import Registry

    with Registry.open() as registry:
        registry.promote(f"{args.name}:{args.count // 2 + 1}", to=args.alias)
    return {"versions": record["versions"], "total_seconds": record["total_seconds"]}


def conveyor_list(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from conveyor.registry import Registry

    imported = now()
    with Registry.open() as registry:
        versions = registry.versions(args.name)
        done = now()
        if args.again:
            registry.versions(args.name)
        again = now() - done if args.again else None
    numbers = [v.version for v in versions]
    return {
        "import_seconds": imported - began,
        "call_seconds": done - imported,
        "again_seconds": again,
        "count": len(versions),
        "complete": numbers == list(range(1, args.expect + 1)),
        "with_aliases": sum(1 for v in versions if v.aliases),
    }


def conveyor_models(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from conveyor.registry import Registry

    imported = now()
    with Registry.open() as registry:
        models = registry.models()
    done = now()
    return {
        "import_seconds": imported - began,
        "call_seconds": done - imported,
        "models": {m.name: m.versions for m in models},
    }


def conveyor_alias_at(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from conveyor.registry import Registry

    imported = now()
    with Registry.open() as registry:
        found = registry.alias_at(args.name, args.alias, args.when)
    done = now()
    return {"import_seconds": imported - began, "call_seconds": done - imported, "resolved": found}


# -------------------------------------------------------------------------------------------------- MLflow


def mlflow_init(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    import mlflow
    import mlflow.sklearn
    import sklearn
    import skops.io as sio
    from mlflow import MlflowClient

    home = Path.cwd()
    artifacts = home / "artifacts"
    MlflowClient().create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())  # creates the tables
    folder = Path(args.model_dir)
    model = sio.load(args.model, trusted=sio.get_untrusted_types(file=args.model))
    mlflow.sklearn.save_model(
        model,
        str(folder),
        serialization_format="skops",  # MLflow 3's default outside Databricks, as conveyor's for scikit-learn
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={_version('skops')}"],
    )
    shutil.copyfile(args.model, folder / "model.skops")  # the very bytes conveyor registers
    reloaded = mlflow.sklearn.load_model(str(folder))
    return {
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir())},
        "predictions_match": predictions_match(reloaded, Path(args.data)),
        "tracking_uri": _redact(mlflow.get_tracking_uri()),
    }


def _redact(uri: str) -> str:
    import re

    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", uri)


def _local_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def mlflow_register(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    import mlflow

    imported = now()
    mlflow.set_experiment(EXPERIMENT)
    opened = now()
    calls = []
    for _ in range(args.count):
        start = now()
        with mlflow.start_run() as run:
            mlflow.log_artifacts(args.model, artifact_path="model")
            mlflow.register_model(f"runs:/{run.info.run_id}/model", args.name)
        calls.append(now() - start)
    done = now()
    client = mlflow.MlflowClient()
    found = client.search_model_versions(f"name='{args.name}'")
    latest = max(found, key=lambda v: int(v.version))
    stored = _local_path(latest.source) / "model.skops"
    return {
        "import_seconds": imported - began,
        "open_seconds": opened - imported,
        "total_seconds": done - imported,
        **summary(calls),
        "versions": len(found),
        "latest": int(latest.version),
        "artifact_matches": stored.read_bytes() == (Path(args.model) / "model.skops").read_bytes(),
        "source": latest.source,
    }


def mlflow_promote(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from mlflow import MlflowClient

    imported = now()
    calls, moved_at = [], []
    versions = targets(args.count, args.versions)
    client = MlflowClient()
    for version in versions:
        start = now()
        client.set_registered_model_alias(args.name, args.alias, str(version))
        calls.append(now() - start)
        moved_at.append(time.time())  # MLflow keeps no history of alias moves: only this process knows
    done = now()
    resolved = int(client.get_model_version_by_alias(args.name, args.alias).version)
    return {
        "import_seconds": imported - began,
        "total_seconds": done - imported,
        **summary(calls),
        "targets": versions,
        "moved_at": moved_at,
        "resolved": resolved,
    }


def mlflow_load(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    import mlflow

    imported = now()
    uri = f"models:/{args.name}@{args.alias}"
    model = mlflow.sklearn.load_model(uri)
    first = now() - imported
    warm = []
    for _ in range(args.warm):
        start = now()
        mlflow.sklearn.load_model(uri)
        warm.append(now() - start)
    resolved = int(mlflow.MlflowClient().get_model_version_by_alias(args.name, args.alias).version)
    return {
        "import_seconds": imported - began,
        "first_seconds": first,
        "warm_median_seconds": statistics.median(warm) if warm else None,
        "warm_calls": warm,
        "resolved": resolved,
        "type": type(model).__name__,
        "predictions_match": predictions_match(model, Path(args.data)),
    }


def mlflow_populate(args: argparse.Namespace) -> dict[str, Any]:
    """Setup only: one run logs the model folder; every version points at it (as conveyor's versions all point
    at one cache object), created with the registry's own call."""
    import mlflow

    began = now()
    mlflow.set_experiment(EXPERIMENT)
    client = mlflow.MlflowClient()
    with mlflow.start_run() as run:
        mlflow.log_artifacts(args.model, artifact_path="model")
    client.create_registered_model(args.name)
    source = f"{run.info.artifact_uri}/model"
    for _ in range(args.count):
        client.create_model_version(args.name, source, run_id=run.info.run_id)
    client.set_registered_model_alias(args.name, args.alias, str(args.count // 2 + 1))
    found = client.search_model_versions(f"name='{args.name}'")
    return {"versions": len(found), "total_seconds": now() - began}


def mlflow_list(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from mlflow import MlflowClient

    imported = now()
    client = MlflowClient()
    versions = client.search_model_versions(f"name='{args.name}'")
    done = now()
    if args.again:
        client.search_model_versions(f"name='{args.name}'")
    again = now() - done if args.again else None
    numbers = sorted(int(v.version) for v in versions)
    return {
        "import_seconds": imported - began,
        "call_seconds": done - imported,
        "again_seconds": again,
        "count": len(versions),
        "complete": numbers == list(range(1, args.expect + 1)) and not versions.token,
        "with_aliases": sum(1 for v in versions if v.aliases),
    }


def mlflow_models(args: argparse.Namespace) -> dict[str, Any]:
    began = now()
    from mlflow import MlflowClient

    imported = now()
    models = MlflowClient().search_registered_models()
    done = now()
    return {
        "import_seconds": imported - began,
        "call_seconds": done - imported,
        "models": {m.name: max((int(v.version) for v in m.latest_versions or []), default=0) for m in models},
    }


# ---------------------------------------------------------------------------------------------------- main

MODES = {
    "init": {"conveyor": conveyor_init, "mlflow": mlflow_init},
    "register": {"conveyor": conveyor_register, "mlflow": mlflow_register},
    "promote": {"conveyor": conveyor_promote, "mlflow": mlflow_promote},
    "load": {"conveyor": conveyor_load, "mlflow": mlflow_load},
    "populate": {"conveyor": conveyor_populate, "mlflow": mlflow_populate},
    "list": {"conveyor": conveyor_list, "mlflow": mlflow_list},
    "models": {"conveyor": conveyor_models, "mlflow": mlflow_models},
    "alias-at": {"conveyor": conveyor_alias_at},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One registry operation of one tool (see bench_registry.py).")
    parser.add_argument("mode", choices=["prepare", *MODES])
    parser.add_argument("--tool", choices=["conveyor", "mlflow"], default="conveyor")
    parser.add_argument("--out", required=True, help="where the JSON result goes")
    parser.add_argument("--name", default="iris", help="the model's name")
    parser.add_argument("--alias", default="production")
    parser.add_argument("--model", help="conveyor: the model file; MLflow: the MLflow model folder")
    parser.add_argument("--model-dir", help="init (MLflow): where the MLflow model folder goes")
    parser.add_argument("--data", help="the features and expected predictions (JSON, from prepare)")
    parser.add_argument("--count", type=int, default=1, help="versions to register, or alias moves")
    parser.add_argument("--versions", type=int, default=1, help="promote: the versions the alias moves over")
    parser.add_argument("--expect", type=int, default=0, help="list: the number of versions there must be")
    parser.add_argument("--warm", type=int, default=0, help="load: loads after the first, in the same process")
    parser.add_argument("--again", type=int, default=0, help="list: 1 lists a second time in the same process")
    parser.add_argument("--when", type=float, help="alias-at: the time asked about (Unix seconds)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode == "prepare":
        record = prepare(args)
    else:
        try:
            run = MODES[args.mode][args.tool]
        except KeyError:
            print(f"{args.tool} has no '{args.mode}'", file=sys.stderr)
            return 2
        record = run(args)
    record["python"] = platform.python_version()
    record["pid"] = os.getpid()
    Path(args.out).write_text(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
