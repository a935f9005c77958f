"""Time and inspect conveyor's bundles against MLflow's generated Dockerfiles, for the same model.

The model: scikit-learn's ``LogisticRegression`` on iris, saved once by MLflow 3.17.2
(``mlflow.sklearn.save_model``, skops format, in ``bench/.venv-mlflow-ui``); conveyor registers
that very ``model.skops`` file in a fresh workspace. Both then package it for deployment, each in
a fresh process, --repeat times into fresh folders, the tools taking turns:

* conveyor: ``conveyor build m:1 -o DIR --current-env`` (the folder and its ``.tar.gz``; the
  environment is the one it runs in, as MLflow infers its requirements from the environment it
  saves in);
* MLflow: ``mlflow models generate-dockerfile -m MODEL -d DIR`` (the Dockerfile and the model
  folder ``mlflow models build-docker`` builds its image from; no container engine runs here).

Reported: the median wall time; whether two outputs are byte-identical (conveyor: the archive's
SHA-256; MLflow: a hash of every file's path, mode and content); how much of the environment is
pinned (the packages given an exact version, against the packages the model and server import
and all they depend on); what hadolint says about each Dockerfile; whether the image runs as a
non-root user and has a HEALTHCHECK; and which Kubernetes manifests come with it (checked with
``kubernetes-validate``).

    .venv/bin/python bench/bench_build.py [--repeat 5] [--mlflow-venv bench/.venv-mlflow-ui] [--markdown FILE]

The raw numbers go to ``bench/results/build-YYYYMMDD-HHMMSS.json``; the Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_pipeline as bp
import bench_versioning as bv
from bench_ui import DEFAULT_MLFLOW_VENV, mlflow_python

VENV_BIN = Path(sys.executable).parent

SAVE_MODEL = """
import sys, mlflow.sklearn
from sklearn import datasets
from sklearn.linear_model import LogisticRegression
X, y = datasets.load_iris(return_X_y=True, as_frame=True)
X = X.astype("float64")
mlflow.sklearn.save_model(LogisticRegression(max_iter=1000).fit(X, y), sys.argv[1], serialization_format="skops",
                          input_example=X.head(3))
"""


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        digest.update(f"{rel}\0{path.stat().st_mode:o}\0".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise bv.BenchError(f"{shlex.join(argv)} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return elapsed


def hadolint(dockerfile: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", "--no-fail", "-f", "json", str(dockerfile)],
        capture_output=True,
        text=True,
    )
    findings = json.loads(done.stdout or "[]")
    levels: dict[str, int] = {}
    for finding in findings:
        levels[finding["level"]] = levels.get(finding["level"], 0) + 1
    return {"findings": [f"{f['code']} {f['level']}" for f in findings], "levels": levels}


CLOSURE = """
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
seen, todo = set(), [re.sub(r"[-_.]+", "-", r).lower() for r in sys.argv[1:]]
while todo:
    name = todo.pop()
    if name in seen:
        continue
    try:
        requires = md.distribution(name).requires or []
    except md.PackageNotFoundError:
        continue
    seen.add(name)
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            todo.append(re.sub(r"[-_.]+", "-", requirement.name).lower())
print(len(seen))
"""


def closure_size(python: Path, roots: list[str]) -> int:
    """The roots and everything they depend on, as installed in ``python``'s environment."""
    return int(bv.run_checked([str(python), "-c", CLOSURE, *roots]).strip())


def pinned_lines(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if re.match(r"^[A-Za-z0-9][\w.-]*==", line)]


