"""Time conveyor's model registry and MLflow's side by side, on SQLite and on PostgreSQL.

The model: scikit-learn's ``LogisticRegression`` trained on iris, saved once with skops (``model.skops``, about
9 KiB; skops is the default format of both tools for scikit-learn). conveyor registers that file; MLflow registers
an MLflow model folder made once around the very same bytes (``MLmodel``, ``requirements.txt``, ``conda.yaml``,
``python_env.yaml``, ``model.skops``), as ``mlflow.sklearn.save_model`` writes it.

Each tool works in a fresh work folder (conveyor: a git repository with a workspace; MLflow: an experiment whose
artifact root is a folder in it) on a fresh database of each backend:

* SQLite: conveyor's default file (``.conveyor/store/conveyor.db``), MLflow's ``sqlite:///FOLDER/mlflow.db``;
* PostgreSQL: one throw-away database per tool and workload on the local server (``CONVEYOR_DB`` for conveyor,
  ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI`` for MLflow), created through the admin URL of the tests
  (``$CONVEYOR_TEST_PG_URL``, else ``python tests/_postgres.py``) and dropped afterwards.

Tables are created untimed (``registry_runner.py init``: conveyor opens its registry; MLflow creates the
experiment, which runs its migrations). Workloads, each operation in its own measured process
(``registry_runner.py``, or conveyor's CLI), timed by the launcher of ``bench_versioning.py`` (wall time and peak
RSS of the process tree), the runner also timing the calls inside:

* lifecycle, in a fresh registry per run: register --versions (200) versions of model ``iris`` from that file, one API
  call each (conveyor ``Registry.register(name, path)``; MLflow per version a run that logs the model folder as its
  artifact, then ``mlflow.register_model("runs:/RUN/model", name)``), both must then report that many versions, with
  the stored artifact equal to the file; move alias ``production`` --moves (100) times over versions 1, 2, ...
  (``promote`` / ``set_registered_model_alias``), both must then resolve it to the last target; resolve
  ``iris@production`` to a loaded model in a fresh process (``Registry.load`` /
  ``mlflow.sklearn.load_model("models:/iris@production")``), checked by its predictions (and in a second process, 10
  times more after the first, for the time of a load once the registry is open); conveyor only: which version was
  production at a time T between two moves (``conveyor model history iris --alias production --at T`` and
  ``Registry.alias_at``): MLflow keeps no history of alias moves, so it gets "not supported", not a number.
* listing, on one registry per tool filled untimed with --listed (2,000) versions of model ``big`` (all pointing at
  one stored model, as conveyor's do at one cache object): every version through the API in a process
  (``Registry.versions`` / ``MlflowClient.search_model_versions("name='big'")``; in a second process, twice, for the
  time of the call once the registry is open) and with ``conveyor model show big``; every model through the API
  (``Registry.models`` / ``search_registered_models``) and with ``conveyor model list``. MLflow has no CLI command
  that lists registered models or versions (``mlflow models`` serves and predicts), so conveyor's CLI processes are
  set against MLflow's API processes, marked as such.

Median of --repeat runs (3); the tools alternate run by run, so load changes hit both alike; an untimed warm-up
of every operation first (bytecode and page caches). Every exit code and result is checked: a failed measurement
is reported loudly and gets no ratio. Ratios are MLflow's time ÷ conveyor's.

    .venv/bin/python bench/bench_registry.py [--quick] [--versions 200] [--moves 100] [--listed 2000]
        [--repeat 3] [--backends sqlite,postgresql] [--only both] [--mlflow-venv bench/.venv-mlflow]
        [--workdir bench/.work] [--keep] [--markdown FILE]

MLflow goes into its own venv (default ``bench/.venv-mlflow``), created with the pinned ``MLFLOW_REQUIREMENTS``
when missing: ``mlflow-skinny`` (the tracking and registry client with the SQL store; the full ``mlflow`` adds the
server and UI) with the SQL and scikit-learn extras it needs, at the library versions of conveyor's venv. The raw
numbers go to ``bench/results/registry-YYYYMMDD-HHMMSS.json`` (with both venvs' ``pip freeze``); the Markdown
tables to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_checks as bc
import bench_pipeline as bp
import bench_remote as br
import bench_versioning as bv

BENCH_DIR = bv.BENCH_DIR
ROOT = BENCH_DIR.parent
RUNNER = BENCH_DIR / "registry_runner.py"
CONVEYOR_CLI = Path(sys.executable).parent / "conveyor"
DEFAULT_MLFLOW_VENV = BENCH_DIR / ".venv-mlflow"
MLFLOW_VERSION = "3.17.2"
MLFLOW_REQUIREMENTS = [
    f"mlflow-skinny=={MLFLOW_VERSION}",
    "sqlalchemy==2.1.9",  # the SQL store (mlflow-skinny leaves it out)
    "alembic==1.20.1",
    "psycopg[binary]==3.3.9",  # PostgreSQL
    "scikit-learn==1.9.1",  # mlflow.sklearn; the versions of conveyor's venv
    "skops==0.16.0",
    "pandas==3.1.1",  # mlflow.sklearn imports it
]
RELEVANT = ("conveyor", "mlflow-skinny", "sqlalchemy", "alembic", "psycopg", "scikit-learn", "skops", "numpy")
PG_URL_ENV = "CONVEYOR_TEST_PG_URL"
TOOLS = ("conveyor", "mlflow")
BACKENDS = ("sqlite", "postgresql")
TITLES = {"conveyor": "conveyor", "mlflow": "MLflow", "sqlite": "SQLite", "postgresql": "PostgreSQL"}

MODEL = "iris"
BIG = "big"
ALIAS = "production"
WARM_LOADS = 10


@dataclass(frozen=True)
class Sizes:
    versions: int
    moves: int
    listed: int


DEFAULT_SIZES = Sizes(versions=200, moves=100, listed=2_000)
QUICK_SIZES = Sizes(versions=20, moves=10, listed=200)
WARM_UP_SIZES = Sizes(versions=3, moves=2, listed=5)
DEFAULT_REPEAT = 3


def progress(message: str) -> None:
    bv.progress(message)


# ----------------------------------------------------------------------------------------------------- tools


def conveyor_tool(run_dir: Path) -> bv.Tool:
    tool = bc.conveyor_tool(run_dir)
    tool.env.pop("CONVEYOR_DB", None)  # the database comes from each workload
    return tool


def mlflow_tool(venv: Path, run_dir: Path) -> bv.Tool:
    python = venv / "bin" / "python"
    # No usage reports (a background thread that would try the network), as DVC runs with analytics off.
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    for key in [k for k in env if k.startswith("MLFLOW_") and k != "MLFLOW_DISABLE_TELEMETRY"]:
        del env[key]
    if not python.exists():
        interpreter = shutil.which("python3.11") or sys.executable
        progress(f"[setup] creating the MLflow venv {venv} with {' '.join(MLFLOW_REQUIREMENTS)} ...")
        bv.run_checked([interpreter, "-m", "venv", str(venv)])
        bv.run_checked([str(python), "-m", "pip", "install", "--quiet", *MLFLOW_REQUIREMENTS])
    probe = [str(python), "-c", "import mlflow, mlflow.sklearn, sqlalchemy, psycopg; print(mlflow.__version__)"]
    tool = bv.Tool("mlflow", [str(python)], env)
    tool.version = bv.run_checked(probe, env=env).strip().splitlines()[-1]
    if tool.version != MLFLOW_VERSION:
        raise bv.BenchError(f"{venv} has MLflow {tool.version}; this benchmark compares against {MLFLOW_VERSION}")
    tool.python_version = bv.run_checked([str(python), "-c", "import platform; print(platform.python_version())"])
    tool.python_version = tool.python_version.strip()
    bp.use_bytecode_cache(tool, run_dir)
    return tool


def relevant(freeze: list[str]) -> dict[str, str]:
    found = {}
    for line in freeze:
        name, sep, version = line.partition("==")
        if sep and name.lower().replace("_", "-") in RELEVANT:
            found[name.lower().replace("_", "-")] = version
        elif " @ " in line and line.split(" @ ")[0].lower() in RELEVANT:
            found[line.split(" @ ")[0].lower()] = "editable/local"
    return found


# -------------------------------------------------------------------------------------------------- backends


def postgres_admin_url() -> str:
    """The tests' admin URL: $CONVEYOR_TEST_PG_URL, else what ``tests/_postgres.py`` prints (it starts the
    local server and creates the test role when needed)."""
    url = os.environ.get(PG_URL_ENV, "").strip()
    if url:
        return url
    return bv.run_checked([sys.executable, str(ROOT / "tests" / "_postgres.py")]).strip().splitlines()[-1]


@dataclass
class Backend:
    name: str  # sqlite or postgresql
    admin: Any = None  # PostgreSQL: an AUTOCOMMIT engine on the admin URL
    server: str = ""

    @classmethod
    def postgresql(cls) -> Backend:
        from sqlalchemy import create_engine, text

        engine = create_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT", pool_size=1)
        try:
            with engine.connect() as connection:
                server = str(connection.execute(text("SHOW server_version")).scalar())
        except Exception as error:
            engine.dispose()
            raise bv.BenchError(f"PostgreSQL does not answer: {error}") from None
        return cls("postgresql", engine, server)

    @contextlib.contextmanager
    def database(self, tool: str, home: Path) -> Iterator[dict[str, str]]:
        """The environment that points `tool` at a fresh database for a work folder; dropped on the way out."""
        if self.name == "sqlite":
            if tool == "conveyor":
                yield {}  # the workspace's default database file
            else:
                url = f"sqlite:///{home / 'mlflow.db'}"
                yield {"MLFLOW_TRACKING_URI": url, "MLFLOW_REGISTRY_URI": url}
            return
        from sqlalchemy import text

        name = f"cvy_bench_{tool}_{secrets.token_hex(6)}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = self.admin.url.set(database=name).render_as_string(hide_password=False)
            if tool == "conveyor":
                yield {"CONVEYOR_DB": url}
            else:
                yield {"MLFLOW_TRACKING_URI": url, "MLFLOW_REGISTRY_URI": url}
        finally:
            with self.admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        if self.admin is not None:
            self.admin.dispose()


# ------------------------------------------------------------------------------------------------ measuring


@dataclass
class RegRun:
    seconds: float  # the whole process
    max_rss_kib: int  # ru_maxrss of its process tree
    inner: dict[str, Any]  # what the runner timed inside (seconds) and found


@dataclass
class RegMeasurement:
    backend: str
    tool: str
    operation: str
    command: list[str]
    runs: list[RegRun] = field(default_factory=list)
    error: str | None = None

    def value(self, metric: str) -> float:
        if metric == "process":
            return statistics.median(run.seconds for run in self.runs)
        return statistics.median(run.inner[metric] for run in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        return max(run.max_rss_kib for run in self.runs) / 1024

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "backend": self.backend,
            "tool": self.tool,
            "operation": self.operation,
            "command": self.command,
            "error": self.error,
            "runs": [{"seconds": r.seconds, "max_rss_kib": r.max_rss_kib, "inner": r.inner} for r in self.runs],
        }
        if self.runs:
            record["median_process_seconds"] = self.value("process")
            record["peak_rss_mib"] = self.peak_rss_mib
        return record


# What a check returns: a description of what is wrong, or None.
def expect(condition: bool, problem: str) -> str | None:
    return None if condition else problem


def audit_time(moved_at: list[float], versions: list[int]) -> tuple[float, int]:
    """A time between two alias moves in the middle of the run, and the version the alias pointed at then."""
    k = len(moved_at) // 2 - 1
    return (moved_at[k] + moved_at[k + 1]) / 2, versions[k]


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(files, bytes) under folder."""
    files = size = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                size += (Path(parent) / name).stat().st_size
                files += 1
    return files, size


