"""``conveyor deliver``, ``watch`` and ``monitor`` on a real pipeline in a real git repo, with a
real server process when a rollout is part of it."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from sklearn import datasets

from conftest import Project
from conveyor.delivery import DeliveryReport, DeliveryStopped, Trigger, watch
from conveyor.errors import ConveyorError
from conveyor.registry import Registry
from conveyor.workspace import Workspace
from test_serving_rollout import Load, Server, start

PIPELINE = f"""\
stages:
  prepare:
    cmd: {sys.executable} prepare.py
    deps: [prepare.py, raw.csv]
    outs: [data/train.csv, data/test.csv]
  train:
    cmd: {sys.executable} train.py
    deps: [train.py, data/train.csv]
    params: [train]
    outs: [models/model.skops]
  evaluate:
    check:
      suite:
        suite: model_evaluation
        conditions:
          baseline:
            min_gain: {{fail: 0.2}}   # at least 20 points better than always guessing one class
      model: models/model.skops
      train: data/train.csv
      test: data/test.csv
      label: target
deploy:
  model: iris
  artifact: models/model.skops
  rollout: {{share: 0.5, window: 30, timeout: 60}}
  monitor: {{reference: data/train.csv, label: target, min_rows: 50}}
registry:
  aliases:
    production: {{requires: [evaluate]}}
