"""Serve the same model with conveyor and with MLflow and load both with the same HTTP load generator, in one run.

The model: scikit-learn's ``LogisticRegression`` trained on the wine data set that ships with scikit-learn (13
named float features, 3 classes), saved once as an MLflow model folder by ``mlflow.sklearn.save_model`` (skops,
with the signature ``infer_signature`` gives) in MLflow's venv. conveyor registers the very ``model.skops`` of that
folder in a fresh workspace (git init, ``conveyor init``, ``conveyor model register wine FILE --signature-from
train.csv --label target``, ``conveyor model promote wine 1 --to production``). See ``serving_runner.py``.

The servers, each started as a user would, listening on 127.0.0.1 on a free port in 20000-29999, its output to a
log file:

* ``conveyor serve wine@production --port P --workers W`` (uvicorn with uvloop and httptools, which
  ``conveyor[serve]`` installs; its defaults otherwise: JSON access log of every request, 10 % of the requests
  logged to Parquet, the registry polled every 0.5 s);
* ``mlflow models serve -m FOLDER --env-manager local -p P --workers W`` from ``bench/.venv-mlflow`` (MLflow runs
  ``uvicorn --workers W mlflow.pyfunc.scoring_server.app:app`` on plain uvicorn, asyncio and h11: mlflow-skinny
  requires ``uvicorn``, not ``uvicorn[standard]``; its defaults otherwise: uvicorn's access log of every request);
  MLflow's own default is one worker (``--workers`` unset gives ``--workers 1``), conveyor's is one too;
* ``mlflow-uvloop``: the same MLflow server with uvloop and httptools importable (installed with pip ``--target``
  into ``bench/.venv-mlflow/uvicorn-standard``, at the versions of conveyor's venv, and put on ``PYTHONPATH`` for
  that server alone): the same HTTP stack as conveyor's, to tell the part of the difference that is the stack.

Which native modules each server process really runs on is read from its memory maps and recorded.

The load: ``wrk`` (Debian's package; installed with ``apt-get install -y wrk`` on first use when missing and run
as root), one thread, as many keep-alive connections as the concurrency (1 and 8), each sending MLflow's scoring
request ``POST /invocations`` with ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` of 1 and of 100
rows, the same bytes to every server; a Lua ``done`` hook prints wrk's own counts and latency percentiles as JSON.
wrk is closed-loop: each connection sends its next request when the answer to the last one has come. Each cell
(server, workers, rows, concurrency) gets a warm-up run (--warmup s) and then the measured run (--duration s); the
servers take turns cell by cell (the order flipped every cell), so a change in the machine's load hits them alike.
Every answer's status is counted by wrk (failed = connect, read, write and timeout errors plus statuses >= 400),
and the predictions of both payloads are checked against the model's before and after the cells. Per run the CPU
time of the server's process tree (``/proc``), of wrk (``RUSAGE_CHILDREN``) and of the whole machine
(``/proc/stat``) is recorded, so a run disturbed by other processes shows.

The load generator's ceiling: the same wrk runs against two servers that answer every request with a fixed body
(``serving_runner.py static``): a bare asyncio protocol on uvloop (no framework), and a bare ASGI app on uvicorn
with uvloop and httptools (conveyor's stack without routing, JSON or a model). wrk's CPU per request is recorded
in every run.

Hot swap (conveyor only): ``conveyor serve wine@production`` under a steady load of 8 keep-alive connections
sending the 1-row request from this process (asyncio streams; every answer recorded with its time, status and the
version that answered: the ``x-conveyor-model-version`` header of ``/invocations``, else ``model_version`` in the
body of the Open Inference Protocol's ``POST /v2/models/wine/infer``). Under that load a second version is
registered (``conveyor model register``), then ``conveyor model promote wine N --to production`` moves the alias
--swaps times between versions 1 and 2. Recorded: every failed request (non-200 or connection error) over the whole
window (target: 0), and for each move the time from the promote command returning to the first answer of the new
version (negative when the server swapped before the command had exited), with answers of the old version after
that and the slowest answer around the move.

Targets (the issue): for the 1-row payload at concurrency 1 and 8, at least 5x MLflow's requests per second with a
p99 latency at most a third of MLflow's (MLflow's reference here: about 150 requests/s, p99 about 11 ms and 120 ms).

    .venv/bin/python bench/bench_serving.py [--quick] [--duration 10] [--warmup 2] [--workers 1,2]
        [--servers conveyor,mlflow,mlflow-uvloop] [--parts throughput,ceiling,hotswap] [--swaps 5]
        [--swap-workers 1] [--wait-quiet SECONDS] [--mlflow-venv bench/.venv-mlflow] [--workdir bench/.work]
        [--keep] [--markdown FILE]

The raw numbers go to ``bench/results/serving-YYYYMMDD-HHMMSS.json`` (with both venvs' ``pip freeze``); the
Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_checks as bc
import bench_pipeline as bp
import bench_registry as breg
import bench_remote as brm
import bench_versioning as bv

BENCH_DIR = bv.BENCH_DIR
ROOT = BENCH_DIR.parent
RUNNER = BENCH_DIR / "serving_runner.py"
CONVEYOR_CLI = Path(sys.executable).parent / "conveyor"
DEFAULT_MLFLOW_VENV = breg.DEFAULT_MLFLOW_VENV
MLFLOW_SERVE_REQUIREMENTS = ["fastapi==0.165.0", "uvicorn==0.54.0"]  # mlflow-skinny's; installed if missing
FAST_STACK = ("uvloop", "httptools")  # what conveyor[serve] adds to uvicorn; mlflow-uvloop gets the same versions
RELEVANT = (
    "conveyor",
    "mlflow-skinny",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "scikit-learn",
    "skops",
    "numpy",
    "pandas",
    "pydantic",
    "prometheus-client",
    "pyarrow",
)

MODEL = "wine"
ALIAS = "production"
LABEL = "target"
PORTS = (20000, 29999)
ROWS = (1, 100)
CONCURRENCY = (1, 8)
SERVERS = ("conveyor", "mlflow", "mlflow-uvloop")
STATIC = ("static-raw", "static-asgi")
PARTS = ("throughput", "ceiling", "hotswap")
TITLES = {
    "conveyor": "conveyor",
    "mlflow": "MLflow",
    "mlflow-uvloop": "MLflow on uvloop + httptools",
    "static-raw": "fixed answer, bare asyncio protocol on uvloop",
    "static-asgi": "fixed answer, bare ASGI app on uvicorn (uvloop + httptools)",
}

DEFAULT_DURATION, QUICK_DURATION = 10, 3  # whole seconds: wrk takes no fractions
DEFAULT_WARMUP, QUICK_WARMUP = 2, 1
DEFAULT_WORKERS, QUICK_WORKERS = [1, 2], [1]
DEFAULT_SWAPS, QUICK_SWAPS = 5, 2
WRK_TIMEOUT = "10s"  # an answer slower than this counts as a timeout error
READY_TIMEOUT = 180.0  # seconds for a server to answer /ping
SWAP_CONNECTIONS = 8
SWAP_TIMEOUT = 30.0  # seconds after the promote command for the new version to answer
SWAP_SETTLE = 2.0  # seconds of load before the first move, and between moves

QUIET = 0.3  # cores busy on the machine under which --wait-quiet starts
DISTURBED = 0.25  # cores used by other processes during a run above which its numbers are marked
TARGET_SPEED_UP = 5.0
TARGET_P99_SHARE = 1 / 3
REFERENCE = "about 150 requests/s at concurrency 1 and 8, p99 about 11 ms and 120 ms"
TICK = os.sysconf("SC_CLK_TCK")


def progress(message: str) -> None:
    bv.progress(message)


def plain_opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


HTTP = plain_opener()


def http(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with HTTP.open(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


# -------------------------------------------------------------------------------------------------- /proc


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd on (the name may hold spaces)


def tree(root: int) -> list[int]:
    """root and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of root's process tree so far."""
    total = 0
    for pid in tree(root):
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def tree_rss_mib(root: int) -> float:
    total = 0
    for pid in tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def tree_modules(root: int) -> dict[str, bool]:
    """Whether uvloop's and httptools' native modules are mapped in root's process tree (what the server runs on)."""
    maps = ""
    for pid in tree(root):
        with contextlib.suppress(OSError):
            maps += Path(f"/proc/{pid}/maps").read_text()
    return {
        "uvloop": "/uvloop/loop." in maps,
        "httptools": "/httptools/parser/" in maps,
    }


