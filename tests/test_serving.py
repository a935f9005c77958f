"""``conveyor serve``: a real server process on loopback, a real HTTP client, both protocols,
and every kind of bad request answered with a 4xx naming the problem."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression

from conftest import CONVEYOR_BIN, Project
from conveyor.registry import Registry, Signature
from conveyor.workspace import Workspace
from remote_fixtures import port_outside_ephemeral_range

IRIS = datasets.load_iris(as_frame=True).frame
FEATURES = IRIS.drop(columns="target")
MODEL = LogisticRegression(max_iter=1000).fit(FEATURES, IRIS["target"])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]


def start(project: Project, ref: str, *extra: str) -> Server:
    port = port_outside_ephemeral_range()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    process = subprocess.Popen(
        [CONVEYOR_BIN, "serve", ref, "--port", str(port), *extra],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return Server(url, process)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not become ready in 60 s")


@pytest.fixture(name="server", scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module's tests (starting one takes seconds): a project of its own."""
    root = tmp_path_factory.mktemp("served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([CONVEYOR_BIN, "init"], cwd=root, check=True, env=env, capture_output=True)
    project = Project(root, None)  # type: ignore[arg-type]  # only .root is used
    with Registry.open(Workspace.find(project.root)) as registry:
        registry.register("iris", model=MODEL, signature=Signature.infer(IRIS, label="target"))
        registry.promote("iris:1", to="production")
    server = start(project, "iris@production", "--max-body", "200000")
    try:
        yield server
    finally:
        server.process.kill()
        server.process.wait()
        for stream in (server.process.stdout, server.process.stderr):
            if stream is not None:
                stream.close()


def oip_body(frame: object) -> dict[str, object]:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    return {
        "id": "r1",
        "inputs": [
            {"name": c, "shape": [len(frame)], "datatype": "FP64", "data": frame[c].tolist()} for c in frame.columns
        ],
    }


def test_both_protocols_answer_what_the_model_predicts(server: Server) -> None:
    rows = FEATURES.iloc[:5]
    expected = MODEL.predict(rows).tolist()
    oip = httpx.post(f"{server.url}/v2/models/iris/infer", json=oip_body(rows))
    assert oip.status_code == 200, oip.text
    body = oip.json()
    assert body["model_name"] == "iris" and body["model_version"] == "1" and body["id"] == "r1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["data"] == expected and outputs["predict_proba"]["shape"] == [5, 3]
    split = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
    mlflow = httpx.post(f"{server.url}/invocations", json=split)
    assert mlflow.status_code == 200 and mlflow.json() == {"predictions": expected}, mlflow.text
    csv = httpx.post(
        f"{server.url}/invocations", content=rows.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert csv.json() == {"predictions": expected}
    records = httpx.post(f"{server.url}/invocations", json={"dataframe_records": rows.to_dict(orient="records")})
    assert records.json() == {"predictions": expected}
    # columns in another order, numbers sent as text: the signature puts them right
    shuffled = rows[list(reversed(rows.columns))].astype(str)
    text = httpx.post(f"{server.url}/invocations", json={"dataframe_records": shuffled.to_dict(orient="records")})
    assert text.json() == {"predictions": expected}, text.text


def test_health_metadata_version_and_openapi(server: Server) -> None:
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/ping").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/health").status_code == 200
    meta = httpx.get(f"{server.url}/v2/models/iris").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "sklearn_skops"
    assert [i["name"] for i in meta["inputs"]] == list(FEATURES.columns) and meta["inputs"][0]["datatype"] == "FP64"
    predict = next(o for o in meta["outputs"] if o["name"] == "predict")
    answer = httpx.post(f"{server.url}/v2/models/iris/infer", json=oip_body(FEATURES.iloc[:1])).json()
    assert predict["datatype"] == "INT64" == next(o for o in answer["outputs"] if o["name"] == "predict")["datatype"]
    assert httpx.get(f"{server.url}/v2/models/iris/ready").json()["ready"] is True
    assert httpx.get(f"{server.url}/version").json()["model"] == "iris:1"
    document = httpx.get(f"{server.url}/openapi.json").json()
    assert document["openapi"].startswith("3.") and "/v2/models/{name}/infer" in document["paths"]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (
            "/invocations",
            {"dataframe_records": [{"sepal length (cm)": 5.0}]},
            400,
            "column 'sepal width (cm)' is missing",
        ),
        (
            "/invocations",
            {"dataframe_records": [dict(FEATURES.iloc[0].to_dict(), **{"petal width (cm)": "wide"})]},
            400,
            "column 'petal width (cm)' should be double: got text such as 'wide'",
        ),
        ("/invocations", {"nothing": 1}, 400, "exactly one of"),
        ("/v2/models/iris/infer", {"inputs": [{"name": "x"}]}, 400, "'datatype' must be one of"),
        ("/v2/models/rose/infer", {"inputs": []}, 404, "no model 'rose' here"),
        ("/v2/models/iris/versions/9/infer", {"inputs": []}, 404, "version 9 of 'iris' is not served here"),
    ],
)
def test_bad_requests_are_4xx_naming_the_problem(
    server: Server, path: str, body: object, status: int, message: str
) -> None:
    response = httpx.post(f"{server.url}{path}", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_malformed_bodies_oversized_bodies_and_unknown_routes(server: Server) -> None:
    broken = httpx.post(f"{server.url}/invocations", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
    xml = httpx.post(f"{server.url}/invocations", content=b"<a/>", headers={"content-type": "application/xml"})
    assert xml.status_code == 415
    huge = httpx.post(f"{server.url}/invocations", content=b" " * 300_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "more than the 200,000" in huge.json()["error"]
    missing = httpx.get(f"{server.url}/v3/anything")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong_method = httpx.get(f"{server.url}/invocations")
    assert wrong_method.status_code == 405


def test_a_wrong_reference_is_one_line_before_any_server_starts(project: Project) -> None:
    result = project.run("serve", "iris@production", "--port", "1")
    assert result.code == 2, result
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no model 'iris' in the registry" in lines[0] and "Traceback" not in result.err


def test_a_short_token_is_refused_before_any_server_starts(project: Project) -> None:
    from conveyor.registry import Registry
    from conveyor.workspace import Workspace

    with Registry.open(Workspace.find(project.root)) as registry:
        registry.register("iris", model=MODEL, signature=Signature.infer(IRIS, label="target"))
        registry.promote("iris:1", to="production")
    short = project.run("serve", "iris@production", "--port", "1", env={"CONVEYOR_SERVE_ADMIN_TOKEN": "secret"})
    assert short.code == 2, short
    assert "error: the admin token is shorter than 16 characters" in short.err and "serving" not in short.err
    (project.root / "p.token").write_text("short")
    from_file = project.run("serve", "iris@production", "--port", "1", "--predict-token-file", "p.token")
    assert from_file.code == 2 and "the token is shorter than 16 characters" in from_file.err


def test_the_server_process_answers_several_clients_at_once(server: Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = json.dumps({"dataframe_split": {"columns": list(FEATURES.columns), "data": FEATURES.to_numpy().tolist()}})
    expected = MODEL.predict(FEATURES).tolist()

    def call(_: int) -> list[int]:
        response = httpx.post(f"{server.url}/invocations", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200, response.text
        predictions: list[int] = response.json()["predictions"]
        return predictions

    with ThreadPoolExecutor(8) as pool:
        assert all(result == expected for result in pool.map(call, range(40)))
    assert httpx.get(f"{server.url}/ping").status_code == 200  # and it still answers after them
