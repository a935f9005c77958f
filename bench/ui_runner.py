"""The setup side of ``bench_ui.py``: record ``--count`` runs in one tool's store, through its Python API.

It runs under either venv, conveyor's (``.venv``) or MLflow's (``bench/.venv-mlflow-ui``), so it imports neither
tool at the top. Both tools record the same runs (``run_values``): five params, five metrics, one run in ten
failed, one second apart. conveyor records them as ``conveyor run`` would (``RunStore.start_run``, then
``finish_run``, three stages each, the commit); MLflow as its client would (``create_run`` with the tags its
fluent API sets, ``log_batch`` of the params and metrics, ``set_terminated``). Prints one JSON object: how long the
recording took.

    python bench/ui_runner.py fill --tool conveyor --root WORKSPACE --count 10000
    python bench/ui_runner.py fill --tool mlflow --root FOLDER --count 10000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

T0 = 1_700_000_000.0
PRIMES = (7919, 104729, 1299709, 15485863, 179424673)  # coprime to every run count the bench uses
METRICS = 5
PARAMS = 5
COMMIT = "3f1c9e2d5b7a8c6e4f2a1b3c5d7e9f0a2b4c6d8e"


def run_values(i: int, count: int) -> tuple[str, dict[str, str], dict[str, float], float]:
    """Run ``i`` of ``count``: its status, params, metrics and start time. Each metric is a permutation of
    ``0/count .. (count-1)/count`` over the runs, so a sort by any metric has no ties to break."""
    status = "failed" if i % 10 == 3 else "succeeded"
    params = {f"p{k}": str(i % (k + 3)) for k in range(PARAMS)}
    metrics = {f"m{k}": ((i * PRIMES[k] + k) % count) / count for k in range(METRICS)}
    return status, params, metrics, T0 + i


def conveyor_run_id(i: int) -> str:
    return f"20231114-{i:06d}-{(i * 2654435761) % 0xFFFFFF:06x}"


def mlflow_run_name(i: int) -> str:
    return f"run-{i:06d}"


def fill_conveyor(root: Path, count: int) -> float:
    from conveyor.store import RunRecord, RunStore, StageRecord
    from conveyor.workspace import Workspace

    started = time.perf_counter()
    with RunStore.open(Workspace.find(root)) as store:
        for i in range(count):
            status, params, metrics, at = run_values(i, count)
            run_id = conveyor_run_id(i)
            stages = [
                StageRecord(name=name, status="ran", started_at=at + n * 0.1, duration=0.1)
                for n, name in enumerate(("prepare", "train", "evaluate"))
            ]
            if status == "failed":
                stages[-1].status, stages[-1].error = "failed", "exit code 1"
            record = RunRecord(
                id=run_id, started_at=at, commit=COMMIT, command="conveyor run", params=params, stages=stages
            )
            store.start_run(record)
            store.finish_run(run_id, status=status, ended_at=at + 0.5, metrics=metrics)
    return time.perf_counter() - started


def fill_mlflow(root: Path, count: int) -> float:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.create_experiment("bench", artifact_location=str(root / "artifacts"))
    started = time.perf_counter()
    for i in range(count):
        status, params, metrics, at = run_values(i, count)
        millis = int(at * 1000)
        tags = {
            "mlflow.user": "bench",
            "mlflow.source.name": "train.py",
            "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": COMMIT,
        }
        run = client.create_run(experiment, start_time=millis, tags=tags, run_name=mlflow_run_name(i))
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(key, value, millis, 0) for key, value in metrics.items()],
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag("stages", "prepare,train,evaluate")],
        )
        client.set_terminated(run.info.run_id, "FAILED" if status == "failed" else "FINISHED", end_time=millis + 500)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["fill"])
    parser.add_argument("--tool", choices=["conveyor", "mlflow"], required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    fill = fill_conveyor if args.tool == "conveyor" else fill_mlflow
    seconds = fill(args.root, args.count)
    result: dict[str, Any] = {"tool": args.tool, "count": args.count, "seconds": seconds}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