def machine_busy() -> float:
    """CPU seconds all cores spent busy so far (everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(*PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise bv.BenchError(f"no free port in {PORTS[0]}-{PORTS[1]}")


# ------------------------------------------------------------------------------------------------ servers


@dataclass
class Server:
    kind: str  # conveyor, mlflow, mlflow-uvloop, static-raw, static-asgi
    workers: int
    command: Callable[[int], list[str]]  # the argv for a port
    cwd: Path
    env: dict[str, str]
    log: Path
    port: int = 0
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    ready_seconds: float = 0.0
    modules: dict[str, bool] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.kind} (workers {self.workers})"

    def start(self) -> None:
        for _attempt in range(3):
            self.port = free_port()
            self.argv = self.command(self.port)
            with self.log.open("ab") as log:
                log.write(f"\n===== {shlex.join(self.argv)}\n".encode())
                log.flush()
                began = time.perf_counter()
                self.proc = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stopped as a whole, by its id
                )
            while time.perf_counter() - began < READY_TIMEOUT:
                if self.proc.poll() is not None:
                    break
                with contextlib.suppress(OSError):
                    if http(self.url + "/ping", timeout=2)[0] == 200:
                        self.ready_seconds = time.perf_counter() - began
                        time.sleep(0.3)  # let every worker of a multi-worker server come up
                        self.modules = tree_modules(self.proc.pid)
                        progress(f"[setup] {self.label} answers on port {self.port} after {self.ready_seconds:.1f} s")
                        return
                time.sleep(0.2)
            else:
                self.stop()
                raise bv.BenchError(f"{self.label} did not answer /ping within {READY_TIMEOUT:.0f} s: {self.tail()}")
            tail = self.tail()
            if "address already in use" in tail.lower():
                continue  # someone took the port between the probe and the bind: another one
            raise bv.BenchError(f"{self.label} exited with {self.proc.returncode} before answering:\n{tail}")
        raise bv.BenchError(f"{self.label}: three ports in a row were taken")

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid) if self.proc is not None else 0.0

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "workers": self.workers,
            "command": self.argv,
            "ready_seconds": round(self.ready_seconds, 3),
            "native_modules_loaded": self.modules,
        }


# ------------------------------------------------------------------------------------------------ the load


WRK_SCRIPT = """-- the request of one payload, and wrk's counts and latency percentiles as one JSON line
local f = assert(io.open([==[{body}]==], "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format(
    '{{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass
class LoadRun:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]
    server_cpu_s: float
    wrk_cpu_s: float
    machine_busy_s: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def cores(self, seconds: float) -> float:
        return seconds / self.seconds

    @property
    def others_cpu_s(self) -> float:
        """Busy CPU time of the machine not spent by the server or wrk (other processes: the machine is shared)."""
        return max(0.0, self.machine_busy_s - self.server_cpu_s - self.wrk_cpu_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 4),
            "requests_per_second": round(self.rps, 1),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
            "failed": self.failed,
            "errors": self.errors,
            "server_cpu_cores": round(self.cores(self.server_cpu_s), 3),
            "wrk_cpu_cores": round(self.cores(self.wrk_cpu_s), 3),
            "wrk_cpu_us_per_request": round(self.wrk_cpu_s / self.requests * 1e6, 1) if self.requests else None,
            "others_cpu_cores": round(self.cores(self.others_cpu_s), 3),
        }


def ensure_wrk() -> tuple[str, str]:
    """wrk's path and version; installs Debian's package when it is missing (as root)."""
    found = shutil.which("wrk")
    if found is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise bv.BenchError(
                "wrk is not installed and this is not root on Debian: install wrk (apt-get install wrk)"
            )
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        progress("[setup] installing wrk: apt-get install -y wrk ...")
        try:
            bv.run_checked(["apt-get", "install", "-y", "-q", "wrk"], env=env)
        except bv.BenchError:
            bv.run_checked(["apt-get", "update", "-q"], env=env)
            bv.run_checked(["apt-get", "install", "-y", "-q", "wrk"], env=env)
        found = shutil.which("wrk")
        if found is None:
            raise bv.BenchError("apt-get installed wrk but it is not on PATH")
    banner = subprocess.run([found, "--version"], capture_output=True, text=True).stdout.splitlines()
    return found, (banner[0].split(" Copyright")[0] if banner else "unknown")