@dataclass
class RegistryBench:
    tools: list[bv.Tool]
    backends: list[Backend]
    run_dir: Path
    repeat: int
    sizes: Sizes
    keep: bool
    measurements: list[RegMeasurement] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)  # "backend | tool" -> artifacts, database
    populate: dict[str, float] = field(default_factory=dict)  # "backend | tool" -> seconds (setup, untimed)
    prepared: dict[str, Any] = field(default_factory=dict)
    mlflow_model: dict[str, Any] = field(default_factory=dict)
    recording: bool = True
    calls: int = 0

    @property
    def model_file(self) -> Path:
        return self.run_dir / "prepared" / "model.skops"

    @property
    def data_file(self) -> Path:
        return self.run_dir / "prepared" / "data.json"

    def runner(self, tool: bv.Tool, mode: str, **options: Any) -> tuple[list[str], Path]:
        self.calls += 1
        out = self.run_dir / "out" / f"{self.calls:05d}-{tool.name}-{mode}.json"
        out.parent.mkdir(exist_ok=True)
        argv = [*tool.exe, str(RUNNER), mode, "--tool", tool.name, "--out", str(out)]
        for key, value in options.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        return argv, out

    def untimed(self, tool: bv.Tool, mode: str, cwd: Path, env: dict[str, str], **options: Any) -> dict[str, Any]:
        argv, out = self.runner(tool, mode, **options)
        bv.run_checked(argv, cwd=cwd, env=env)
        return dict(json.loads(out.read_text()))

    def measure(
        self,
        tool: bv.Tool,
        backend: Backend,
        operation: str,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        check: Any,
        out: Path | None = None,
    ) -> dict[str, Any]:
        """Run argv once, timed; `check(record, stdout)` says what is wrong with its result. Raises BenchError."""
        measurement = next(
            (m for m in self.measurements if (m.backend, m.tool, m.operation) == (backend.name, tool.name, operation)),
            None,
        )
        if measurement is None:
            measurement = RegMeasurement(backend.name, tool.name, operation, argv)
            if self.recording:
                self.measurements.append(measurement)
        run, code, stdout, stderr = bv.run_timed(argv, cwd, env)
        record: dict[str, Any] = {}
        if code == 0 and out is not None:
            record = json.loads(out.read_text()) if out.is_file() else {}
        problem = f"exited with {code}" if code != 0 else check(record, stdout)
        label = f"[{backend.name}] [{tool.name}] {operation}"
        if problem:
            measurement.error = problem
            raise bv.BenchError(
                f"{label}: `{shlex.join(argv)}` {problem} (in {cwd})\n"
                f"--- stdout ---\n{stdout[-3000:]}--- stderr ---\n{stderr[-5000:]}"
            )
        if self.recording:
            measurement.runs.append(RegRun(run.seconds, run.max_rss_kib, record))
        inner = ", ".join(
            f"{key.removesuffix('_seconds')} {record[key] * 1000:.1f} ms"
            for key in (
                "total_seconds",
                "median_call_seconds",
                "first_seconds",
                "warm_median_seconds",
                "call_seconds",
                "again_seconds",
            )
            if isinstance(record.get(key), float)
        )
        tag = "" if self.recording else " (warm-up)"
        progress(
            f"{label}{tag}: process {run.seconds:.2f} s, peak RSS {run.max_rss_kib / 1024:.0f} MiB"
            + (f"; {inner}" if inner else "")
        )
        return record

    def env(self, tool: bv.Tool, database: dict[str, str]) -> dict[str, str]:
        return {**tool.env, **database}

    # -- setup -------------------------------------------------------------------------------------------

    def prepare(self, conveyor: bv.Tool) -> None:
        folder = self.model_file.parent
        folder.mkdir(parents=True)
        argv = [*conveyor.exe, str(RUNNER), "prepare", "--out", str(folder / "prepare.json")]
        argv += ["--model", str(self.model_file), "--data", str(self.data_file)]
        bv.run_checked(argv, cwd=folder, env=conveyor.env)
        self.prepared = json.loads((folder / "prepare.json").read_text())
        progress(
            f"[setup] iris LogisticRegression saved with skops: {self.prepared['model_bytes']:,} bytes, "
            f"training accuracy {self.prepared['accuracy']:.3f}"
        )

    def setup_home(self, tool: bv.Tool, home: Path, env: dict[str, str]) -> Path:
        """A fresh work folder with the registry's tables; returns what `register` gets as the model."""
        home.mkdir(parents=True)
        if tool.name == "conveyor":
            bv.run_checked(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=home)
            bv.run_checked(["git", "config", "user.name", "conveyor bench"], cwd=home)
            bv.run_checked(["git", "config", "user.email", "bench@conveyor.invalid"], cwd=home)
            bv.run_checked([str(CONVEYOR_CLI), "init"], cwd=home, env=env)
            model = home / "models" / "model.skops"
            model.parent.mkdir()
            shutil.copyfile(self.model_file, model)
            bv.run_checked(["git", "add", "-A"], cwd=home)
            bv.run_checked(["git", "commit", "-q", "-m", "init"], cwd=home)
            self.untimed(tool, "init", home, env)
            return model
        model = home / "model"
        record = self.untimed(tool, "init", home, env, model=self.model_file, model_dir=model, data=self.data_file)
        if not record["predictions_match"]:
            raise bv.BenchError(f"[{tool.name}] the MLflow model folder in {model} does not predict as the model")
        self.mlflow_model = record
        return model

    # -- workloads ---------------------------------------------------------------------------------------

    def lifecycle(self, tool: bv.Tool, backend: Backend, name: str, sizes: Sizes) -> None:
        """Register, move the alias, load, and (conveyor) ask the history, in a fresh registry."""
        home = self.run_dir / backend.name / tool.name / name
        try:
            with backend.database(tool.name, home) as database:
                env = self.env(tool, database)
                model = self.setup_home(tool, home, env)
                n, m = sizes.versions, sizes.moves

                argv, out = self.runner(tool, "register", name=MODEL, model=model, count=n)
                self.measure(
                    tool,
                    backend,
                    "register",
                    argv,
                    home,
                    env,
                    lambda r, _: expect(
                        r.get("versions") == n and r.get("latest") == n and r.get("artifact_matches"),
                        f"wrong result: {r.get('versions')} versions (latest {r.get('latest')}) instead of {n}, "
                        f"stored artifact equal to the file: {r.get('artifact_matches')}",
                    ),
                    out,
                )
                if self.recording and name.endswith("-0"):
                    self.record_storage(tool, backend, home)

                argv, out = self.runner(tool, "promote", name=MODEL, alias=ALIAS, count=m, versions=n)
                moved = self.measure(
                    tool,
                    backend,
                    "promote",
                    argv,
                    home,
                    env,
                    lambda r, _: expect(
                        r.get("resolved") == r.get("targets", [None])[-1],
                        f"wrong result: {MODEL}@{ALIAS} resolves to {r.get('resolved')}, "
                        f"not the last target {r.get('targets', [None])[-1]}",
                    ),
                    out,
                )
                final = moved["targets"][-1]

                # the first load alone (the whole process is what a fresh process pays), then one with more loads
                for operation, warm in (("load", 0), ("load-warm", WARM_LOADS)):
                    argv, out = self.runner(tool, "load", name=MODEL, alias=ALIAS, data=self.data_file, warm=warm)
                    self.measure(
                        tool,
                        backend,
                        operation,
                        argv,
                        home,
                        env,
                        lambda r, _: expect(
                            r.get("resolved") == final and r.get("predictions_match") is True,
                            f"wrong result: loaded version {r.get('resolved')} (expected {final}), "
                            f"predictions as the model's: {r.get('predictions_match')}",
                        ),
                        out,
                    )

                if tool.name == "conveyor":
                    when, then = audit_time(moved["moved_at"], moved["targets"])
                    stamp = dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="microseconds")
                    line = re.compile(rf"^\s*{ALIAS}: {MODEL}:{then}\s*$", re.MULTILINE)
                    cli = [str(CONVEYOR_CLI), "model", "history", MODEL, "--alias", ALIAS, "--at", stamp]
                    self.measure(
                        tool,
                        backend,
                        "audit-cli",
                        cli,
                        home,
                        env,
                        lambda _, stdout: expect(
                            bool(line.search(stdout)), f"did not answer {MODEL}:{then} at {stamp}"
                        ),
                    )
                    argv, out = self.runner(tool, "alias-at", name=MODEL, alias=ALIAS, when=repr(when))
                    self.measure(
                        tool,
                        backend,
                        "audit-api",
                        argv,
                        home,
                        env,
                        lambda r, _: expect(r.get("resolved") == then, f"answered {r.get('resolved')}, not {then}"),
                        out,
                    )
        finally:
            if not self.keep:
                shutil.rmtree(home, ignore_errors=True)

    def record_storage(self, tool: bv.Tool, backend: Backend, home: Path) -> None:
        """What the registered versions take on disk: the artifact store, and the SQLite database file."""
        if tool.name == "conveyor":
            artifacts = folder_bytes(home / ".conveyor" / "cache")
            database = home / ".conveyor" / "store" / "conveyor.db"
        else:
            artifacts = folder_bytes(home / "artifacts")
            database = home / "mlflow.db"
        sqlite_bytes = None
        if backend.name == "sqlite":
            sqlite_bytes = sum(p.stat().st_size for p in database.parent.glob(database.name + "*"))
        self.storage[f"{backend.name} | {tool.name}"] = {
            "versions": self.sizes.versions,
            "artifact_files": artifacts[0],
            "artifact_bytes": artifacts[1],
            "sqlite_bytes": sqlite_bytes,
        }

    def listing(self, backend: Backend, sizes: Sizes) -> None:
        """Fill one registry per tool with `sizes.listed` versions (untimed), then list them, run by run."""
        count = sizes.listed
        with contextlib.ExitStack() as stack:
            ready: dict[str, tuple[bv.Tool, Path, dict[str, str]]] = {}
            for tool in self.tools:
                home = self.run_dir / backend.name / tool.name / ("listing" if self.recording else "listing-warm-up")
                if not self.keep:
                    stack.callback(shutil.rmtree, home, True)
                try:
                    env = self.env(tool, stack.enter_context(backend.database(tool.name, home)))
                    model = self.setup_home(tool, home, env)
                    progress(f"[{backend.name}] [{tool.name}] registering {count:,} versions of '{BIG}' (untimed) ...")
                    record = self.untimed(tool, "populate", home, env, name=BIG, alias=ALIAS, model=model, count=count)
                    if record["versions"] != count:
                        raise bv.BenchError(f"[{tool.name}] populate made {record['versions']} versions, not {count}")
                    if self.recording:
                        self.populate[f"{backend.name} | {tool.name}"] = record["total_seconds"]
                    progress(f"[{backend.name}] [{tool.name}] ... in {record['total_seconds']:.1f} s")
                    ready[tool.name] = (tool, home, env)
                except bv.BenchError as error:
                    self.fail(error)
            for _ in range(self.repeat if self.recording else 1):
                for tool, home, env in ready.values():
                    try:
                        self.list_once(tool, backend, home, env, count)
                    except bv.BenchError as error:
                        self.fail(error)

    def list_once(self, tool: bv.Tool, backend: Backend, home: Path, env: dict[str, str], count: int) -> None:
        for operation, again in (("list", 0), ("list-again", 1)):  # one call alone; then a second in the process
            argv, out = self.runner(tool, "list", name=BIG, expect=count, again=again)
            self.measure(
                tool,
                backend,
                operation,
                argv,
                home,
                env,
                lambda r, _: expect(
                    r.get("count") == count and r.get("complete") is True,
                    f"wrong result: {r.get('count')} versions (all of 1..{count}: {r.get('complete')})",
                ),
                out,
            )
        argv, out = self.runner(tool, "models")
        self.measure(
            tool,
            backend,
            "models",
            argv,
            home,
            env,
            lambda r, _: expect(r.get("models") == {BIG: count}, f"wrong result: {r.get('models')}"),
            out,
        )
        if tool.name != "conveyor":
            return
        rows = re.compile(r"^\d+\s", re.MULTILINE)
        self.measure(
            tool,
            backend,
            "show-cli",
            [str(CONVEYOR_CLI), "model", "show", BIG],
            home,
            env,
            lambda _, stdout: expect(len(rows.findall(stdout)) == count, f"listed {len(rows.findall(stdout))}"),
        )
        listed = re.compile(rf"^{BIG}\s+{count}\s+{count}\s", re.MULTILINE)
        self.measure(
            tool,
            backend,
            "list-cli",
            [str(CONVEYOR_CLI), "model", "list"],
            home,
            env,
            lambda _, stdout: expect(bool(listed.search(stdout)), f"did not list {BIG} with {count} versions"),
        )

    def fail(self, error: bv.BenchError) -> None:
        self.failures.append(str(error))
        progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{error}\n")

    def warm_up(self) -> None:
        """Every operation once per tool on small sizes, unrecorded: bytecode caches and the page cache."""
        self.recording = False
        try:
            backend = self.backends[0]
            for tool in self.tools:
                progress(f"[setup] warm-up of {tool.name} on {backend.name} ...")
                try:
                    self.lifecycle(tool, backend, "warm-up", WARM_UP_SIZES)
                except bv.BenchError as error:
                    self.fail(error)
            self.listing(backend, WARM_UP_SIZES)
        finally:
            self.recording = True

    def run(self) -> None:
        self.warm_up()
        for backend in self.backends:
            for index in range(self.repeat):
                for tool in self.tools:
                    if any(m.error for m in self.measurements if (m.backend, m.tool) == (backend.name, tool.name)):
                        continue  # failed once: no more runs of it
                    try:
                        self.lifecycle(tool, backend, f"lifecycle-{index}", self.sizes)
                    except bv.BenchError as error:
                        self.fail(error)
            self.listing(backend, self.sizes)

    def result(self, backend: str, tool: str, operation: str) -> RegMeasurement | None:
        return next(
            (m for m in self.measurements if (m.backend, m.tool, m.operation) == (backend, tool, operation)), None
        )