"""
PREPARE = """\
import os, pandas as pd
data = pd.read_csv("raw.csv").sample(frac=1.0, random_state=0)
os.makedirs("data", exist_ok=True)
data.iloc[:100].to_csv("data/train.csv", index=False)
data.iloc[100:].to_csv("data/test.csv", index=False)
"""
TRAIN = """\
import os, pandas as pd, skops.io, yaml
from sklearn.linear_model import LogisticRegression
params = yaml.safe_load(open("params.yaml"))["train"]
data = pd.read_csv("data/train.csv")
label = data["target"].sample(frac=1.0, random_state=1).to_numpy() if params["shuffle"] else data["target"]
model = LogisticRegression(C=params["c"], max_iter=1000).fit(data.drop(columns="target"), label)
os.makedirs("models", exist_ok=True)
skops.io.dump(model, "models/model.skops")
"""
IRIS = datasets.load_iris(as_frame=True).frame


def delivery_project(project: Project) -> None:
    IRIS.to_csv(project.root / "raw.csv", index=False)
    project.write("conveyor.yaml", PIPELINE)
    project.write("prepare.py", PREPARE)
    project.write("train.py", TRAIN)
    project.write("params.yaml", "train:\n  c: 1.0\n  shuffle: false\n")
    project.git("add", "-A")
    project.commit("the pipeline")


def history(project: Project) -> list[tuple[str, str, int | None, str]]:
    with Registry.open(Workspace.find(project.root)) as registry:
        return [(m.alias, m.action, m.to_version, m.actor) for m in registry.history("iris")]


def test_deliver_releases_then_finds_nothing_new_then_a_gate_stops_a_worse_model(
    project: Project, tmp_path: Path
) -> None:
    delivery_project(project)
    (tmp_path / "remote").mkdir()
    project.ok("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    first = project.cvy("deliver")
    assert first.code == 0, first
    assert "✓ pull       everything already here" in first.out
    for step in ("✓ run", "✓ register", "✓ staging", "- rollout", "✓ production"):
        assert step in first.out, first.out
    assert "3 stages ran; gates passed: evaluate" in first.out
    assert "models/model.skops registered as iris:1" in first.out and first.out.strip().endswith("iris:1 released")
    assert [(a, act, v) for a, act, v, _ in history(project)] == [
        ("staging", "promote", 1),
        ("production", "promote", 1),
    ]
    shown = json.loads(project.ok("model", "show", "iris:1", "--json"))
    assert shown["lineage"]["stage"] == "train"  # registered with the run's lineage
    again = project.cvy("deliver", "--json")
    assert again.code == 0 and json.loads(again.out)["outcome"] == "unchanged"
    # a model trained on shuffled labels: the check stage fails and the delivery stops there
    project.write("params.yaml", "train:\n  c: 1.0\n  shuffle: true\n")
    worse = project.cvy("deliver")
    assert worse.code == 1, worse
    assert "✗ run" in worse.out and "delivery of iris stopped at run" in worse.err
    assert "Traceback" not in worse.err
    with Registry.open(Workspace.find(project.root)) as registry:
        assert registry.aliases("iris") == {"production": 1, "staging": 1}
        assert len(registry.versions("iris")) == 1


def test_deliver_rolls_out_through_a_running_server_under_load(project: Project, tmp_path: Path) -> None:
    delivery_project(project)
    assert project.cvy("deliver").code == 0
    server: Server = start(project.root, "--canary-share", "0.5", "--window", "30")
    try:
        with Load(server.url, threads=2) as load:
            project.write("params.yaml", "train:\n  c: 0.05\n  shuffle: false\n")
            delivered = project.cvy("deliver", "--server", server.url, "--json")
            time.sleep(0.3)
        assert delivered.code == 0, delivered
        report = json.loads(delivered.out)
        assert report["outcome"] == "released" and report["version"] == "iris:2"
        steps = {s["name"]: s for s in report["steps"]}
        assert steps["rollout"]["status"] == "ok" and "canary on" in steps["rollout"]["detail"]
        assert "promoted by conveyor-serve" in steps["production"]["detail"]
        assert load.failures() == []
        assert {v for _, _, v in load.responses} == {"1", "2"}
        assert server.status()["primary"] == "iris:2"
        moves = history(project)
        assert ("canary", "promote", 2, moves[-3][3]) == moves[-3]
        assert moves[-2] == ("production", "promote", 2, "conveyor-serve")
        assert moves[-1] == ("canary", "remove", None, "conveyor-serve")
    finally:
        server.process.kill()
        server.process.wait()


def test_monitor_raises_the_alarm_on_drifted_traffic_and_retrains(project: Project, tmp_path: Path) -> None:
    delivery_project(project)
    assert project.cvy("deliver").code == 0
    logs = tmp_path / "requests"
    server = start(project.root, "--log-sample", "1", "--log-dir", str(logs))
    try:
        features = IRIS.drop(columns="target")
        rng = np.random.default_rng(0)

        def send(frame: object) -> None:
            split = {"dataframe_split": {"columns": list(features.columns), "data": frame}}
            assert httpx.post(f"{server.url}/invocations", json=split).status_code == 200

        for i in range(0, 150, 10):  # live traffic like the training data
            send(features.iloc[i : i + 10].to_numpy().tolist())
        server.process.send_signal(2)  # SIGINT: a clean stop writes the buffered logs
        server.process.wait(timeout=30)
        calm = project.cvy("monitor", "--logs", str(logs), "--no-retrain")
        assert calm.code == 0, calm
        assert "150 live rows" in calm.out and "ok: " in calm.out
        for old in logs.glob("*.parquet"):
            old.unlink()
        server = start(project.root, "--log-sample", "1", "--log-dir", str(logs))
        drifted = features.to_numpy() * rng.uniform(1.8, 2.2, size=features.shape)  # every feature doubled
        for i in range(0, 150, 10):
            send(drifted[i : i + 10].tolist())
        server.process.send_signal(2)
        server.process.wait(timeout=30)
        alarm = project.cvy("monitor", "--logs", str(logs), "--json")
        assert alarm.code == 1, alarm  # the alarm was raised and the retraining released nothing new
        report = json.loads(alarm.out)
        assert report["alarm"] and report["drift_share"] == 1.0 and report["predictions_drifted"]
        assert report["delivery"]["outcome"] == "unchanged"
        assert Path(report["reports"]["html"]).is_file()
        not_retrained = project.cvy("monitor", "--logs", str(logs), "--no-retrain")
        assert not_retrained.code == 1 and "ALARM: 4 of 4 features drifted" in not_retrained.out
        assert "error: model 'iris': live traffic drifted" in not_retrained.err
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait()


def outcome_of(result: DeliveryReport | ConveyorError) -> str:
    if isinstance(result, DeliveryStopped):
        return result.report.outcome
    if isinstance(result, DeliveryReport):
        return result.outcome
    return f"error: {result.format_message()}"


def test_watch_delivers_when_params_change_and_goes_on_after_a_stopped_delivery(project: Project) -> None:
    delivery_project(project)
    ws = Workspace.find(project.root)
    triggers: list[str] = []
    outcomes: list[str] = []

    def changed_later() -> None:
        deadline = time.monotonic() + 60
        while len(outcomes) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        project.write("params.yaml", "train:\n  c: 1.0\n  shuffle: true\n")  # a worse model: stopped
        while len(outcomes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        project.write("params.yaml", "train:\n  c: 0.5\n  shuffle: false\n")  # a good one: released

    editor = threading.Thread(target=changed_later, daemon=True)
    editor.start()
    stopped = watch(
        interval=0.2,
        max_deliveries=3,
        on_trigger=lambda t: triggers.append(t.reason),
        on_delivery=lambda result: outcomes.append(outcome_of(result)),
        workspace=ws,
    )
    editor.join()
    assert stopped == 1
    assert outcomes == ["released", "stopped", "released"], outcomes
    assert triggers[0] == "first look" and all(t.startswith("stale: train") for t in triggers[1:]), triggers
    with Registry.open(ws) as registry:
        assert registry.aliases("iris")["production"] == 2
    assert isinstance(Trigger("x").to_json(), dict)


def test_watch_cli_delivers_on_a_moved_head_and_on_its_schedule(project: Project) -> None:
    delivery_project(project)
    assert project.cvy("deliver").code == 0
    ws = Workspace.find(project.root)
    triggers: list[str] = []
    outcomes: list[str] = []

    def commit_later() -> None:  # once the first delivery is over, so that it sees HEAD move
        deadline = time.monotonic() + 60
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
        project.write("NOTES.md", "a commit that changes nothing the pipeline reads\n")
        project.git("add", "NOTES.md")
        project.commit("notes")

    committer = threading.Thread(target=commit_later, daemon=True)
    committer.start()
    stopped = watch(
        interval=0.1,
        every=1.5,
        max_deliveries=3,
        on_trigger=lambda t: triggers.append(t.reason),
        on_delivery=lambda result: outcomes.append(outcome_of(result)),
        workspace=ws,
    )
    committer.join()
    assert stopped == 0 and outcomes == ["unchanged"] * 3
    assert triggers[0] == "first look" and triggers[1].startswith("HEAD moved to ") and triggers[2] == "schedule"
    cli = project.run("watch", "--max-deliveries", "1", "--interval", "0.1")
    assert cli.code == 0, cli
    assert "delivering: first look" in cli.out and "iris:1 unchanged: nothing new to deliver" in cli.out
    bad = project.run("watch", "--interval", "0")
    assert bad.code == 2 and "error: --interval 0.0 must be positive" in bad.err
