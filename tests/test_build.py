"""``conveyor build``: bundles built from a real delivery, installed into a fresh virtual
environment from their own lock and served by their own entry point with no workspace; rebuilt
byte for byte; their recipes checked by hadolint and kubernetes-validate; bad input refused in
one line with nothing left behind; and serving refused in an environment the model was not
trained in."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CONVEYOR_BIN, Project
from conveyor.build._archive import write_archive
from conveyor.build._lock import Pin, parse, render
from conveyor.errors import ConveyorError
from conveyor.registry import Registry
from conveyor.registry._compat import mismatches
from conveyor.workspace import Workspace
from remote_fixtures import free_port
from test_delivery import IRIS, delivery_project

FEATURES = IRIS.drop(columns="target")
VENV_BIN = Path(sys.executable).parent


def delivered(project: Project) -> Path:
    """A project whose pipeline trained iris:1 and delivered it (which builds its bundle)."""
    delivery_project(project)
    result = project.cvy("deliver")
    assert result.code == 0, result
    assert "✓ build" in result.out, result.out
    return project.root / "bundles" / "iris-1"


def start_bundle(python: Path, folder: Path, cwd: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "VIRTUAL_ENV", "PYTHON"))}
    with (cwd / f"serve-{port}.log").open("w") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [str(python), str(folder / "serve.py"), "--port", str(port), *args],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the bundle's server exited: {(cwd / f'serve-{port}.log').read_text()}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise AssertionError("the bundle's server was not ready within 120 s")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def infer(url: str, rows: int = 5) -> list[int]:
    sample = FEATURES.head(rows)
    body = {
        "inputs": [
            {"name": column, "shape": [rows], "datatype": "FP64", "data": sample[column].tolist()}
            for column in sample.columns
        ]
    }
    answer = httpx.post(url + "/v2/models/iris/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return [int(v) for v in answer.json()["outputs"][0]["data"]]


def expected(project: Project, rows: int = 5) -> list[int]:
    with Registry.open(Workspace.find(project.root)) as registry:
        model = registry.load("iris:1")
    return [int(v) for v in model.predict(FEATURES.head(rows))]


def test_a_bundle_serves_predictions_from_a_fresh_environment_with_no_workspace(
    project: Project, tmp_path: Path
) -> None:
    folder = delivered(project)
    archive = folder.parent / "iris-1.tar.gz"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    wheel = next(f for f in files if f.startswith("wheels/conveyor-"))
    assert files == sorted(
        [
            ".dockerignore",
            "Dockerfile",
            "README.md",
            "bundle.json",
            "k8s/deployment.yaml",
            "k8s/hpa.yaml",
            "k8s/pdb.yaml",
            "k8s/service.yaml",
            "kserve/inferenceservice.yaml",
            "model/model.skops",
            "requirements.lock",
            "serve.py",
            wheel,
        ]
    )
    manifest = json.loads((folder / "bundle.json").read_text())
    with Registry.open(Workspace.find(project.root)) as registry:
        version = registry.get("iris:1")
        environment = registry.environment_of(version)
        bundles = registry.bundles("iris:1")
    assert environment is not None
    assert manifest["model"]["artifact"]["hash"] == version.artifact_hash
    assert manifest["lineage"]["run"] == version.run_id and manifest["lineage"]["stage"] == "train"
    assert manifest["lineage"]["commit"] == version.git_commit
    assert set(manifest["lineage"]["deps"]) == {"train.py", "data/train.csv"}
    checks = manifest["checks_at_registration"]
    assert [c["stage"] for c in checks] == ["evaluate"] and checks[0]["passed"]
    lock = (folder / "requirements.lock").read_text()
    pins = parse(lock)
    for package in ("scikit-learn", "numpy", "scipy", "skops", "pandas", "starlette", "uvicorn", "joblib"):
        assert pins[package] == environment.packages[package], package  # the training run's versions
    assert "pyarrow" not in pins and "httpx" not in pins  # not needed to serve a bundle
    assert lock.rstrip().splitlines()[-1] == f"./{wheel}"
    assert [b.sha256 for b in bundles] == [manifest_sha(archive)]
    # deploy it somewhere else: the archive alone, a fresh venv from its lock, no workspace
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(deploy, filter="data")
    unpacked = deploy / "iris-1"
    assert (unpacked / "bundle.json").read_bytes() == (folder / "bundle.json").read_bytes()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "-r", "requirements.lock"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout  # the lock is complete: every requirement met
    elsewhere = tmp_path / "not-a-workspace"
    elsewhere.mkdir()
    proc, url = start_bundle(venv / "bin" / "python", unpacked, elsewhere)
    try:
        assert infer(url) == expected(project)
        meta = httpx.get(url + "/v2/models/iris", timeout=10).json()
        assert meta["versions"] == ["1"] and meta["platform"].startswith("sklearn")
        status = httpx.get(url + "/admin/status", timeout=10)
        assert status.status_code == 200
    finally:
        stop(proc)
    assert not (elsewhere / ".conveyor").exists()


def manifest_sha(archive: Path) -> str:
    import hashlib

    return hashlib.sha256(archive.read_bytes()).hexdigest()


def test_a_rebuild_is_byte_identical_traceable_and_its_recipes_pass_their_validators(
    project: Project, tmp_path: Path
) -> None:
    delivery_project(project)
    project.ok("run")
    project.ok("model", "register", "iris", "models/model.skops")
    first = json.loads(project.ok("build", "iris:1", "-o", str(tmp_path / "one" / "iris"), "--json"))
    # later: a tag, a description, another umask, another folder, another process
    project.ok("model", "tag", "iris:1", "team=vision")
    project.ok("model", "describe", "iris:1", "described after the first build")
    (project.root / "sub").mkdir()
    rebuilt = subprocess.run(
        [CONVEYOR_BIN, "build", "iris:1", "-o", str(tmp_path / "two" / "other"), "--json"],
        cwd=project.root / "sub",
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o077),
        timeout=120,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    second = json.loads(rebuilt.stdout)
    assert first["sha256"] == second["sha256"]
    assert Path(first["archive"]).read_bytes() == Path(second["archive"]).read_bytes()
    one, two = Path(first["folder"]), Path(second["folder"])
    listed = sorted(p.relative_to(one).as_posix() for p in one.rglob("*"))
    assert listed == sorted(p.relative_to(two).as_posix() for p in two.rglob("*"))
    for rel in listed:
        a, b = one / rel, two / rel
        assert a.stat().st_mode == b.stat().st_mode, rel
        assert a.is_dir() or a.read_bytes() == b.read_bytes(), rel
    assert first["sha256"] == manifest_sha(Path(first["archive"]))
    shown = project.ok("model", "show", "iris:1")
    assert f"sha256:{first['sha256']}" in shown
    traced = project.ok("model", "trace", first["archive"])
    assert f"bundle sha256:{first['sha256']} was built from iris:1" in traced
    assert "stage train" in traced and "data/train.csv" in traced
    assert "iris:1" in project.ok("model", "trace", first["sha256"][:16])
    folder = Path(first["folder"])
    # the Dockerfile: no finding at all from hadolint
    lint = subprocess.run(
        [str(VENV_BIN / "hadolint"), "--no-color", "Dockerfile"], cwd=folder, capture_output=True, text=True
    )
    assert lint.returncode == 0 and lint.stdout.strip() == "", lint.stdout + lint.stderr
    docker = (folder / "Dockerfile").read_text()
    assert "USER 10001:10001" in docker and "HEALTHCHECK" in docker and "/v2/health/ready" in docker
    assert re.search(r"^FROM python:3\.\d+\.\d+-slim$", docker, re.MULTILINE)
    # the Kubernetes manifests: valid for a recent Kubernetes, strict (no unknown fields)
    manifests = sorted(str(p) for p in (folder / "k8s").glob("*.yaml"))
    assert len(manifests) == 4
    valid = subprocess.run(
        [str(VENV_BIN / "kubernetes-validate"), "--strict", "-k", "1.34.0", *manifests], capture_output=True, text=True
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr
    kinds = {yaml.safe_load(Path(m).read_text())["kind"] for m in manifests}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    deployment = yaml.safe_load((folder / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["image"] == "iris:v1" and container["securityContext"]["runAsNonRoot"] is True
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    kserve = yaml.safe_load((folder / "kserve" / "inferenceservice.yaml").read_text())
    assert (kserve["apiVersion"], kserve["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    predictor = kserve["spec"]["predictor"]["containers"][0]
    assert predictor["name"] == "kserve-container" and predictor["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"}
    ]
    # a custom image and base image change the recipes, and so the bytes
    third = json.loads(
        project.ok("build", "iris:1", "-o", str(tmp_path / "three"), "--image", "registry.example.com/iris:1", "--json")
    )
    assert third["sha256"] != first["sha256"]
    assert "image: registry.example.com/iris:1" in (tmp_path / "three" / "k8s" / "deployment.yaml").read_text()


def test_build_refuses_bad_input_in_one_line_and_leaves_nothing_behind(project: Project, tmp_path: Path) -> None:
    delivery_project(project)
    project.ok("run")
    out = tmp_path / "out"
    cases = [
        (("build", "nope@production", "-o", str(out)), "no model 'nope' in the registry"),
    ]
    for args, message in cases:
        result = project.cvy(*args)
        assert result.code == 2 and message in result.err, result
    project.ok("model", "register", "iris", "models/model.skops")
    for args, message, code in [
        (("build", "iris@production", "-o", str(out)), "model 'iris' has no alias 'production'", 2),
        (("build", "iris:7", "-o", str(out)), "model 'iris' has no version 7", 2),
    ]:
        result = project.cvy(*args)
        assert result.code == code and message in result.err, result
    # a model file that no conveyor run produced: no recorded environment
    from sklearn.linear_model import LogisticRegression

    with Registry.open(Workspace.find(project.root)) as registry:
        registry.register("hand", model=LogisticRegression(max_iter=1000).fit(FEATURES, IRIS["target"]))
    result = project.cvy("build", "hand:1", "-o", str(out))
    assert result.code == 2, result
    assert "hand:1 has no recorded environment: it was not produced by a conveyor run" in result.err
    assert "--current-env" in result.err and "Traceback" not in result.err and len(result.err.splitlines()) == 1
    assert json.loads(project.ok("build", "hand:1", "-o", str(out), "--current-env", "--json"))["ref"] == "hand:1"
    # the folder exists now: never written over
    result = project.cvy("build", "hand:1", "-o", str(out))
    assert result.code == 2 and "already exists: a bundle is never written over another" in result.err
    assert len(result.err.splitlines()) == 1 and "Traceback" not in result.err
    # the artifact gone from the cache, and no remote
    with Registry.open(Workspace.find(project.root)) as registry:
        digest = registry.get("iris:1").artifact_hash
    from conveyor.versioning._repo import Repo

    with Repo(Workspace.find(project.root)) as repo:
        cached = Path(repo.odb.path(digest))
    pushed_copy = cached.read_bytes()
    cached.chmod(0o644)
    cached.unlink()
    result = project.cvy("build", "iris:1", "-o", str(tmp_path / "missing"))
    assert result.code == 66 and "is not in the cache and no remote is configured" in result.err, result
    assert len(result.err.splitlines()) == 1
    # with a remote that lacks it too
    (tmp_path / "remote").mkdir()
    project.ok("remote", "add", "-d", "shared", str(tmp_path / "remote"))
    result = project.cvy("build", "iris:1", "-o", str(tmp_path / "missing"))
    assert result.code == 66 and "is in neither the cache nor remote 'shared'" in result.err, result
    assert len(result.err.splitlines()) == 1
    # put it back, push it, drop it locally again: the build fetches it
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(pushed_copy)
    project.ok("push")
    cached.chmod(0o644)
    cached.unlink()
    fetched = json.loads(project.ok("build", "iris:1", "-o", str(tmp_path / "fetched"), "--json"))
    assert Path(fetched["folder"], "model", "model.skops").read_bytes() == pushed_copy
    assert not (tmp_path / "missing").exists() and not (tmp_path / "missing.tar.gz").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers


def _retrained_with_other_sklearn(project: Project) -> str:
    """Rewrite iris:1's run's recorded package list to another scikit-learn minor version."""
    import sklearn

    major, minor = sklearn.__version__.split(".")[:2]
    other = f"{major}.{int(minor) - 1 if int(minor) > 0 else int(minor) + 1}.0"
    from conveyor.store import _schema as t
    from conveyor.store._db import Database

    ws = Workspace.find(project.root)
    with Registry.open(ws) as registry:
        run_id = registry.get("iris:1").run_id
    db = Database.open(ws)
    try:
        with db.transaction("test: another environment") as conn:
            environment = json.loads(
                conn.execute(sa.select(t.runs.c.environment).where(t.runs.c.id == run_id)).scalar_one()
            )
            row = conn.execute(
                sa.select(t.environments.c.packages).where(t.environments.c.packages_hash == environment["packages"])
            ).scalar_one()
            packages = [f"scikit-learn=={other}" if p.startswith("scikit-learn==") else p for p in json.loads(row)]
            conn.execute(
                t.environments.update()
                .where(t.environments.c.packages_hash == environment["packages"])
                .values(packages=json.dumps(packages))
            )
    finally:
        db.close()
    return other


def test_serve_refuses_a_model_trained_with_another_scikit_learn_minor_version(
    project: Project, tmp_path: Path
) -> None:
    import sklearn

    delivery_project(project)
    project.ok("run")
    project.ok("model", "register", "iris", "models/model.skops")
    other = _retrained_with_other_sklearn(project)
    port = free_port()
    refused = project.run("serve", "iris:1", "--port", str(port), timeout=60)
    assert refused.code == 78, refused
    line = refused.err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"iris:1 was trained with scikit-learn {other} (this environment has {sklearn.__version__})" in line
    assert f"install scikit-learn=={other}" in line and "--allow-env-mismatch" in line
    # allowed: it serves, and says why it should not
    with (tmp_path / "serve.log").open("w") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [CONVEYOR_BIN, "serve", "iris:1", "--port", str(port), "--allow-env-mismatch", "--log-sample", "0"],
            cwd=project.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert infer(url) == expected(project)
    finally:
        stop(proc)
    assert f"scikit-learn {other}" in (tmp_path / "serve.log").read_text()
    # the same check guards a bundle's server, against its own lock
    folder = Path(json.loads(project.ok("build", "iris:1", "-o", str(tmp_path / "b"), "--json"))["folder"])
    assert f"scikit-learn=={other}" in (folder / "requirements.lock").read_text()
    refused = subprocess.run(
        [sys.executable, str(folder / "serve.py"), "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 78 and "per the bundle's requirements.lock" in refused.stderr, refused.stderr


@pytest.mark.parametrize(
    ("trained", "installed", "found"),
    [
        ("1.5.2", "1.5.0", False),  # another patch release: fine
        ("1.5.2", "1.6.0", True),  # another minor release: refused
        ("1.5.2", "1.5.2rc1", False),
    ],
)
def test_scikit_learn_must_match_to_the_minor_version(trained: str, installed: str, found: bool) -> None:
    from conveyor.registry._records import Lineage, ModelVersion

    version = ModelVersion(
        "m", 1, "h", 1, "model.skops", "sklearn", "skops", {}, None, "", 0.0, "", None, None, "", Lineage()
    )
    problems = mismatches(
        version, {"scikit-learn": trained, "numpy": "1.26.4"}, {"scikit-learn": installed, "numpy": "1.26.0"}
    )
    assert bool(problems) is found
    older = mismatches(version, {"numpy": "2.0.1"}, {"numpy": "1.26.4", "scikit-learn": installed})
    assert [m.package for m in older] == ["numpy"]  # NumPy 1 cannot read what NumPy 2 pickled
    assert mismatches(version, {"numpy": "1.26.4"}, {"numpy": "2.0.1", "scikit-learn": installed}) == []


_names = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,5})?", fullmatch=True)
_versions = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}(rc[0-9])?", fullmatch=True)


@given(st.dictionaries(_names, _versions, max_size=12))
def test_a_lock_reads_back_the_pins_it_was_written_with(pinned: dict[str, str]) -> None:
    pins = [Pin(name, version, "run") for name, version in sorted(pinned.items())]
    assert parse(render(pins, ref="m:1", wheel="conveyor-0.1.0-py3-none-any.whl")) == pinned


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}", fullmatch=True), st.binary(max_size=200), min_size=1, max_size=8
    ),
    st.integers(min_value=0, max_value=2**31),
)
def test_an_archive_depends_on_the_files_alone(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], touched: int
) -> None:
    digests = []
    leaves = {rel: data for rel, data in files.items() if not any(o.startswith(rel + "/") for o in files)}
    for attempt in range(2):
        folder = tmp_path_factory.mktemp("tree")
        for rel, data in leaves.items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (touched + attempt, touched + attempt))
        digests.append(write_archive(folder, folder.parent / f"{folder.name}.tar.gz", top="b", mtime=1_700_000_000))
    assert digests[0] == digests[1]


def test_a_build_killed_at_any_moment_leaves_no_bundle_or_a_whole_one(project: Project, tmp_path: Path) -> None:
    import random

    delivery_project(project)
    project.ok("run")
    project.ok("model", "register", "iris", "models/model.skops")
    out = tmp_path / "bundles" / "iris"
    archive = out.parent / "iris.tar.gz"
    rng = random.Random(7)
    outcomes = set()
    for _attempt in range(8):
        proc = subprocess.Popen(
            [CONVEYOR_BIN, "build", "iris:1", "-o", str(out)],
            cwd=project.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.0, 1.5))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with Registry.open(Workspace.find(project.root)) as registry:
            recorded = {b.sha256 for b in registry.bundles("iris:1")}
        if out.exists():  # whole: every file, its archive, and the registry knows that archive
            assert (out / "bundle.json").is_file() and (out / "serve.py").is_file()
            assert manifest_sha(archive) in recorded
            outcomes.add("whole")
            break
        outcomes.add("archive only" if archive.exists() else "nothing")
        if archive.exists():
            assert manifest_sha(archive) in recorded  # a killed build's archive is one the registry knows
    # whatever was left, the next build finishes the job (and sweeps what the killed ones staged)
    if not out.exists():
        built = json.loads(project.ok("build", "iris:1", "-o", str(out), "--json"))
        assert built["sha256"] == manifest_sha(archive)
    assert sorted(p.name for p in out.parent.iterdir()) == ["iris", "iris.tar.gz"], outcomes


def test_a_bundle_that_was_changed_or_damaged_is_refused_in_one_line(project: Project, tmp_path: Path) -> None:
    delivery_project(project)
    project.ok("run")
    project.ok("model", "register", "iris", "models/model.skops")
    folder = Path(json.loads(project.ok("build", "iris:1", "-o", str(tmp_path / "b"), "--json"))["folder"])

    def serve(bundle: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CONVEYOR_BIN, "serve", "--bundle", str(bundle), "--port", str(free_port())],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(folder, target)
        return target

    model = copy("model-changed")
    (model / "model" / "model.skops").write_bytes(b"PK" + (model / "model" / "model.skops").read_bytes()[2:-1])
    cases = {model: "does not match its recorded hash"}
    broken = copy("manifest-broken")
    (broken / "bundle.json").write_text('{"bundle_format": 1, "model": {"name": "iris"}}')
    cases[broken] = "not a valid bundle manifest (KeyError"
    escape = copy("manifest-escapes")
    manifest = json.loads((escape / "bundle.json").read_text())
    manifest["model"]["artifact"]["path"] = "../../model.skops"
    (escape / "bundle.json").write_text(json.dumps(manifest))
    cases[escape] = "the artifact must be model/model.skops inside the bundle"
    cases[tmp_path / "nowhere"] = "no such bundle folder"
    for bundle, message in cases.items():
        result = serve(bundle)
        assert result.returncode != 0 and message in result.stderr, (bundle.name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    both = project.run("serve", "iris:1", "--bundle", str(folder))
    assert both.code == 2 and "not both" in both.err
    workers = project.run("serve", "--bundle", str(folder), "--workers", "2")
    assert workers.code == 2 and "--workers cannot be used with --bundle" in workers.err


def test_a_pickled_model_pins_joblib_and_its_libraries_not_the_standard_library(
    project: Project, tmp_path: Path
) -> None:
    import datetime as dt
    import functools

    import joblib
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(max_depth=2).fit(FEATURES, IRIS["target"])
    joblib.dump(
        {"model": model, "trained": dt.date(2026, 11, 28), "scale": functools.partial(float)},
        project.root / "model.joblib",
    )
    project.ok("model", "register", "tree", "model.joblib")
    built = json.loads(project.ok("build", "tree:1", "-o", str(tmp_path / "t"), "--current-env", "--json"))
    pins = built["packages"]
    assert {"joblib", "scikit-learn", "numpy", "scipy"} <= set(pins)
    assert not {"datetime", "functools", "builtins"} & set(pins)
    # a pickle of the project's own class: no distribution provides it
    project.write("features.py", "class Scaler:\n    factor = 2.0\n")
    subprocess.run(
        [sys.executable, "-c", "import joblib, features; joblib.dump(features.Scaler(), 'own.joblib')"],
        cwd=project.root,
        check=True,
    )
    project.ok("model", "register", "own", "own.joblib", "--flavor", "python")
    result = project.cvy("build", "own:1", "-o", str(tmp_path / "o"), "--current-env")
    assert result.code == 2 and "own:1 is a pickle that imports features" in result.err, result
    assert not (tmp_path / "o").exists()


def test_package_lists_and_bundle_records_on_sqlite_and_postgresql(project: Project, database_url: str) -> None:
    from conveyor.config import set_value
    from conveyor.store import RunRecord, RunStore, environment_info
    from conveyor.store._records import environment_packages

    set_value(project.root / ".conveyor", "store.url", database_url, local=True)
    ws = Workspace.find(project.root)
    with RunStore.open(ws) as store:
        for run_id in ("20261128-000001-aaaaaa", "20261128-000002-bbbbbb"):  # one environment, stored once
            store.start_run(RunRecord(id=run_id, started_at=1.0, environment=environment_info()))
        store.start_run(RunRecord(id="20261128-000003-cccccc", started_at=2.0, environment={"packages": "f" * 64}))
        recorded = store.environment_of("20261128-000002-bbbbbb")
        assert recorded is not None and len(recorded.packages) == len(environment_packages())
        assert recorded.version_of("scikit_learn") == recorded.packages["scikit-learn"]
        assert store.environment_of("20261128-000003-cccccc") is None  # made elsewhere: its list is unknown
    with Registry.open(ws) as registry:
        from sklearn.linear_model import LogisticRegression

        version = registry.register("m", model=LogisticRegression(max_iter=1000).fit(FEATURES, IRIS["target"]))
        digest = "ab" * 32
        registry.record_bundle(version, sha256=digest, size=10, options={"image": "m:v1"})
        registry.record_bundle(version, sha256=digest, size=10, options={"image": "m:v1"})  # rebuilt: one row
        registry.record_bundle(version, sha256="cd" * 32, size=11)
        assert sorted(b.sha256 for b in registry.bundles("m:1")) == ["ab" * 32, "cd" * 32]
        assert registry.find_bundle(digest[:12]).ref == "m:1"
        with pytest.raises(ConveyorError, match="no bundle"):
            registry.find_bundle("ef" * 32)
        with pytest.raises(ConveyorError, match="is not a bundle's SHA-256"):
            registry.find_bundle("xyz")