# ---------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Row:
    label: str
    operation: str  # conveyor's measurement
    metric: str  # a number the runner reported (seconds), or "process": the whole process's wall time
    unit: str  # how it is shown: "s" or "ms"
    mlflow: tuple[str, str] | None = None  # MLflow's (operation, metric) when not the same as conveyor's
    supported: bool = True  # False: MLflow cannot do it


def table_rows(sizes: Sizes) -> list[Row]:
    n, m, listed = sizes.versions, sizes.moves, f"{sizes.listed:,}"
    at_t = f"which version was {ALIAS} at time T"
    return [
        Row(f"register {n} versions: open + {n} calls in one process (s)", "register", "total_seconds", "s"),
        Row("register: first call, lazy imports included (ms)", "register", "first_call_seconds", "ms"),
        Row("register: one version, median call (ms)", "register", "median_call_seconds", "ms"),
        Row("register: one version, 95th percentile (ms)", "register", "p95_call_seconds", "ms"),
        Row(f"register {n} versions: whole process (s)", "register", "process", "s"),
        Row(f"move an alias ({m} moves): median move (ms)", "promote", "median_call_seconds", "ms"),
        Row("import the tool (`conveyor.registry` / `mlflow`) (ms)", "load", "import_seconds", "ms"),
        Row(f"resolve `{MODEL}@{ALIAS}` and load it: first call after import (ms)", "load", "first_seconds", "ms"),
        Row(
            f"resolve and load again, same process: median of {WARM_LOADS} (ms)",
            "load-warm",
            "warm_median_seconds",
            "ms",
        ),
        Row("resolve and load: whole process (s)", "load", "process", "s"),
        Row(f"list {listed} versions: API call, open included (ms)", "list", "call_seconds", "ms"),
        Row(f"list {listed} versions: API call again, same process (ms)", "list-again", "again_seconds", "ms"),
        Row(f"list {listed} versions: API process (s)", "list", "process", "s"),
        Row(
            f"list {listed} versions: `conveyor model show` CLI vs MLflow API process † (s)",
            "show-cli",
            "process",
            "s",
            mlflow=("list", "process"),
        ),
        Row("list models: API process (s)", "models", "process", "s"),
        Row(
            "list models: `conveyor model list` CLI vs MLflow API process † (s)",
            "list-cli",
            "process",
            "s",
            mlflow=("models", "process"),
        ),
        Row(f"{at_t}: `conveyor model history --at` CLI (s)", "audit-cli", "process", "s", supported=False),
        Row(f"{at_t}: API `alias_at` (ms)", "audit-api", "call_seconds", "ms", supported=False),
    ]


