"""``conveyor run --executor dask://HOST:PORT``: a pipeline across a real Dask cluster.

The real ``conveyor`` executable in a git workspace with a folder remote, a real ``dask
scheduler`` and two ``dask worker`` processes (tests/_dask_cluster.py). The stages run on the
workers, which fetch their inputs from the remote and push their outputs there; the client
brings the outputs into the workspace and keeps the lock, the run record and the progress.
A worker killed in the middle of a stage: Dask runs the stage again on the other worker, and
the run still ends with the right outputs.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from _dask_cluster import DaskCluster, fixture_dask_cluster, fixture_dask_session  # noqa: F401 (fixtures)
from conftest import Project

STEPS = """
import json, os, time

def featurise(raw, out, scale):
    with open(raw) as f:
        values = [float(line) for line in f if line.strip()]
    with open(out, "w") as f:
        json.dump([v * scale for v in values], f)

def train(features, out, marker=None, hold=0):
    if marker:
        with open(marker, "a") as f:  # where and when it started (a shared folder the test reads)
            f.write(os.environ.get("CONVEYOR_WORKER", "?") + "\\n")
        time.sleep(hold)
    with open(features) as f:
        values = json.load(f)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump({"mean": sum(values) / len(values), "n": len(values)}, f)
    with open(os.path.join(out, "worker.txt"), "w") as f:
        f.write(os.environ.get("CONVEYOR_WORKER", "?"))
"""


def pipeline(marker: Path | None = None, hold: float = 0) -> str:
    extra = f"\n              marker: {marker}\n              hold: {hold}" if marker else ""
    return textwrap.dedent(
        f"""
        stages:
          featurise:
            call: steps:featurise
            kwargs:
              raw: data/raw.txt
              out: features.json
              scale: ${{scale}}
            deps: [data/raw.txt]
            params: [scale]
            outs: [features.json]
          train:
            call: steps:train
            kwargs:
              features: features.json
              out: model{extra}
            deps: [features.json]
            outs: [model]
          report:
            cmd: cat model/model.json > report.txt && echo " from $CONVEYOR_WORKER" >> report.txt
            deps: [model]
            outs: [report.txt]
        """
    ).lstrip("\n")


@pytest.fixture
def workspace(project: Project, tmp_path: Path) -> Project:
    project.write("steps.py", STEPS)
    project.write("params.yaml", "scale: 2\n")
    project.write("data/raw.txt", "1\n2\n3\n")
    project.ok("add", "data/raw.txt")
    project.ok("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    return project


def run_json(project: Project, cluster: DaskCluster, *args: str) -> dict[str, object]:
    result = project.run("run", "--executor", cluster.dask_address, "--json", *args, timeout=180)
    assert result.code == 0, result.err
    data: dict[str, object] = json.loads(result.out)
    return data


def test_a_pipeline_runs_on_the_cluster_and_the_client_keeps_the_lock(
    workspace: Project, dask_cluster: DaskCluster
) -> None:
    workspace.write("conveyor.yaml", pipeline())
    report = run_json(workspace, dask_cluster)
    stages = {s["name"]: s for s in report["stages"]}  # type: ignore[attr-defined]
    assert {name: s["status"] for name, s in stages.items()} == {"featurise": "ran", "train": "ran", "report": "ran"}
    workers = {w.address for w in dask_cluster.live()}
    assert all(s["worker"] in workers for s in stages.values())  # each ran on a cluster worker
    root = workspace.root
    assert json.loads((root / "features.json").read_text()) == [2.0, 4.0, 6.0]
    assert json.loads((root / "model" / "model.json").read_text()) == {"mean": 4.0, "n": 3}
    assert (root / "model" / "worker.txt").read_text() == stages["train"]["worker"]
    assert (root / "report.txt").read_text().startswith('{"mean": 4.0, "n": 3} from tcp://127.0.0.1:')
    lock = (root / "conveyor.lock").read_text()
    assert all(f"  {name}:" in lock for name in stages)
    assert "Everything is up to date" in workspace.ok("run", "--executor", dask_cluster.dask_address)
    assert "up to date" in workspace.ok("status")
    # a changed param re-runs what reads it, on the cluster, and nothing else
    workspace.write("params.yaml", "scale: 3\n")
    report = run_json(workspace, dask_cluster)
    statuses = {s["name"]: s["status"] for s in report["stages"]}  # type: ignore[attr-defined]
    assert statuses["featurise"] == "ran" and statuses["train"] == "ran"
    assert json.loads((root / "model" / "model.json").read_text()) == {"mean": 6.0, "n": 3}
    logs = workspace.ok("runs", "show", str(report["run_id"]))
    assert "featurise" in logs


def test_a_worker_killed_mid_stage_does_not_stop_the_run(
    workspace: Project, dask_cluster: DaskCluster, tmp_path: Path
) -> None:
    marker = tmp_path / "started.txt"
    workspace.write("conveyor.yaml", pipeline(marker, hold=4))
    killed: list[str] = []

    def kill_the_first_worker_that_starts_train() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                address = marker.read_text().split()[0]
                dask_cluster.kill(address)
                killed.append(address)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_worker_that_starts_train)
    killer.start()
    report = run_json(workspace, dask_cluster)
    killer.join()
    assert killed, "train never started"
    stages = {s["name"]: s for s in report["stages"]}  # type: ignore[attr-defined]
    assert stages["train"]["status"] == "ran"
    assert stages["train"]["worker"] != killed[0]  # Dask ran it again on the worker still alive
    assert marker.read_text().split() == [killed[0], stages["train"]["worker"]]
    root = workspace.root
    assert json.loads((root / "model" / "model.json").read_text()) == {"mean": 4.0, "n": 3}
    assert (root / "model" / "worker.txt").read_text() == stages["train"]["worker"]


def test_an_unreachable_scheduler_is_one_line(workspace: Project) -> None:
    workspace.write("conveyor.yaml", pipeline())
    result = workspace.run("run", "--executor", "dask://127.0.0.1:9")
    assert result.code != 0
    assert "Traceback" not in result.err
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in errors[0], result.err


def test_the_executor_needs_a_remote(project: Project) -> None:
    project.write("conveyor.yaml", "stages:\n  s:\n    cmd: echo > s.txt\n    outs: [s.txt]\n")
    result = project.run("run", "--executor", "dask://127.0.0.1:9")
    assert result.code != 0 and "Traceback" not in result.err
    assert "remote" in result.err.splitlines()[-1], result.err
    assert not os.path.exists(project.root / "s.txt")