def inspect(dockerfile: Path) -> dict[str, Any]:
    text = dockerfile.read_text()
    return {
        "non_root_user": bool(re.search(r"^USER\s+(?!root\b|0\b)", text, re.MULTILINE)),
        "healthcheck": "HEALTHCHECK" in text,
        "apt_get_at_build": "apt-get" in text,
        "hadolint": hadolint(dockerfile),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=bv.positive_int, default=5)
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_MLFLOW_VENV)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    python = mlflow_python(args.mlflow_venv.absolute())
    conveyor = bv.conveyor_tool()
    env = {k: v for k, v in conveyor.env.items() if not k.startswith("CONVEYOR_")}
    mlflow_env = dict(env, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        root = Path(tmp)
        model = root / "mlflow-model"
        bv.run_checked([str(python), "-c", SAVE_MODEL, str(model)], env=mlflow_env)
        workspace = root / "ws"
        workspace.mkdir()
        bv.run_checked(["git", "init", "-q"], cwd=workspace)
        bv.run_checked([*conveyor.exe, "init"], cwd=workspace, env=env)
        bv.run_checked([*conveyor.exe, "model", "register", "m", str(model / "model.skops")], cwd=workspace, env=env)
        times: dict[str, list[float]] = {"conveyor": [], "mlflow": []}
        outputs: dict[str, list[Path]] = {"conveyor": [], "mlflow": []}
        for attempt in range(args.repeat + 1):  # the first of each: untimed warm-up
            for tool in ("conveyor", "mlflow") if attempt % 2 == 0 else ("mlflow", "conveyor"):
                out = root / f"{tool}-{attempt}"
                if tool == "conveyor":
                    argv_ = [*conveyor.exe, "build", "m:1", "-o", str(out), "--current-env"]
                    seconds = timed(argv_, workspace, env)
                else:
                    mlflow_bin = str(python.parent / "mlflow")
                    argv_ = [mlflow_bin, "models", "generate-dockerfile", "-m", str(model), "-d", str(out)]
                    seconds = timed(argv_, root, mlflow_env)
                if attempt:
                    times[tool].append(seconds)
                outputs[tool].append(out)
        ours, theirs = outputs["conveyor"][-1], outputs["mlflow"][-1]
        archives = {
            hashlib.sha256((o.parent / f"{o.name}.tar.gz").read_bytes()).hexdigest() for o in outputs["conveyor"]
        }
        trees = {tree_digest(o) for o in outputs["mlflow"]}
        k8s = sorted(str(p) for p in (ours / "k8s").glob("*.yaml"))
        valid = subprocess.run(
            [str(VENV_BIN / "kubernetes-validate"), "--strict", *k8s], capture_output=True, text=True
        )
        our_pins = pinned_lines((ours / "requirements.lock").read_text())
        their_requirements = next(theirs.rglob("requirements.txt"))
        their_pins = pinned_lines(their_requirements.read_text())
        record: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": bv.machine_info(root),
            "versions": {"python": platform.python_version(), "conveyor": conveyor.version, "mlflow": "3.17.2"},
            "loadavg": bp.loadavg(),
            "repeat": args.repeat,
            "conveyor": {
                "seconds": times["conveyor"],
                "median_seconds": statistics.median(times["conveyor"]),
                "distinct_outputs": len(archives),
                "bytes": sum(p.stat().st_size for p in ours.rglob("*") if p.is_file()),
                "pinned": len(our_pins) + 1,  # and conveyor's own wheel, by path
                "closure": len(our_pins) + 1,
                "kubernetes_manifests": [Path(p).name for p in k8s],
                "kubernetes_validate_ok": valid.returncode == 0,
                **inspect(ours / "Dockerfile"),
            },
            "mlflow": {
                "seconds": times["mlflow"],
                "median_seconds": statistics.median(times["mlflow"]),
                "distinct_outputs": len(trees),
                "bytes": sum(p.stat().st_size for p in theirs.rglob("*") if p.is_file()),
                "pinned": len(their_pins),
                "closure": closure_size(python, [p.split("==")[0] for p in their_pins]),
                "kubernetes_manifests": [],
                "kubernetes_validate_ok": None,
                **inspect(theirs / "Dockerfile"),
            },
        }
    c, m = record["conveyor"], record["mlflow"]

    def findings(side: dict[str, Any]) -> str:
        levels = side["hadolint"]["levels"]
        return ", ".join(f"{n} {level}" for level, n in sorted(levels.items())) or "none"

    rows = [
        ("time to package (median)", f"{c['median_seconds']:.2f} s", f"{m['median_seconds']:.2f} s"),
        (
            f"identical outputs over {args.repeat} builds",
            "yes" if c["distinct_outputs"] == 1 else f"no ({c['distinct_outputs']} different)",
            "yes" if m["distinct_outputs"] == 1 else f"no ({m['distinct_outputs']} different)",
        ),
        (
            "packages pinned to an exact version",
            f"{c['pinned']} of {c['closure']} (the whole closure)",
            f"{m['pinned']} of the {m['closure']} they and their dependencies make",
        ),
        ("hadolint on the Dockerfile", findings(c), findings(m)),
        ("runs as a non-root user", "yes" if c["non_root_user"] else "no", "yes" if m["non_root_user"] else "no"),
        ("HEALTHCHECK", "yes" if c["healthcheck"] else "no", "yes" if m["healthcheck"] else "no"),
        ("apt-get at image build", "yes" if c["apt_get_at_build"] else "no", "yes" if m["apt_get_at_build"] else "no"),
        (
            "Kubernetes manifests",
            ", ".join(c["kubernetes_manifests"])
            + (" (kubernetes-validate --strict: ok)" if c["kubernetes_validate_ok"] else ""),
            "none",
        ),
        ("output size", f"{c['bytes']:,} bytes", f"{m['bytes']:,} bytes"),
    ]
    lines = [
        f"Measured {record['date_utc']} on {record['machine']['cpu']} ({record['machine']['cores']} cores), "
        f"Python {record['versions']['python']}; conveyor {record['versions']['conveyor']}, MLflow 3.17.2. "
        f"Load average {record['loadavg']}. `{record['command']}`",
        "",
        "| | conveyor build | mlflow models generate-dockerfile |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c_} |" for a, b, c_ in rows),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.markdown:
        args.markdown.write_text(report)
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    out = bv.RESULTS_DIR / f"build-{stamp}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"[setup] raw numbers in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