def mlflow_side(row: Row) -> tuple[str, str] | None:
    """MLflow's (operation, metric) of a row; None when MLflow has no such thing."""
    if not row.supported:
        return None
    return row.mlflow or (row.operation, row.metric)


def format_value(seconds: float, unit: str) -> str:
    if unit == "ms":
        value = seconds * 1000
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{seconds:.2f}"


def usable(m: RegMeasurement | None) -> bool:
    return m is not None and not m.error and bool(m.runs)


def value_cell(m: RegMeasurement | None, metric: str, unit: str, selected: bool) -> str:
    if not selected:
        return "—"
    if m is None:
        return "not run"
    if m.error:
        return "FAILED"
    return format_value(m.value(metric), unit) if m.runs else "not run"


def rss_cell(m: RegMeasurement | None, selected: bool) -> str:
    if not selected:
        return "—"
    return f"{m.peak_rss_mib:.0f}" if m is not None and usable(m) else "—"


def ratio_cell(ours: RegMeasurement | None, theirs: RegMeasurement | None, row: Row) -> str:
    side = mlflow_side(row)
    if side is None or ours is None or theirs is None or not usable(ours) or not usable(theirs):
        return "—"
    mine, other = ours.value(row.metric), theirs.value(side[1])
    if mine <= 0:
        return "∞"
    ratio = other / mine
    return f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.2f}×"