@dataclass
class Wrk:
    exe: str
    scripts: dict[int, Path]  # rows -> Lua script

    def run(self, server: Server, rows: int, connections: int, seconds: int) -> LoadRun:
        argv = [self.exe, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", WRK_TIMEOUT]
        argv += ["-s", str(self.scripts[rows]), server.url + "/invocations"]
        cpu0, wrk0, busy0 = server.cpu(), children_cpu(), machine_busy()
        result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        cpu1, wrk1, busy1 = server.cpu(), children_cpu(), machine_busy()
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if result.returncode != 0 or not lines:
            raise bv.BenchError(
                f"`{shlex.join(argv)}` exited with {result.returncode}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        found = json.loads(lines[-1])
        if found["requests"] == 0:
            raise bv.BenchError(f"{server.label}: wrk got no answer at all in {seconds:g} s\n{server.tail()}")
        return LoadRun(
            requests=found["requests"],
            seconds=found["duration_us"] / 1e6,
            p50_ms=found["p50_us"] / 1000,
            p90_ms=found["p90_us"] / 1000,
            p99_ms=found["p99_us"] / 1000,
            max_ms=found["max_us"] / 1000,
            mean_ms=round(found["mean_us"] / 1000, 3),
            errors={k: found[k] for k in ("connect", "read", "write", "timeout", "status")},
            server_cpu_s=cpu1 - cpu0,
            wrk_cpu_s=wrk1 - wrk0,
            machine_busy_s=busy1 - busy0,
        )


@dataclass
class Cell:
    part: str  # throughput or ceiling
    server: str
    workers: int
    rows: int
    concurrency: int
    warmup: LoadRun | None = None
    measured: LoadRun | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "server": self.server,
            "workers": self.workers,
            "rows": self.rows,
            "concurrency": self.concurrency,
            "warmup": self.warmup.to_json() if self.warmup else None,
            "measured": self.measured.to_json() if self.measured else None,
            "error": self.error,
        }


# ------------------------------------------------------------------------------------------------ hot swap


def _parse_head(head: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


@dataclass
class SwapLoad:
    """Steady load from this process: `connections` keep-alive connections, each sending its next request when
    the last answer has come; every answer recorded as (sent, received, status, version or error)."""

    port: int
    request: bytes
    version_of: Callable[[dict[bytes, bytes], bytes], str | None]
    connections: int = SWAP_CONNECTIONS
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while not self.stop.is_set():
            now = time.perf_counter()
            if writer is None or reader is None:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError as error:
                    self.answers.append((now, time.perf_counter(), -1, f"connect: {type(error).__name__}"))
                    await asyncio.sleep(0.01)
                    continue
            try:
                writer.write(self.request)
                status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                if b"content-length" not in headers:
                    raise ValueError("an answer without content-length")
                body = await reader.readexactly(int(headers[b"content-length"]))
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                self.answers.append((now, time.perf_counter(), -1, f"{type(error).__name__}: {error}"[:200]))
                writer.close()
                reader = writer = None
                continue
            version = self.version_of(headers, body) if status == 200 else None
            self.answers.append((now, time.perf_counter(), status, version or "?"))
            if headers.get(b"connection", b"").lower() == b"close":
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()


def version_from_header(headers: dict[bytes, bytes], body: bytes) -> str | None:
    value = headers.get(b"x-conveyor-model-version")
    return value.decode() if value is not None else None


def version_from_oip(headers: dict[bytes, bytes], body: bytes) -> str | None:
    try:
        value = json.loads(body).get("model_version")
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)


def oip_body(payload: dict[str, Any]) -> bytes:
    split = payload["dataframe_split"]
    inputs = [
        {"name": column, "shape": [len(split["data"])], "datatype": "FP64", "data": [row[i] for row in split["data"]]}
        for i, column in enumerate(split["columns"])
    ]
    return json.dumps({"inputs": inputs}).encode()


def raw_request(path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run_command(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


# ---------------------------------------------------------------------------------------------------- bench


@dataclass
class ServingBench:
    run_dir: Path
    args: argparse.Namespace
    conveyor: bv.Tool
    mlflow: bv.Tool
    wrk: Wrk | None = None
    prepared: dict[str, Any] = field(default_factory=dict)
    payloads: dict[int, bytes] = field(default_factory=dict)
    workspace: Path = Path()
    cells: list[Cell] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    hotswap: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    fast_stack_dir: Path | None = None

    def fail(self, message: str) -> None:
        self.failures.append(message)
        progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{message}\n")

    # -- setup ---------------------------------------------------------------------------------------

    def prepare(self) -> None:
        folder = self.run_dir / "prepared"
        progress("[setup] training the model and saving it as an MLflow model folder (MLflow's venv) ...")
        bv.run_checked([*self.mlflow.exe, str(RUNNER), "prepare", "--out", str(folder)], env=self.mlflow.env)
        self.prepared = json.loads((folder / "prepared.json").read_text())
        if not self.prepared["reloaded_predicts_alike"]:
            raise bv.BenchError("the MLflow model folder does not predict as the model it was saved from")
        scripts = {}
        for rows in ROWS:
            body = Path(self.prepared["payloads"][str(rows)]["file"])
            self.payloads[rows] = body.read_bytes()
            script = self.run_dir / f"wrk-{rows}.lua"
            script.write_text(WRK_SCRIPT.format(body=body))
            scripts[rows] = script
        self.wrk = Wrk(self.args.wrk, scripts)
        progress(
            f"[setup] wine LogisticRegression: {self.prepared['mlflow_files']['model.skops']:,} bytes (skops), "
            f"training accuracy {self.prepared['accuracy']['1']:.3f}; payloads "
            + ", ".join(f"{r} row(s) {self.prepared['payloads'][str(r)]['bytes']:,} bytes" for r in ROWS)
        )

    def conveyor_env(self) -> dict[str, str]:
        return dict(self.conveyor.env)

    def setup_workspace(self) -> None:
        ws = self.workspace = self.run_dir / "workspace"
        ws.mkdir()
        env = self.conveyor_env()
        bv.run_checked(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=ws)
        bv.run_checked(["git", "config", "user.name", "conveyor bench"], cwd=ws)
        bv.run_checked(["git", "config", "user.email", "bench@conveyor.invalid"], cwd=ws)
        bv.run_checked([str(CONVEYOR_CLI), "init"], cwd=ws, env=env)
        models = ws / "models"
        models.mkdir()
        for version, path in self.prepared["skops"].items():
            shutil.copyfile(path, models / f"model-v{version}.skops")
        shutil.copyfile(self.prepared["train_csv"], ws / "train.csv")
        bv.run_checked(["git", "add", "-A"], cwd=ws)
        bv.run_checked(["git", "commit", "-q", "-m", "init"], cwd=ws)
        out = bv.run_checked(self.register_argv(1), cwd=ws, env=env)
        if f"{MODEL}:1" not in out:
            raise bv.BenchError(f"conveyor model register did not make {MODEL}:1:\n{out}")
        bv.run_checked([str(CONVEYOR_CLI), "model", "promote", MODEL, "1", "--to", ALIAS], cwd=ws, env=env)
        progress(f"[setup] conveyor workspace {ws}: {MODEL}:1 registered and promoted to '{ALIAS}'")

    def register_argv(self, version: int) -> list[str]:
        return [
            str(CONVEYOR_CLI),
            "model",
            "register",
            MODEL,
            f"models/model-v{version}.skops",
            "--signature-from",
            "train.csv",
            "--label",
            LABEL,
        ]

    def ensure_fast_stack(self) -> Path:
        """uvloop and httptools at conveyor's versions in a folder of their own, for the mlflow-uvloop server."""
        folder = Path(self.args.mlflow_venv).absolute() / "uvicorn-standard"
        pins = [f"{name}=={brm.package_version(name)}" for name in FAST_STACK]
        marker = folder / ".installed"
        if not marker.is_file() or marker.read_text() != " ".join(pins):
            progress(f"[setup] installing {' '.join(pins)} into {folder} (for mlflow-uvloop only) ...")
            shutil.rmtree(folder, ignore_errors=True)
            bv.run_checked(
                [*self.mlflow.exe, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder), *pins]
            )
            marker.write_text(" ".join(pins))
        return folder

    def make_server(self, kind: str, workers: int, part: str) -> Server:
        log = self.run_dir / "logs" / f"{part}-{kind}-w{workers}.log"
        log.parent.mkdir(exist_ok=True)
        if kind == "conveyor":
            ref = f"{MODEL}@{ALIAS}"
            return Server(
                kind,
                workers,
                lambda port: [str(CONVEYOR_CLI), "serve", ref, "--port", str(port), "--workers", str(workers)],
                self.workspace,
                self.conveyor_env(),
                log,
            )
        if kind in ("mlflow", "mlflow-uvloop"):
            mlflow_cli = str(Path(self.mlflow.exe[0]).parent / "mlflow")
            env = dict(self.mlflow.env)
            # MLflow execs `uvicorn` from PATH: its venv's bin must come first (as in an activated venv)
            env["PATH"] = f"{Path(mlflow_cli).parent}{os.pathsep}{env.get('PATH', '')}"
            env.pop("PYTHONPATH", None)
            if kind == "mlflow-uvloop":
                if self.fast_stack_dir is None:
                    self.fast_stack_dir = self.ensure_fast_stack()
                env["PYTHONPATH"] = str(self.fast_stack_dir)
            model = self.prepared["mlflow_model"]
            return Server(
                kind,
                workers,
                lambda port: [
                    mlflow_cli,
                    "models",
                    "serve",
                    "-m",
                    model,
                    "--env-manager",
                    "local",
                    "-p",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                self.run_dir,
                env,
                log,
            )
        static = "raw" if kind == "static-raw" else "asgi"
        return Server(
            kind,
            workers,
            lambda port: [sys.executable, str(RUNNER), "static", "--kind", static, "--port", str(port)],
            self.run_dir,
            self.conveyor_env(),
            log,
        )

    @contextlib.contextmanager
    def running(self, part: str, kinds: list[str], workers: int) -> Iterator[list[Server]]:
        started: list[Server] = []
        try:
            for kind in kinds:
                server = self.make_server(kind, workers, part)
                try:
                    server.start()
                except bv.BenchError as error:
                    self.fail(f"{server.label} could not be started: {error}")
                    continue
                started.append(server)
            yield started
        finally:
            for server in started:
                record = {"part": part, **server.to_json()}
                if server.proc is not None and server.proc.poll() is None:
                    record["rss_mib_at_end"] = round(tree_rss_mib(server.proc.pid), 1)
                server.stop()
                record["exit_code"] = server.proc.returncode if server.proc is not None else None
                self.servers.append(record)

    def check_answers(self, server: Server, when: str) -> str | None:
        """Both payloads answered with the model's predictions (version 1); None when right."""
        for rows in ROWS:
            status, _headers, body = http(server.url + "/invocations", self.payloads[rows])
            expected = self.prepared["payloads"][str(rows)]["predictions"]["1"]
            try:
                got = json.loads(body).get("predictions")
            except ValueError:
                got = None
            ok = status == 200 and got == expected
            self.checks.append(
                {"server": server.label, "when": when, "rows": rows, "status": status, "predictions_match": ok}
            )
            if not ok:
                return f"{rows} row(s): status {status}, body {body[:300]!r}, expected predictions {expected[:10]}..."
        return None

    # -- measuring -----------------------------------------------------------------------------------

    def measure_cells(self, part: str, servers: list[Server], workers: int, shapes: list[tuple[int, int]]) -> None:
        assert self.wrk is not None
        broken: set[str] = set()
        for server in servers:
            if server.kind.startswith("static"):
                continue  # a fixed answer: nothing to check
            problem = self.check_answers(server, "before")
            if problem:
                self.fail(f"{server.label} answers wrongly: {problem}")
                broken.add(server.kind)
        for index, (rows, concurrency) in enumerate(shapes):
            order = servers if index % 2 == 0 else servers[::-1]
            for server in order:
                cell = Cell(part, server.kind, workers, rows, concurrency)
                self.cells.append(cell)
                if server.kind in broken:
                    cell.error = "not measured: the server failed before"
                    continue
                try:
                    if self.args.warmup > 0:
                        cell.warmup = self.wrk.run(server, rows, concurrency, self.args.warmup)
                    cell.measured = self.wrk.run(server, rows, concurrency, self.args.duration)
                except bv.BenchError as error:
                    cell.error = str(error)
                    self.fail(f"[{part}] {server.label}, {rows} row(s), concurrency {concurrency}: {error}")
                    broken.add(server.kind)
                    continue
                m = cell.measured
                progress(
                    f"[{part}] {server.label:<32} {rows:>3} row(s) c={concurrency}: {m.rps:8.1f} req/s, "
                    f"p50 {m.p50_ms:7.2f} ms, p99 {m.p99_ms:7.2f} ms, failed {m.failed}; server "
                    f"{m.cores(m.server_cpu_s):.2f} cores, wrk {m.cores(m.wrk_cpu_s):.2f}, others "
                    f"{m.cores(m.others_cpu_s):.2f}"
                )
                if m.failed:
                    self.fail(f"[{part}] {server.label}, {rows} row(s), c={concurrency}: {m.failed} failed {m.errors}")
        for server in servers:
            if server.kind in broken or server.kind.startswith("static"):
                continue
            problem = self.check_answers(server, "after")
            if problem:
                self.fail(f"{server.label} answers wrongly after the load: {problem}")

    def throughput(self) -> None:
        shapes = [(rows, c) for rows in ROWS for c in CONCURRENCY]
        for workers in self.args.workers:
            progress(f"[throughput] workers {workers}: starting {', '.join(self.args.servers)} ...")
            with self.running("throughput", list(self.args.servers), workers) as servers:
                self.measure_cells("throughput", servers, workers, shapes)

    def ceiling(self) -> None:
        shapes = [(1, 1), (1, 8), (100, 8)]
        progress("[ceiling] wrk against servers that answer a fixed body ...")
        with self.running("ceiling", list(STATIC), 1) as servers:
            self.measure_cells("ceiling", servers, 1, shapes)

    # -- hot swap ------------------------------------------------------------------------------------

    def hot_swap(self) -> None:
        workers = self.args.swap_workers
        record: dict[str, Any] = {"workers": workers, "connections": SWAP_CONNECTIONS, "swaps": []}
        self.hotswap = record
        with self.running("hotswap", ["conveyor"], workers) as servers:
            if not servers:
                record["error"] = "the server did not start"
                return
            server = servers[0]
            payload = json.loads(self.payloads[1])
            status, headers, body = http(server.url + "/invocations", self.payloads[1])
            if status == 200 and "x-conveyor-model-version" in headers:
                record["version_from"] = "x-conveyor-model-version header of POST /invocations"
                request, version_of = raw_request("/invocations", self.payloads[1]), version_from_header
            else:
                oip = oip_body(payload)
                status, _headers, body = http(f"{server.url}/v2/models/{MODEL}/infer", oip)
                if status != 200 or version_from_oip({}, body) is None:
                    record["error"] = "the server reports the version that answered neither in a header nor in OIP"
                    self.fail(f"[hotswap] {record['error']}: {status} {body[:300]!r}")
                    return
                record["version_from"] = "model_version in the body of POST /v2/models/NAME/infer"
                request, version_of = raw_request(f"/v2/models/{MODEL}/infer", oip), version_from_oip
            try:
                runner = asyncio.run if not _has_uvloop() else _uvloop_run
                runner(self._swap_session(server, record, request, version_of))
            except bv.BenchError as error:
                record["error"] = str(error)
                self.fail(f"[hotswap] {error}")
            status, _headers, body = http(server.url + "/version")
            record["version_endpoint_at_end"] = body.decode(errors="replace")
            record["server_events"] = [
                line
                for line in server.log.read_text(errors="replace").splitlines()
                if "conveyor-serve" in line and "swapped" in line
            ][-20:]

    async def _swap_session(
        self,
        server: Server,
        record: dict[str, Any],
        request: bytes,
        version_of: Callable[[dict[bytes, bytes], bytes], str | None],
    ) -> None:
        load = SwapLoad(server.port, request, version_of)
        env, ws = self.conveyor_env(), self.workspace
        clients = [asyncio.create_task(load.client()) for _ in range(load.connections)]
        began = time.perf_counter()
        cpu0, own0 = server.cpu(), time.process_time()
        try:
            await asyncio.sleep(SWAP_SETTLE)
            # a second version, registered under load
            t0 = time.perf_counter()
            code, out = await run_command(self.register_argv(2), ws, env)
            record["register_seconds"] = round(time.perf_counter() - t0, 3)
            found = re.search(rf"registered {MODEL}:(\d+)", out)
            if code != 0 or found is None:
                raise bv.BenchError(f"conveyor model register (version 2) exited with {code}:\n{out}")
            versions = ["1", found.group(1)]
            await asyncio.sleep(SWAP_SETTLE / 2)
            current = "1"
            for index in range(self.args.swaps):
                target = versions[1] if current == versions[0] else versions[0]
                swap: dict[str, Any] = {"from": current, "to": target}
                record["swaps"].append(swap)
                mark = len(load.answers)
                t0 = time.perf_counter()
                argv = [str(CONVEYOR_CLI), "model", "promote", MODEL, target, "--to", ALIAS]
                code, out = await run_command(argv, ws, env)
                t1 = time.perf_counter()
                swap["promote_seconds"] = round(t1 - t0, 3)
                if code != 0:
                    raise bv.BenchError(f"`{shlex.join(argv)}` exited with {code}:\n{out}")
                first = None
                while first is None and time.perf_counter() - t1 < SWAP_TIMEOUT:
                    first = next(
                        (a for a in load.answers[mark:] if a[2] == 200 and a[3] == target and a[1] >= t0), None
                    )
                    if first is None:
                        await asyncio.sleep(0.002)
                if first is None:
                    swap["error"] = (
                        f"no answer from version {target} within {SWAP_TIMEOUT:.0f} s of the promotion: the server "
                        "does not follow the alias (is hot swap in this build?)"
                    )
                    raise bv.BenchError(swap["error"])
                await asyncio.sleep(SWAP_SETTLE)
                window = [a for a in load.answers[mark:] if a[1] >= t0]
                swap["first_new_after_promote_returned_ms"] = round((first[1] - t1) * 1000, 1)
                swap["first_new_after_promote_started_ms"] = round((first[1] - t0) * 1000, 1)
                swap["old_version_answers_after_first_new"] = sum(
                    1 for a in window if a[1] > first[1] and a[3] == current
                )
                old = [a[1] for a in window if a[3] == current]
                swap["last_old_after_promote_returned_ms"] = round((max(old) - t1) * 1000, 1) if old else None
                swap["failed"] = sum(1 for a in window if a[2] != 200)
                around = [a[1] - a[0] for a in window if a[1] <= first[1] + 1.0]
                swap["slowest_answer_within_1s_of_swap_ms"] = round(max(around) * 1000, 2) if around else None
                progress(
                    f"[hotswap] swap {index + 1}: {MODEL}:{current} -> {MODEL}:{target}: promote took "
                    f"{swap['promote_seconds'] * 1000:.0f} ms; first answer of {target} "
                    f"{swap['first_new_after_promote_returned_ms']:+.0f} ms after it returned; "
                    f"{swap['failed']} failed"
                )
                current = target
            await asyncio.sleep(1.0)
        finally:
            load.stop.set()
            await asyncio.gather(*clients, return_exceptions=True)
            ended = time.perf_counter()
            answers = load.answers
            failed = [a for a in answers if a[2] != 200]
            latencies = [(a[1] - a[0]) * 1000 for a in answers if a[2] == 200]
            record.update(
                {
                    "seconds": round(ended - began, 2),
                    "answers": len(answers),
                    "failed": len(failed),
                    "failed_examples": [{"status": a[2], "what": a[3]} for a in failed[:10]],
                    "requests_per_second": round(len(answers) / (ended - began), 1),
                    "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
                    "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
                    "max_ms": round(max(latencies), 2) if latencies else None,
                    "server_cpu_cores": round((server.cpu() - cpu0) / (ended - began), 3),
                    "client_cpu_cores": round((time.process_time() - own0) / (ended - began), 3),
                    "versions_seen": sorted({a[3] for a in answers if a[2] == 200}),
                }
            )
            done = [s for s in record["swaps"] if "first_new_after_promote_returned_ms" in s]
            if done:
                after = [s["first_new_after_promote_returned_ms"] for s in done]
                record["first_new_after_promote_returned_ms"] = {"max": max(after), "median": statistics.median(after)}
            progress(
                f"[hotswap] {len(answers):,} answers in {ended - began:.1f} s ({record['requests_per_second']} req/s),"
                f" {len(failed)} failed; {len(done)} of {self.args.swaps} swaps seen"
            )
            if failed:
                self.fail(f"[hotswap] {len(failed)} requests failed during the swaps: {record['failed_examples']}")

    def run(self) -> None:
        parts = self.args.parts
        if "throughput" in parts:
            self.throughput()
        if "ceiling" in parts:
            self.ceiling()
        if "hotswap" in parts:
            self.hot_swap()


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _uvloop_run(coroutine: Any) -> Any:
    import uvloop

    return uvloop.run(coroutine)


# ---------------------------------------------------------------------------------------------------- report


def find(bench: ServingBench, part: str, server: str, workers: int, rows: int, c: int) -> LoadRun | None:
    for cell in bench.cells:
        if (cell.part, cell.server, cell.workers, cell.rows, cell.concurrency) == (part, server, workers, rows, c):
            return cell.measured if cell.error is None else None
    return None


def disturbed(m: LoadRun) -> bool:
    return m.cores(m.others_cpu_s) > DISTURBED


def rate(m: LoadRun | None) -> str:
    return (f"{m.rps:,.0f}" + (" †" if disturbed(m) else "")) if m else "failed"


def lat(m: LoadRun | None) -> str:
    return f"{m.p50_ms:.1f} / {m.p99_ms:.1f}" if m else "failed"


def ratio(ours: float | None, theirs: float | None, unit: str = "×") -> str:
    if not ours or not theirs:
        return "—"
    return f"{ours / theirs:.2f}{unit}"


def failed(m: LoadRun | None) -> str:
    return str(m.failed) if m else "—"


def throughput_table(bench: ServingBench, workers: int) -> list[str]:
    lines = [
        "| payload | concurrency | MLflow req/s | conveyor req/s | conveyor ÷ MLflow | MLflow p50 / p99 (ms) "
        "| conveyor p50 / p99 (ms) | p99 conveyor ÷ MLflow | failed requests (MLflow / conveyor) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in ROWS:
        for c in CONCURRENCY:
            ours = find(bench, "throughput", "conveyor", workers, rows, c)
            theirs = find(bench, "throughput", "mlflow", workers, rows, c)
            lines.append(
                f"| {rows} row{'s' if rows > 1 else ''} | {c} | {rate(theirs)} | {rate(ours)} | "
                f"{ratio(ours and ours.rps, theirs and theirs.rps)} | {lat(theirs)} | {lat(ours)} | "
                f"{ratio(ours and ours.p99_ms, theirs and theirs.p99_ms, '')} | {failed(theirs)} / {failed(ours)} |"
            )
    return lines


def variant_table(bench: ServingBench, workers: int) -> list[str]:
    lines = [
        "| payload | concurrency | MLflow on uvloop + httptools req/s | p50 / p99 (ms) | vs plain MLflow req/s "
        "| conveyor ÷ it (req/s) | p99 conveyor ÷ it | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in ROWS:
        for c in CONCURRENCY:
            fast = find(bench, "throughput", "mlflow-uvloop", workers, rows, c)
            plain = find(bench, "throughput", "mlflow", workers, rows, c)
            ours = find(bench, "throughput", "conveyor", workers, rows, c)
            lines.append(
                f"| {rows} row{'s' if rows > 1 else ''} | {c} | {rate(fast)} | {lat(fast)} | "
                f"{ratio(fast and fast.rps, plain and plain.rps)} | {ratio(ours and ours.rps, fast and fast.rps)} | "
                f"{ratio(ours and ours.p99_ms, fast and fast.p99_ms, '')} | {failed(fast)} |"
            )
    return lines


def cpu_table(bench: ServingBench, part: str) -> list[str]:
    lines = [
        "| server | workers | payload | concurrency | req/s | server CPU (cores) | server CPU per request (ms) "
        "| wrk CPU (cores) | wrk CPU per request (µs) | other processes (cores) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in bench.cells:
        m = cell.measured
        if cell.part != part or m is None:
            continue
        lines.append(
            f"| {TITLES[cell.server]} | {cell.workers} | {cell.rows} | {cell.concurrency} | {m.rps:,.0f} | "
            f"{m.cores(m.server_cpu_s):.2f} | {m.server_cpu_s / m.requests * 1000:.2f} | {m.cores(m.wrk_cpu_s):.2f} | "
            f"{m.wrk_cpu_s / m.requests * 1e6:.0f} | {m.cores(m.others_cpu_s):.2f} |"
        )
    return lines


def ceiling_table(bench: ServingBench) -> list[str]:
    lines = [
        "| fixed-answer server | payload | concurrency | req/s | p50 / p99 (ms) | server CPU (cores) | wrk CPU (cores) "
        "| wrk CPU per request (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in bench.cells:
        m = cell.measured
        if cell.part != "ceiling" or m is None:
            continue
        lines.append(
            f"| {TITLES[cell.server]} | {cell.rows} | {cell.concurrency} | {m.rps:,.0f} | {lat(m)} | "
            f"{m.cores(m.server_cpu_s):.2f} | {m.cores(m.wrk_cpu_s):.2f} | {m.wrk_cpu_s / m.requests * 1e6:.0f} |"
        )
    return lines


def targets_table(bench: ServingBench) -> list[str]:
    lines = [
        f"| 1-row payload, workers 1 | conveyor ÷ MLflow req/s (target ≥ {TARGET_SPEED_UP:g}×) "
        f"| p99 conveyor ÷ MLflow (target ≤ {TARGET_P99_SHARE:.2f}) | met |",
        "|---|---:|---:|---|",
    ]
    for c in CONCURRENCY:
        ours = find(bench, "throughput", "conveyor", 1, 1, c)
        theirs = find(bench, "throughput", "mlflow", 1, 1, c)
        if not ours or not theirs:
            lines.append(f"| concurrency {c} | — | — | not measured |")
            continue
        speed, share = ours.rps / theirs.rps, ours.p99_ms / theirs.p99_ms
        met = speed >= TARGET_SPEED_UP and share <= TARGET_P99_SHARE
        lines.append(
            f"| concurrency {c} | {speed:.2f}× ({ours.rps:,.0f} vs {theirs.rps:,.0f}) | {share:.2f} "
            f"({ours.p99_ms:.1f} vs {theirs.p99_ms:.1f} ms) | {'yes' if met else 'no'} |"
        )
    return lines


def hotswap_lines(bench: ServingBench) -> list[str]:
    record = bench.hotswap
    if not record:
        return []
    lines = ["", "### Hot swap (conveyor)", ""]
    if record.get("error") and not record.get("swaps"):
        return [*lines, f"Not measured: {record['error']}"]
    lines += [
        f"`conveyor serve {MODEL}@{ALIAS} --workers {record['workers']}` under {record['connections']} keep-alive "
        f"connections sending the 1-row request (the version read from the {record.get('version_from', '?')}); "
        f"version 2 registered under load in {record.get('register_seconds', '?')} s; then "
        f"`conveyor model promote {MODEL} N --to {ALIAS}`, alternating 1 and 2.",
        "",
        "| swap | promote command (ms) | first answer of the new version after the command returned (ms) "
        "| … after it started (ms) | last answer of the old version after the command returned (ms) "
        "| old-version answers after the first new one | slowest answer within 1 s (ms) | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for swap in record["swaps"]:
        if "first_new_after_promote_returned_ms" not in swap:
            lines.append(
                f"| {swap['from']} → {swap['to']} | {swap.get('promote_seconds', 0) * 1000:.0f} | "
                f"{swap.get('error', 'not seen')} | | | | | |"
            )
            continue
        lines.append(
            f"| {swap['from']} → {swap['to']} | {swap['promote_seconds'] * 1000:.0f} | "
            f"{swap['first_new_after_promote_returned_ms']:+.0f} | {swap['first_new_after_promote_started_ms']:.0f} | "
            f"{_signed(swap['last_old_after_promote_returned_ms'])} | "
            f"{swap['old_version_answers_after_first_new']} | {swap['slowest_answer_within_1s_of_swap_ms']} | "
            f"{swap['failed']} |"
        )
    summary = record.get("first_new_after_promote_returned_ms")
    lines += [
        "",
        f"- Whole window: {record.get('answers', 0):,} answers in {record.get('seconds', 0)} s "
        f"({record.get('requests_per_second', 0)} req/s, p50 {record.get('p50_ms')} ms, p99 {record.get('p99_ms')} ms, "
        f"max {record.get('max_ms')} ms); **failed requests: {record.get('failed', '?')}** (target 0).",
    ]
    if summary:
        lines.append(
            f"- From the promote command returning to the first answer of the new version: median "
            f"{summary['median']:+.0f} ms, max {summary['max']:+.0f} ms (the server polls the registry every 0.5 s)."
        )
    if record.get("error"):
        lines.append(f"- **Error**: {record['error']}")
    return lines


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0f}"


def ceiling_lines(bench: ServingBench) -> list[str]:
    """What wrk reached against a fixed answer, and what it cost in the model servers' cells."""
    static = [c.measured for c in bench.cells if c.part == "ceiling" and c.measured]
    served = [c for c in bench.cells if c.part == "throughput" and c.measured]
    if not static:
        return []
    best = max(static, key=lambda m: m.rps)
    lines = [
        "",
        f"wrk (one thread, so at most 1.00 core) reached {best.rps:,.0f} req/s against a fixed answer, using "
        f"{best.cores(best.wrk_cpu_s):.2f} of a core ({best.wrk_cpu_s / best.requests * 1e6:.0f} µs of CPU per "
        f"request), the server {best.cores(best.server_cpu_s):.2f} and other processes "
        f"{best.cores(best.others_cpu_s):.2f}.",
    ]
    if served:
        top = max(served, key=lambda c: c.measured.rps if c.measured else 0)
        m = top.measured
        assert m is not None
        lines.append(
            f"In the fastest model-server cell ({TITLES[top.server]}, {top.workers} worker(s), {top.rows} row(s), "
            f"concurrency {top.concurrency}: {m.rps:,.0f} req/s, {m.rps / best.rps:.1%} of that) wrk used "
            f"{m.cores(m.wrk_cpu_s):.2f} of a core."
        )
    return lines


def stack_phrase(bench: ServingBench, kind: str) -> str:
    for record in bench.servers:
        if record["kind"] == kind:
            loaded = [name for name, on in record["native_modules_loaded"].items() if on]
            return "uvloop + httptools" if len(loaded) == 2 else ("+".join(loaded) or "asyncio + h11")
    return "not started"


def markdown(bench: ServingBench, meta: dict[str, Any]) -> str:
    machine, versions = meta["machine"], meta["versions"]
    source = meta["conveyor_source_start"]
    out = [
        "## Model serving: conveyor vs MLflow",
        "",
        f"- Date: {meta['date_utc']}; the whole run took {meta.get('elapsed_seconds', 0) / 60:.1f} min",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, {machine['kernel']}; "
        f"load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end', '?')} (shared machine); "
        f"{meta.get('quiet_wait', {}).get('busy_cores_at_start', '?')} cores busy just before the first cell",
        f"- conveyor {versions.get('conveyor')} (commit {source['commit'][:9]}"
        + (", with uncommitted changes in src/" if source["src_uncommitted_changes"] else "")
        + f"), Python {versions['python']}; MLflow {versions.get('mlflow')} (mlflow-skinny), Python "
        f"{versions.get('mlflow_python')}",
        "- Libraries: conveyor's venv "
        + ", ".join(f"{k} {v}" for k, v in versions.get("conveyor_venv", {}).items())
        + "; MLflow's venv "
        + ", ".join(f"{k} {v}" for k, v in versions.get("mlflow_venv", {}).items()),
        f"- Load generator: {meta['wrk']} (one thread, keep-alive connections = concurrency, closed loop), "
        f"warm-up {meta['warmup']:g} s then {meta['duration']:g} s measured per cell; the servers take turns cell by "
        "cell",
        f"- Model: {bench.prepared.get('dataset')} LogisticRegression, {len(bench.prepared.get('features', []))} "
        f"named float features, saved once by mlflow.sklearn.save_model (skops, with signature); conveyor registers "
        f"the same model.skops with --signature-from the training table. Payloads: MLflow's dataframe_split JSON, "
        + ", ".join(f"{r} row(s) = {bench.prepared['payloads'][str(r)]['bytes']:,} bytes" for r in ROWS)
        if bench.prepared
        else "- Model: not prepared",
        f"- Servers: `conveyor serve {MODEL}@{ALIAS} --port P --workers W` on {stack_phrase(bench, 'conveyor')}; "
        f"`mlflow models serve -m FOLDER --env-manager local -p P --workers W` on {stack_phrase(bench, 'mlflow')} "
        "(MLflow's default install and its default of 1 worker). Both with their default access log of every "
        "request (to a file).",
        f"- Command: `{meta['command']}`",
        *(
            ["- **conveyor's source changed while this ran** (the tree is shared): the numbers mix two versions"]
            if meta.get("conveyor_source_end", source)["src_sha256"] != source["src_sha256"]
            else []
        ),
        f"- The issue's reference for MLflow on this kind of machine: {REFERENCE}.",
    ]
    for workers in meta["workers"]:
        if not any(c.part == "throughput" and c.workers == workers for c in bench.cells):
            continue
        out += ["", f"### Throughput and latency, {workers} worker{'s' if workers > 1 else ''} each", ""]
        out += throughput_table(bench, workers)
        if workers > 1 and stack_phrase(bench, "mlflow") == "asyncio + h11":
            out += [
                "",
                "MLflow with more than one worker on plain uvicorn (asyncio + h11) is hit by uvicorn's known issue "
                "3149 (Kludex/uvicorn, open): the supervisor binds the socket with `proto` 0, so asyncio never sets "
                "TCP_NODELAY on accepted connections, and each keep-alive answer waits about 40 ms for the client's "
                "delayed ACK (Nagle). It shows as a high p50 with the server mostly idle (CPU table). uvloop sets "
                "TCP_NODELAY itself, so conveyor and the uvloop variant below do not have it: the ratio against the "
                "variant is the one that measures the servers rather than that bug.",
            ]
        if "mlflow-uvloop" in meta["servers"]:
            out += ["", "The same MLflow server with uvloop and httptools importable (conveyor's HTTP stack):", ""]
            out += variant_table(bench, workers)
    if any(c.part == "throughput" for c in bench.cells):
        out += ["", "### Against the targets", "", *targets_table(bench)]
        out += ["", "### Where the CPU went (throughput cells)", "", *cpu_table(bench, "throughput")]
    if any(c.part == "ceiling" for c in bench.cells):
        out += ["", "### The load generator's ceiling", "", *ceiling_table(bench), *ceiling_lines(bench)]
    out += hotswap_lines(bench)
    runs = [c.measured for c in bench.cells if c.measured]
    marked = sum(1 for m in runs if disturbed(m))
    if marked:
        out += [
            "",
            f"† other processes used more than {DISTURBED:.2f} of a core during that run ({marked} of {len(runs)} "
            "runs; the machine is shared, and the servers not being measured sit idle beside it): its numbers are "
            "less trustworthy.",
        ]
    if bench.failures:
        out += ["", f"**{len(bench.failures)} failure(s)**: see the JSON file; failed cells get no ratio."]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------------ main


def busy_cores(seconds: float = 3.0) -> float:
    before = machine_busy()
    time.sleep(seconds)
    return (machine_busy() - before) / seconds


def wait_quiet(limit: int) -> dict[str, Any]:
    """Wait up to `limit` seconds for the machine to be quiet (other processes' CPU under QUIET cores)."""
    began = time.perf_counter()
    busy = busy_cores()
    while busy >= QUIET and time.perf_counter() - began < limit:
        progress(f"[setup] the machine is busy ({busy:.2f} cores in use); waiting for a quiet moment ...")
        time.sleep(10)
        busy = busy_cores()
    waited = time.perf_counter() - began
    if busy >= QUIET:
        progress(f"[setup] WARNING: {busy:.2f} cores in use by other processes: the numbers will be noisy")
    return {"waited_seconds": round(waited, 1), "busy_cores_at_start": round(busy, 2)}


def mlflow_tool(venv: Path, run_dir: Path) -> bv.Tool:
    """bench_registry's MLflow venv (created on first use), plus what `mlflow models serve` needs."""
    tool = breg.mlflow_tool(venv, run_dir)
    probe = [*tool.exe, "-c", "import fastapi, uvicorn, mlflow.pyfunc.scoring_server"]
    if subprocess.run(probe, env=tool.env, capture_output=True).returncode != 0:
        progress(f"[setup] installing {' '.join(MLFLOW_SERVE_REQUIREMENTS)} into {venv} for mlflow models serve ...")
        bv.run_checked([*tool.exe, "-m", "pip", "install", "--quiet", *MLFLOW_SERVE_REQUIREMENTS], env=tool.env)
        bv.run_checked(probe, env=tool.env)
    return tool


def relevant(freeze: list[str]) -> dict[str, str]:
    found = {}
    for line in freeze:
        name, sep, version = line.partition("==")
        key = name.lower().replace("_", "-")
        if sep and key in RELEVANT:
            found[key] = version
        elif " @ " in line and line.split(" @ ")[0].lower() in RELEVANT:
            found[line.split(" @ ")[0].lower()] = "editable/local"
    return found


def parse_list(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return items

    return parse


def parse_workers(text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a list of positive numbers, e.g. 1,2") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a list of positive numbers, e.g. 1,2")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="conveyor serve vs mlflow models serve under the same load (wrk).")
    parser.add_argument("--quick", action="store_true", help="3 s cells, 1 worker, 2 swaps: a check that it works")
    parser.add_argument("--duration", type=int, help=f"whole seconds measured per cell ({DEFAULT_DURATION})")
    parser.add_argument(
        "--warmup", type=int, help=f"whole seconds of warm-up before each cell, 0: none ({DEFAULT_WARMUP})"
    )
    parser.add_argument("--workers", type=parse_workers, help="worker processes of both servers, a list (1,2)")
    parser.add_argument("--servers", type=parse_list(SERVERS), default=list(SERVERS), help=",".join(SERVERS))
    parser.add_argument("--parts", type=parse_list(PARTS), default=list(PARTS), help=",".join(PARTS))
    parser.add_argument("--swaps", type=int, help=f"alias moves in the hot-swap part ({DEFAULT_SWAPS})")
    parser.add_argument("--swap-workers", type=int, default=1, help="conveyor's workers in the hot-swap part (1)")
    parser.add_argument(
        "--wait-quiet",
        type=int,
        default=0,
        metavar="SECONDS",
        help=f"wait up to this long for other processes to use under {QUIET:.2f} of a core before measuring (0)",
    )
    parser.add_argument("--mlflow-venv", type=Path, default=DEFAULT_MLFLOW_VENV)
    parser.add_argument("--workdir", type=Path, default=bv.DEFAULT_WORKDIR)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (workspace, server logs)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    args = parser.parse_args(argv)
    args.duration = args.duration or (QUICK_DURATION if args.quick else DEFAULT_DURATION)
    if args.duration < 1 or (args.warmup is not None and args.warmup < 0):
        parser.error("--duration must be at least 1 s and --warmup at least 0")
    args.warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else DEFAULT_WARMUP)
    args.workers = args.workers or (QUICK_WORKERS if args.quick else DEFAULT_WORKERS)
    args.swaps = args.swaps if args.swaps is not None else (QUICK_SWAPS if args.quick else DEFAULT_SWAPS)
    if "conveyor" not in args.servers or "mlflow" not in args.servers:
        parser.error("--servers must include conveyor and mlflow (the comparison)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    with bv.RunDir(args.workdir.resolve() / f"serving-{stamp}", args.keep) as run_dir:
        try:
            args.wrk, wrk_version = ensure_wrk()
            conveyor = bc.conveyor_tool(run_dir)
            mlflow = mlflow_tool(args.mlflow_venv.absolute(), run_dir)
        except bv.BenchError as error:
            progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
            return 2
        freezes = {"conveyor_venv": bc.pip_freeze(sys.executable), "mlflow_venv": bc.pip_freeze(mlflow.exe[0])}
        versions: dict[str, Any] = {
            "python": platform.python_version(),
            "conveyor": conveyor.version,
            "mlflow": mlflow.version,
            "mlflow_python": mlflow.python_version,
            **{name: relevant(freeze) for name, freeze in freezes.items()},
        }
        progress(f"[setup] conveyor {conveyor.version}, MLflow {mlflow.version}, {wrk_version}")
        meta: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": bv.machine_info(run_dir),
            "versions": versions,
            "pip_freeze": freezes,
            "wrk": wrk_version,
            "duration": args.duration,
            "warmup": args.warmup,
            "workers": args.workers,
            "servers": args.servers,
            "parts": args.parts,
            "swaps": args.swaps,
            "rows": list(ROWS),
            "concurrency": list(CONCURRENCY),
            "targets": {"speed_up": TARGET_SPEED_UP, "p99_share": TARGET_P99_SHARE, "reference": REFERENCE},
            "loadavg_start": bp.loadavg(),
            "conveyor_source_start": brm.source_state(),
        }
        bench = ServingBench(run_dir, args, conveyor, mlflow)
        try:
            bench.prepare()
            bench.setup_workspace()
        except bv.BenchError as error:
            progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
            return 2
        meta["quiet_wait"] = wait_quiet(args.wait_quiet)
        try:
            bench.run()
        finally:
            meta["loadavg_end"] = bp.loadavg()
            meta["conveyor_source_end"] = brm.source_state()
            if meta["conveyor_source_end"]["src_sha256"] != meta["conveyor_source_start"]["src_sha256"]:
                progress("[setup] WARNING: conveyor's source changed while the benchmark ran")
            meta["elapsed_seconds"] = (dt.datetime.now(dt.UTC) - started).total_seconds()
            meta["prepared"] = {k: v for k, v in bench.prepared.items() if k != "signature"}

    report = markdown(bench, meta)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "servers_run": bench.servers,
        "answer_checks": bench.checks,
        "cells": [cell.to_json() for cell in bench.cells],
        "hotswap": bench.hotswap,
    }
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    results_file = bv.RESULTS_DIR / f"serving-{stamp}.json"
    results_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    progress(f"[setup] raw numbers in {results_file}")
    if bench.failures:
        progress(f"!!!!! {len(bench.failures)} FAILURE(S): see above; no ratio printed for them !!!!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
