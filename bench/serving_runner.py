"""The helper processes of ``bench_serving.py``; none of them is timed itself. Modes:

* ``prepare`` (MLflow's venv): train scikit-learn's ``LogisticRegression`` on the wine data set that ships with
  scikit-learn (178 rows, 13 named float features, 3 classes) as version 1, and a second one (``C=0.05``) as
  version 2 for the hot swap; save version 1 once as an MLflow model folder (``mlflow.sklearn.save_model`` with
  the signature ``infer_signature`` gives, skops, MLflow 3's default format outside Databricks) and each version's
  skops file, so conveyor registers the very bytes MLflow serves. Writes the training table (CSV, for conveyor's
  ``--signature-from``), the two request bodies (MLflow's ``dataframe_split``, 1 and 100 rows) and the predictions
  each version gives for them, which every server's answer is checked against.
* ``static`` (conveyor's venv): a server that answers every request with the same small JSON body, to measure the
  load generator's own ceiling: ``--kind raw`` is asyncio's bare protocol on uvloop (no framework: the fastest
  Python can answer, so what the generator reaches against it is a floor of its own ceiling); ``--kind asgi`` is a
  bare ASGI app on uvicorn with uvloop and httptools, the stack conveyor's server runs on (the most a server on it
  can answer here, before any routing, JSON or model).

    python bench/serving_runner.py prepare --out FOLDER
    python bench/serving_runner.py static --kind raw --port 20001
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SEED = 0
LABEL = "target"
ROWS = (1, 100)
RESPONSE = b'{"predictions": [0]}'


def prepare(out: Path) -> dict[str, Any]:
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import sklearn
    import skops.io as sio
    from mlflow.models import infer_signature
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    out.mkdir(parents=True, exist_ok=True)
    frame = load_wine(as_frame=True).frame
    features = frame.drop(columns=[LABEL]).astype("float64")
    labels = frame[LABEL].astype("int64")
    models = {
        1: LogisticRegression(max_iter=10_000, random_state=SEED).fit(features, labels),
        2: LogisticRegression(C=0.05, max_iter=10_000, random_state=SEED).fit(features, labels),
    }
    folder = out / "mlflow-model"
    signature = infer_signature(features, models[1].predict(features))
    mlflow.sklearn.save_model(
        models[1],
        str(folder),
        serialization_format="skops",
        signature=signature,
        input_example=features.head(2),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={_version('skops')}"],
    )
    skops_file = folder / "model.skops"
    (out / "model-v1.skops").write_bytes(skops_file.read_bytes())  # the very bytes MLflow serves
    sio.dump(models[2], out / "model-v2.skops")
    frame.assign(**{LABEL: labels}).to_csv(out / "train.csv", index=False)

    rng = np.random.default_rng(SEED)
    payloads = {}
    for rows in ROWS:
        sample = features.iloc[rng.choice(len(features), size=rows, replace=rows > len(features))]
        body = {"dataframe_split": {"columns": list(sample.columns), "data": sample.to_numpy().tolist()}}
        path = out / f"payload-{rows}.json"
        path.write_text(json.dumps(body))
        payloads[str(rows)] = {
            "file": str(path),
            "bytes": path.stat().st_size,
            "predictions": {str(v): [int(p) for p in m.predict(sample)] for v, m in models.items()},
        }
    reloaded = mlflow.sklearn.load_model(str(folder))
    same = [int(p) for p in reloaded.predict(features)] == [int(p) for p in models[1].predict(features)]
    differ = int((models[1].predict(features) != models[2].predict(features)).sum())
    return {
        "dataset": "sklearn.datasets.load_wine",
        "rows": len(frame),
        "features": list(features.columns),
        "classes": sorted(int(c) for c in labels.unique()),
        "mlflow_model": str(folder),
        "mlflow_files": {p.name: p.stat().st_size for p in sorted(folder.iterdir())},
        "skops": {"1": str(out / "model-v1.skops"), "2": str(out / "model-v2.skops")},
        "train_csv": str(out / "train.csv"),
        "payloads": payloads,
        "reloaded_predicts_alike": same,
        "versions_disagree_on_rows": differ,
        "accuracy": {str(v): float(m.score(features, labels)) for v, m in models.items()},
        "signature": signature.to_dict(),
        "mlflow": mlflow.__version__,
        "sklearn": sklearn.__version__,
        "skops_version": _version("skops"),
    }


def _version(name: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -------------------------------------------------------------------------------------------- static servers


def serve_raw(port: int) -> None:
    """HTTP/1.1 keep-alive on a bare asyncio protocol: read a request's head and body, answer the same bytes."""
    import asyncio

    import uvloop

    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(RESPONSE)).encode()
        + b"\r\n\r\n"
        + RESPONSE
    )

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                length = 0
                at = head.find(b"content-length:")
                if at >= 0:
                    length = int(head[at + 15 :].split(b"\r\n", 1)[0])
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                self.transport.write(answer)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    uvloop.run(main())


def serve_asgi(port: int) -> None:
    import uvicorn

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(RESPONSE)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": RESPONSE})

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A helper process of bench_serving.py.")
    parser.add_argument("mode", choices=["prepare", "static"])
    parser.add_argument("--out", type=Path, help="prepare: the folder to write to")
    parser.add_argument("--kind", choices=["raw", "asgi"], default="raw", help="static: which server")
    parser.add_argument("--port", type=int, help="static: the port")
    args = parser.parse_args(argv)
    if args.mode == "prepare":
        record = prepare(args.out)
        (args.out / "prepared.json").write_text(json.dumps(record, indent=1))
        return 0
    if args.kind == "raw":
        serve_raw(args.port)
    else:
        serve_asgi(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