def backend_table(bench: RegistryBench, backend: str) -> list[str]:
    selected = {tool.name for tool in bench.tools}
    lines = [
        "| operation | conveyor | MLflow | MLflow ÷ conveyor | conveyor peak RSS (MiB) | MLflow peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table_rows(bench.sizes):
        ours = bench.result(backend, "conveyor", row.operation)
        side = mlflow_side(row)
        theirs = bench.result(backend, "mlflow", side[0]) if side else None
        cells = [
            row.label,
            value_cell(ours, row.metric, row.unit, "conveyor" in selected),
            value_cell(theirs, side[1], row.unit, "mlflow" in selected) if side else "not supported",
            ratio_cell(ours, theirs, row),
            rss_cell(ours, "conveyor" in selected),
            rss_cell(theirs, "mlflow" in selected),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n < 10 * 1024**2 else f"{n / 1024**2:,.1f} MiB"


def notes(bench: RegistryBench) -> list[str]:
    """What is not like for like, with the numbers this run found."""
    lines = []
    stored = {key.split(" | ")[1]: value for key, value in bench.storage.items() if key.startswith("sqlite")}
    if not stored:
        stored = {key.split(" | ")[1]: value for key, value in bench.storage.items()}
    if stored:
        parts = [
            f"{TITLES[tool]} {plural(value['artifact_files'], 'file')}, {kib(value['artifact_bytes'])}"
            + (f" (SQLite file {kib(value['sqlite_bytes'])})" if value.get("sqlite_bytes") else "")
            for tool, value in stored.items()
        ]
        lines.append(
            f"- Artifacts: conveyor's cache is content-addressed, so {bench.sizes.versions} registrations of the same "
            "file store it once (each is still read, hashed and checked); MLflow copies the model folder into every "
            f"run's artifacts. On disk after {bench.sizes.versions} versions: " + "; ".join(parts) + ". A new file "
            "per version would cost conveyor one stored object per version."
        )
    lines += [
        "- Registering: one conveyor call (`Registry.register`: reads the skops file's types, hashes and stores it, "
        "asks git for the commit, looks for the run that produced it, inserts the version) against MLflow's "
        "usual path from a model folder (`start_run`, `log_artifacts`, `register_model`, end of run: the run and "
        "its tags, git commit included, are extra rows MLflow writes). `mlflow.sklearn.log_model` would serialise "
        "the object again instead of storing the file.",
        "- Listing versions: conveyor's `versions` returns each version with its aliases, tags and recorded check "
        "results; MLflow's `search_model_versions` documents that it may leave aliases out"
        + aliases_found(bench)
        + ".",
        "- First calls: conveyor's first `register` in a process imports scikit-learn through skops to read the "
        "file's types (the first-call row; it is most of that process's peak RSS), as loading does; MLflow's "
        "registering process never imports scikit-learn (it copies files), but its first registry call in a "
        "process builds its SQL store (engine, schema check). The in-process rows include both.",
        "- Loading: conveyor verifies the cached artifact's BLAKE3 hash, then loads it with skops; MLflow copies "
        "the model folder out of the artifact store into a temporary folder, reads `MLmodel`, then loads it "
        "with skops.",
        "- † MLflow has no CLI command that lists registered models or versions (`mlflow models` serves and "
        "predicts), so these rows set conveyor's CLI process against MLflow's Python API in a process.",
        "- Which version was production at time T: MLflow keeps only where an alias points now, not its moves, "
        'so it cannot answer ("not supported"; no number is given). conveyor answers from its append-only '
        "alias history.",
    ]
    return lines


def aliases_found(bench: RegistryBench) -> str:
    """How many listed versions came back with their alias, per tool (one version of the listed model has one)."""
    found = {
        m.tool: m.runs[-1].inner.get("with_aliases")
        for m in bench.measurements
        if m.operation == "list" and m.runs and m.backend == bench.backends[0].name
    }
    if not found:
        return ""
    counts = ", ".join(f"{TITLES[tool]} {count}" for tool, count in found.items())
    left_out = found.get("mlflow") == 0
    return f" ({'and did here: ' if left_out else ''}versions returned with their alias: {counts} of 1)"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def runs_phrase(repeat: int) -> str:
    return "one run" if repeat == 1 else f"median of {repeat} runs"


def backends_phrase(meta: dict[str, Any]) -> str:
    parts = []
    if "sqlite" in meta["backends"]:
        parts.append("SQLite (conveyor's default file in the workspace; MLflow `sqlite:///…/mlflow.db`)")
    if "postgresql" in meta["backends"]:
        parts.append(
            f"PostgreSQL {meta['postgresql']} on this machine (TCP to 127.0.0.1, psycopg 3), a throw-away database "
            "per tool and workload"
        )
    elif meta.get("postgresql_skipped"):
        parts.append(f"PostgreSQL not run ({meta['postgresql_skipped']})")
    return "; ".join(parts)


def markdown(bench: RegistryBench, meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    conveyor_env = versions.get("conveyor_venv", {})
    mlflow_env = versions.get("mlflow_venv", {})
    sizes = bench.sizes
    source = meta["conveyor_source_start"]
    changed = meta.get("conveyor_source_end", {}).get("src_sha256") != source["src_sha256"]
    lines = [
        "## Model registry: conveyor vs MLflow",
        "",
        f"- Date: {meta['date_utc']}; the whole run took {meta.get('elapsed_seconds', 0) / 60:.1f} min",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']:.1f} GiB RAM, "
        f"{machine['kernel']}, work folder on {machine['filesystem']}; load average at start "
        f"{meta['loadavg_start']}, at end {meta.get('loadavg_end', '?')}",
        f"- conveyor {versions.get('conveyor', 'not run')} (Python {versions['python']}: "
        + ", ".join(f"{k} {v}" for k, v in conveyor_env.items() if k != "conveyor")
        + ")",
        f"- MLflow {versions.get('mlflow', 'not run')}"
        + (
            f" (`mlflow-skinny`, Python {versions.get('mlflow_python')}: "
            + ", ".join(f"{k} {v}" for k, v in mlflow_env.items() if k != "mlflow-skinny")
            + "); telemetry off (`MLFLOW_DISABLE_TELEMETRY=true`)"
            if mlflow_env
            else ""
        ),
        "- Backends: " + backends_phrase(meta),
        f"- Command: `{meta['command']}`",
        f"- conveyor source: commit {source['commit'][:10]}"
        + (" with uncommitted changes in src/" if source["src_uncommitted_changes"] else "")
        + ("; **src/ changed during the run**" if changed else ""),
        "- Model: scikit-learn `LogisticRegression` on iris, saved once with skops "
        f"({bench.prepared.get('model_bytes', 0):,} bytes; skops is both tools' default for scikit-learn); "
        "conveyor registers that file, MLflow an MLflow model folder holding the same bytes (`MLmodel`, "
        "requirements files, `model.skops`).",
        f"- Each operation in its own process, {runs_phrase(meta['repeat'])} (a fresh registry per run for "
        f"registering {sizes.versions} versions, {sizes.moves} alias moves, resolving and loading; one registry of "
        f"{sizes.listed:,} versions per tool, filled untimed, for listing); the tools alternate run by run. "
        "In-process times start after the tool's import and include opening the registry (conveyor "
        "`Registry.open`, MLflow's client on first use); process: wall time and peak RSS of the whole process "
        "(`ru_maxrss` via `wait4`, from a small launcher).",
    ]
    for backend in meta["backends"]:
        lines += ["", f"### {TITLES[backend]}", "", *backend_table(bench, backend)]
    if bench.populate:
        lines += [
            "",
            f"Filling the listing registries (untimed setup, {sizes.listed:,} versions by API calls in one process): "
            + ", ".join(
                f"{TITLES[key.split(' | ')[1]]} on {TITLES[key.split(' | ')[0]]} {seconds:.1f} s"
                for key, seconds in bench.populate.items()
            )
            + " (MLflow: `create_model_version` pointing at one logged model; conveyor: `register` of the same file).",
        ]
    lines += ["", "### What is not like for like", "", *notes(bench)]
    if bench.failures:
        lines += ["", f"**{len(bench.failures)} failure(s)**: cells marked FAILED or not run have no ratio."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time conveyor's model registry and MLflow's side by side, on SQLite and PostgreSQL."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (20 versions, 10 moves, 200 listed), 1 run")
    parser.add_argument("--versions", type=bv.positive_int, help="versions registered per run (200)")
    parser.add_argument("--moves", type=int, help="alias moves per run, at least 2 (100)")
    parser.add_argument("--listed", type=bv.positive_int, help="versions of the model that is listed (2000)")
    parser.add_argument("--repeat", type=bv.positive_int, help="runs per measurement (3)")
    parser.add_argument(
        "--backends",
        type=br.parse_choices(BACKENDS),
        default=None,
        help="sqlite,postgresql (default: both, PostgreSQL when a server can be had)",
    )
    parser.add_argument("--only", choices=[*TOOLS, "both"], default="both", help="tools to run (both)")
    parser.add_argument(
        "--mlflow-venv",
        type=Path,
        default=DEFAULT_MLFLOW_VENV,
        help=f"venv with MLflow {MLFLOW_VERSION}; created with the pinned set when missing (bench/.venv-mlflow)",
    )
    parser.add_argument("--workdir", type=Path, default=bv.DEFAULT_WORKDIR, help="where the registries go")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    args = parser.parse_args(argv)
    base = QUICK_SIZES if args.quick else DEFAULT_SIZES
    args.sizes = Sizes(
        versions=args.versions or base.versions, moves=args.moves or base.moves, listed=args.listed or base.listed
    )
    if args.sizes.moves < 2 or args.sizes.versions < 2:
        parser.error("--moves and --versions must be at least 2 (the alias moves between versions)")
    if args.repeat is None:
        args.repeat = 1 if args.quick else DEFAULT_REPEAT
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    backends: list[Backend] = [Backend("sqlite")] if args.backends is None or "sqlite" in args.backends else []
    postgresql: dict[str, str] = {}
    if args.backends is None or "postgresql" in args.backends:
        try:
            backends.append(Backend.postgresql())
            postgresql["postgresql"] = backends[-1].server
        except bv.BenchError as error:
            if args.backends is not None:
                progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
                return 2
            postgresql["postgresql_skipped"] = str(error).splitlines()[0]
            progress(f"!!!!! PostgreSQL IS NOT AVAILABLE: only SQLite is measured !!!!!\n{error}")
    try:
        with bv.RunDir(args.workdir.resolve() / f"registry-{stamp}", args.keep) as run_dir:
            versions: dict[str, Any] = {"python": platform.python_version()}
            freezes: dict[str, list[str]] = {}
            try:
                conveyor = conveyor_tool(run_dir)  # prepares the model even when only MLflow runs
                tools = [conveyor] if args.only in ("conveyor", "both") else []
                freezes["conveyor_venv"] = bc.pip_freeze(sys.executable)
                if args.only in ("mlflow", "both"):
                    tools.append(mlflow_tool(args.mlflow_venv.absolute(), run_dir))
                    freezes["mlflow_venv"] = bc.pip_freeze(tools[-1].exe[0])
            except bv.BenchError as error:
                progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
                return 2
            versions["conveyor"] = conveyor.version
            for tool in tools:
                versions[tool.name] = tool.version
                if tool.name != "conveyor":
                    versions[f"{tool.name}_python"] = tool.python_version
            for name, freeze in freezes.items():
                versions[name] = relevant(freeze)
            progress("[setup] " + ", ".join(f"{k} {v}" for k, v in versions.items() if isinstance(v, str)))
            meta: dict[str, Any] = {
                "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
                "command": shlex.join(sys.orig_argv),
                "machine": bv.machine_info(run_dir),
                "versions": versions,
                "pip_freeze": freezes,
                "mlflow_requirements": MLFLOW_REQUIREMENTS,
                "backends": [b.name for b in backends],
                **postgresql,
                "sizes": vars(args.sizes),
                "repeat": args.repeat,
                "warm_loads": WARM_LOADS,
                "tools": [tool.name for tool in tools],
                "loadavg_start": bp.loadavg(),
                "conveyor_source_start": br.source_state(),
            }
            bench = RegistryBench(tools, backends, run_dir, args.repeat, args.sizes, args.keep)
            try:
                bench.prepare(conveyor)
            except bv.BenchError as error:
                progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
                return 2
            bench.run()
            meta["prepared"] = bench.prepared
            meta["mlflow_model_folder"] = bench.mlflow_model
            meta["loadavg_end"] = bp.loadavg()
            meta["conveyor_source_end"] = br.source_state()
            if meta["conveyor_source_end"]["src_sha256"] != meta["conveyor_source_start"]["src_sha256"]:
                progress("[setup] WARNING: conveyor's source changed while the benchmark ran")
            meta["elapsed_seconds"] = (dt.datetime.now(dt.UTC) - started).total_seconds()
    finally:
        for backend in backends:
            backend.close()

    report = markdown(bench, meta)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "storage": bench.storage,
        "populate_seconds": bench.populate,
        "measurements": [m.to_json() for m in bench.measurements],
    }
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    results_file = bv.RESULTS_DIR / f"registry-{stamp}.json"
    results_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    progress(f"[setup] raw numbers in {results_file}")
    if bench.failures:
        progress(f"!!!!! {len(bench.failures)} FAILURE(S): see above; no ratio printed for them !!!!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
