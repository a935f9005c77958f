"""Hot swap, canary, shadow and rollback with real server processes under real load.

Each test starts ``conveyor serve NAME@production`` in a project of its own, sends it
requests from client threads the whole time, moves aliases through the registry (as
``conveyor model promote`` does) and checks what every response said: no request fails, a
version that cannot load is never swapped in, and every automatic decision is in the
registry's audit history.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sklearn import datasets
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sqlalchemy import create_engine, text

from conftest import CONVEYOR_BIN, Project
from conveyor.registry import Registry, Signature
from conveyor.workspace import Workspace
from remote_fixtures import port_outside_ephemeral_range

IRIS = datasets.load_iris(as_frame=True).frame
FEATURES = IRIS.drop(columns="target")
SIGNATURE = Signature.infer(IRIS, label="target")
GOOD = LogisticRegression(max_iter=1000).fit(FEATURES, IRIS["target"])
OTHER = LogisticRegression(max_iter=1000, C=0.05).fit(FEATURES, IRIS["target"])
# fitted on three columns, registered with a four-column signature: every prediction raises
BROKEN = LogisticRegression(max_iter=1000).fit(FEATURES.iloc[:, :3].to_numpy(), IRIS["target"])
TOLERANT = HistGradientBoostingClassifier(max_iter=20).fit(FEATURES, IRIS["target"])  # takes missing values
CONSTANT = DummyClassifier(strategy="constant", constant=0).fit(FEATURES, IRIS["target"])
TOKEN = "admin-token-0123456789abcdef"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    stderr: Path

    def status(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.url}/admin/status", timeout=5).json())

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def workspace(tmp_path: Path, *, db_url: str | None = None) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([CONVEYOR_BIN, "init"], cwd=root, check=True, env=env, capture_output=True)
    if db_url is not None:
        (root / ".conveyor" / "config.local").write_text(f"store:\n  url: {db_url}\n", encoding="utf-8")
    return root


def registry(root: Path) -> Registry:
    return Registry.open(Workspace.find(root))


def register(root: Path, model: object, *, promote: str | None = None) -> int:
    with registry(root) as reg:
        version = reg.register("iris", model=model, signature=SIGNATURE)
        if promote:
            reg.promote(version.ref, to=promote)
    return version.version


def start(root: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = port_outside_ephemeral_range()
    stderr = root.parent / f"server-{port}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")} | (env or {})
    with stderr.open("wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [CONVEYOR_BIN, "serve", "iris@production", "--port", str(port), "--poll", "0.2", *extra],
            cwd=root,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {stderr.read_text()}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return Server(url, process, stderr)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not become ready in 60 s")


@pytest.fixture(name="servers")
def fixture_servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait()


def oip(rows: int = 2, start: int = 0) -> dict[str, object]:
    frame = FEATURES.iloc[start : start + rows]
    return {
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()} for c in frame.columns
        ]
    }


@dataclass
class Load:
    """Client threads sending requests without pause; every response is kept."""

    url: str
    threads: int = 4
    missing_every: int = 0  # every n-th request of a thread has a missing value (0: none)
    responses: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, version or error)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for n in range(self.threads):
            worker = threading.Thread(target=self._send, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _send(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = n
            while not self._stop.is_set():
                i = (i + 7) % 140
                body = oip(2, i)
                if self.missing_every and i % self.missing_every == 0:
                    body["inputs"][0]["data"][0] = None  # type: ignore[index]
                try:
                    response = client.post(f"{self.url}/v2/models/iris/infer", json=body)
                    version = response.json().get("model_version", response.text[:200])
                    self.responses.append((time.monotonic(), response.status_code, str(version)))
                except httpx.HTTPError as exc:
                    self.responses.append((time.monotonic(), 0, f"{type(exc).__name__}: {exc}"))

    def failures(self) -> list[tuple[float, int, str]]:
        return [r for r in self.responses if r[1] != 200]

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate():
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def first_after(self, moment: float, version: str) -> float | None:
        times = [t for t, status, v in list(self.responses) if t >= moment and status == 200 and v == version]
        return min(times) if times else None


def history(root: Path) -> list[tuple[str, str, str | None, str, str]]:
    with registry(root) as reg:
        return [
            (m.alias, m.action, None if m.to_version is None else str(m.to_version), m.actor, m.reason)
            for m in reg.history("iris")
        ]


def aliases(root: Path) -> dict[str, int]:
    with registry(root) as reg:
        return reg.aliases("iris")


def test_hot_swap_under_load_fails_no_request_and_a_broken_version_is_never_swapped_in(
    tmp_path: Path, servers: list[Server]
) -> None:
    root = workspace(tmp_path)
    register(root, GOOD, promote="production")
    servers.append(server := start(root))
    with Load(server.url) as load:
        load.wait_for(lambda: len(load.responses) > 50, "the first responses")
        v2 = register(root, OTHER)
        with registry(root) as reg:
            reg.promote(f"iris:{v2}", to="production")
        moved = time.monotonic()
        load.wait_for(lambda: load.first_after(moved, "2") is not None, "version 2 to answer")
        # a version whose artifact is damaged in the cache: its hash check fails, it never serves
        v3 = register(root, GOOD)
        with registry(root) as reg:
            artifact = reg.artifact_path(f"iris:{v3}")
            artifact.chmod(0o644)
            artifact.write_bytes(b"not a model")
            reg.promote(f"iris:{v3}", to="production")
        failed_at = time.monotonic()
        load.wait_for(
            lambda: any(e["kind"] == "load-failed" for e in server.status()["events"]),  # type: ignore[index,union-attr]
            "the failed load to be reported",
        )
        time.sleep(0.5)
    assert load.failures() == []
    assert len(load.responses) > 100
    assert {v for t, _, v in load.responses if t > failed_at} == {"2"}, "the damaged version 3 answered"
    status = server.status()
    assert status["primary"] == "iris:2"
    events = [e for e in status["events"] if e["kind"] == "load-failed"]  # type: ignore[union-attr]
    assert "iris:3" in events[0]["message"] and "hash" in events[0]["message"]  # type: ignore[index]
    assert "load-failed" in server.log()
    # the metrics name both versions that answered
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'conveyor_requests_total{code="200",endpoint="infer",model="iris",role="primary",version="2"}' in metrics
    assert 'conveyor_model_load_failures_total{model="iris",role="primary"} 1.0' in metrics


def test_a_canary_that_meets_its_objectives_is_promoted_and_the_move_is_audited(
    tmp_path: Path, servers: list[Server]
) -> None:
    root = workspace(tmp_path)
    register(root, GOOD, promote="production")
    servers.append(server := start(root, "--canary-share", "0.5", "--window", "40"))
    with Load(server.url) as load:
        load.wait_for(lambda: len(load.responses) > 20, "the first responses")
        v2 = register(root, OTHER, promote="canary")
        moved = time.monotonic()
        load.wait_for(lambda: aliases(root).get("production") == v2, "the canary to be promoted")
        both = {v for t, _, v in load.responses if t > moved}
        time.sleep(0.5)
        promoted = time.monotonic()
        time.sleep(0.5)
    assert load.failures() == []
    assert both >= {"1", "2"}, "the canary did not share the traffic"
    assert {v for t, _, v in load.responses if t > promoted} == {"2"}
    assert "canary" not in aliases(root)
    moves = history(root)
    promotion = [m for m in moves if m[0] == "production" and m[1] == "promote" and m[2] == "2"]
    assert (
        promotion and promotion[0][3] == "conveyor-serve" and "canary passed: 40 requests, 0 errors" in promotion[0][4]
    )
    assert ("canary", "remove", None, "conveyor-serve", "promoted to 'production'") in moves


def test_a_canary_that_fails_is_rolled_back_without_failing_a_client(tmp_path: Path, servers: list[Server]) -> None:
    root = workspace(tmp_path)
    register(root, TOLERANT, promote="production")
    servers.append(server := start(root, "--canary-share", "0.5", "--window", "100", "--max-error-rate", "0.05"))
    with Load(server.url) as load:
        load.wait_for(lambda: len(load.responses) > 20, "the first responses")
        # a candidate that cannot predict at all fails its warm-up and never takes a request
        register(root, BROKEN, promote="canary")
        load.wait_for(lambda: "canary" not in aliases(root), "the unloadable canary to be aborted")
        # one that fails on some live inputs (missing values) is rolled back by its error rate
        register(root, GOOD, promote="canary")
        load.wait_for(lambda: server.status()["candidate"] == "iris:3", "the canary to be on trial")
        load.missing_every = 5
        load.wait_for(lambda: "canary" not in aliases(root), "the failing canary to be rolled back")
        time.sleep(0.3)
    assert load.failures() == [], "a client saw a canary's failure"
    assert {v for _, _, v in load.responses} <= {"1", "3"}
    aborts = [m for m in history(root) if m[1] == "abort"]
    assert [(m[0], m[3]) for m in aborts] == [("canary", "conveyor-serve")] * 2
    assert "iris:2 could not be loaded: warm-up failed" in aborts[0][4] and "expecting 3 features" in aborts[0][4]
    assert "automatic rollback of iris:3: error rate" in aborts[1][4]
    assert aliases(root) == {"production": 1}
    kinds = [e["kind"] for e in server.status()["events"]]  # type: ignore[union-attr]
    assert kinds.count("aborted") == 2


def test_shadow_answers_with_production_and_rolls_back_on_disagreement(tmp_path: Path, servers: list[Server]) -> None:
    root = workspace(tmp_path)
    register(root, GOOD, promote="production")
    servers.append(server := start(root, "--mode", "shadow", "--window", "60", "--max-disagreement", "0.2"))
    with Load(server.url) as load:
        load.wait_for(lambda: len(load.responses) > 20, "the first responses")
        register(root, CONSTANT, promote="canary")
        load.wait_for(lambda: "canary" not in aliases(root), "the shadow to be rolled back")
    assert load.failures() == []
    assert {v for _, _, v in load.responses} == {"1"}, "a shadow answered a client"
    abort = [m for m in history(root) if m[1] == "abort"]
    assert len(abort) == 1 and "disagreement" in abort[0][4] and "above 20.0%" in abort[0][4]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'conveyor_shadow_disagreements_total{model="iris",version="2"}' in metrics


def test_tokens_guard_admin_and_prediction_endpoints(tmp_path: Path, servers: list[Server]) -> None:
    root = workspace(tmp_path)
    register(root, GOOD, promote="production")
    register(root, OTHER, promote="production")
    (tmp_path / "admin.token").write_text(TOKEN)
    (tmp_path / "predict.token").write_text("predict-token-0123456789")
    servers.append(
        server := start(
            root,
            "--admin-token-file",
            str(tmp_path / "admin.token"),
            "--predict-token-file",
            str(tmp_path / "predict.token"),
        )
    )
    refused = httpx.post(f"{server.url}/admin/rollback")
    assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
    wrong = httpx.post(f"{server.url}/admin/rollback", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    no_token = httpx.post(f"{server.url}/v2/models/iris/infer", json=oip())
    assert no_token.status_code == 401 and "token" in no_token.json()["error"]
    predicted = httpx.post(
        f"{server.url}/v2/models/iris/infer", json=oip(), headers={"authorization": "Bearer predict-token-0123456789"}
    )
    assert predicted.status_code == 200 and predicted.json()["model_version"] == "2"
    done = httpx.post(
        f"{server.url}/admin/rollback",
        json={"reason": "bad numbers"},
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert done.status_code == 200, done.text
    assert "moved back from iris:2 to iris:1" in done.json()["done"]
    assert aliases(root)["production"] == 1
    assert history(root)[-1][1:] == ("rollback", "1", "admin API", "bad numbers")
    deadline = time.monotonic() + 10
    while server.status()["primary"] != "iris:1" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.status()["primary"] == "iris:1"


def test_without_an_admin_token_admin_actions_are_off(tmp_path: Path, servers: list[Server]) -> None:
    root = workspace(tmp_path)
    register(root, GOOD, promote="production")
    servers.append(server := start(root))
    off = httpx.post(f"{server.url}/admin/promote", headers={"authorization": f"Bearer {TOKEN}"})
    assert off.status_code == 403 and "admin endpoints are off" in off.json()["error"]
    assert httpx.get(f"{server.url}/admin/status").json()["primary"] == "iris:1"


def test_serving_goes_on_while_the_registry_database_is_unreachable(
    tmp_path: Path, servers: list[Server], postgres_url: str
) -> None:
    root = workspace(tmp_path, db_url=postgres_url)
    register(root, GOOD, promote="production")
    servers.append(server := start(root))
    database = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(postgres_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
            )
        with Load(server.url, threads=2) as load:
            load.wait_for(lambda: str(server.status()["registry"]).startswith("unreachable"), "the outage to be seen")
            time.sleep(1)
        assert load.failures() == [] and len(load.responses) > 20
        ready = httpx.get(f"{server.url}/v2/health/ready")
        assert ready.status_code == 200 and ready.json()["registry"].startswith("unreachable")
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        register(root, OTHER, promote="production")
        deadline = time.monotonic() + 20
        while server.status()["primary"] != "iris:2" and time.monotonic() < deadline:
            time.sleep(0.05)
        status = server.status()
        assert status["primary"] == "iris:2" and status["registry"] == "ok"
        kinds = [e["kind"] for e in status["events"]]  # type: ignore[union-attr]
        assert kinds.index("registry-down") < kinds.index("registry-up")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_access_log_and_sampled_request_logs(tmp_path: Path, servers: list[Server]) -> None:
    from conveyor.serving._requestlog import read_request_logs

    root = workspace(tmp_path)
    register(root, GOOD, promote="production")
    logs = tmp_path / "requests"
    servers.append(server := start(root, "--log-sample", "1", "--log-dir", str(logs)))
    for i in range(10):
        assert httpx.post(f"{server.url}/v2/models/iris/infer", json=oip(3, i * 3)).status_code == 200
    assert httpx.post(f"{server.url}/invocations", json={"nonsense": 1}).status_code == 400
    server.process.send_signal(signal.SIGINT)  # a clean stop writes what is buffered
    assert server.process.wait(timeout=30) == 0
    logged = read_request_logs(logs)
    assert len(logged) == 30
    assert list(logged.columns[:4]) == list(FEATURES.columns)
    assert logged["_prediction"].tolist() == GOOD.predict(FEATURES.iloc[:30]).tolist()
    assert set(logged["_version"]) == {1} and set(logged["_role"]) == {"primary"}
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    infer = [entry for entry in lines if entry["path"] == "/v2/models/iris/infer"]
    assert len(infer) == 10 and all(e["status"] == 200 and e["version"] == 1 and e["rows"] == 3 for e in infer)
    bad = [entry for entry in lines if entry["path"] == "/invocations"]
    assert bad[0]["status"] == 400 and bad[0]["version"] is None


def test_deploy_commands_drive_a_rollout_through_the_registry(project: Project) -> None:
    register(project.root, GOOD, promote="production")
    register(project.root, OTHER, promote="canary")
    shown = project.ok("deploy", "status", "iris")
    assert "aliases canary -> iris:2, production -> iris:1" in shown
    assert project.ok("deploy", "promote", "iris", "--reason", "looks good").strip() == "iris:2 is now 'production'"
    assert aliases(project.root) == {"production": 2}
    assert "iris:2 taken off trial" not in project.ok("deploy", "rollback", "iris")
    assert aliases(project.root) == {"production": 1}
    register(project.root, BROKEN, promote="canary")
    assert project.ok("deploy", "rollback", "iris", "--reason", "no").strip() == "iris:3 taken off trial"
    moves = history(project.root)
    assert moves[-1][:3] == ("canary", "abort", None) and "rolled back by hand: no" in moves[-1][4]
    missing = project.cvy("deploy", "promote", "iris")
    assert missing.code == 2 and "model 'iris' has no candidate on trial" in missing.err
    unknown = project.cvy("deploy", "status", "irsi")
    assert unknown.code == 2 and "no model 'irsi' in the registry" in unknown.err and "Traceback" not in unknown.err
    down = project.cvy("deploy", "status", "iris", "--url", f"http://127.0.0.1:{port_outside_ephemeral_range()}")
    assert down.code == 69 and "did not answer" in down.err
