"""Time conveyor's remotes and DVC 3.x side by side: push and pull of the same data to the same remote.

Two data sets, each written byte for byte the same for both tools (seeded random bytes), tracked with
``conveyor add`` / ``dvc add`` in a fresh git repository per tool:

* ``files``: N files of 1 KiB in one folder (``data/d000/f000000.bin`` ..., 1,000 per subfolder; 10,000 files);
* ``big``: one big file (``big.bin``, 1 GiB).

Two remotes, the same for both tools (each tool under its own prefix):

* ``local``: a folder on the same disk (``conveyor remote add local DIR --default``, ``dvc remote add -d local DIR``);
* ``s3``: an S3 server on loopback, moto's ``ThreadedMotoServer(ip_address="127.0.0.1", port=0)`` in a subprocess,
  one bucket; conveyor: ``remote add s3 s3://bench/conveyor/DATA --default`` and ``remote modify s3 endpoint_url
  http://127.0.0.1:PORT``; DVC: ``remote add -d s3 s3://bench/dvc/DATA`` and ``remote modify s3 endpointurl ...``;
  both with the same dummy credentials from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_DEFAULT_REGION=us-east-1``). DVC needs the ``dvc-s3`` plugin in its venv; it is installed when missing.

For each remote, data set and tool, timed with the launcher of ``bench_versioning.py`` (wall time and peak RSS of
the command's process tree):

* first push (into an empty remote prefix; before a repeat, the prefix and the tool's memory of what the remote
  holds are deleted: conveyor's ``.conveyor/remotes/``, DVC's remote indexes in its site cache);
* no-op push (everything already there);
* pull into an empty cache: the cache, the data and the tool's memory of the remote are deleted, then ``pull``.

Each is the median of --repeat runs (3), except that a command whose first run takes longer than --once-over
seconds (45) is not run again (DVC's pushes and pulls of 10,000 files to the S3 server, one request per file,
take 30 to 60 s: the moto server answers a few hundred requests a second). Every exit code is checked, and every
result: the number of objects pushed or fetched, a no-op push that reports nothing to send, the pulled data hashed
again and compared with what was written.
On the S3 remote, the requests each command made are counted from the server's log, and the server's CPU time.

    .venv/bin/python bench/bench_remote.py [--quick] [--files 10000] [--big-mib 1024] [--data files,big]
        [--backends local,s3] [--only both] [--repeat 3] [--once-over 45] [--dvc-venv bench/.venv-dvc]
        [--workdir bench/.work] [--keep] [--markdown FILE]

The raw numbers go to ``bench/results/remote-YYYYMMDD-HHMMSS.json``; the Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_pipeline as bp
import bench_versioning as bv

DEFAULT_FILES = 10_000
DEFAULT_BIG_MIB = 1024
QUICK_FILES = 2_000
QUICK_BIG_MIB = 100
DEFAULT_REPEAT = 3
DEFAULT_ONCE_OVER = 45.0  # seconds: a command slower than this on its first run is timed once
BUCKET = "bench"
MB = 1_000_000  # throughput is in MB/s (10^6 bytes)
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never look for an instance-metadata endpoint
}
FIRST_PUSH, NOOP_PUSH, PULL = "first push", "no-op push", "pull into an empty cache"
OPERATIONS = (FIRST_PUSH, NOOP_PUSH, PULL)

# Targets of the remotes issue.
TARGET_SMALL_SPEED_UP = 3.0  # small files: at least 3x DVC's throughput
TARGET_BIG_PAR = 0.95  # the big file: "on par" = at least 0.95x DVC's throughput
TARGET_NOOP_SECONDS = 1.0  # no-op push of the small files


def progress(message: str) -> None:
    bv.progress(message)


# ------------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Dataset:
    kind: str  # "files" or "big"
    files: int = 0
    mib: int = 0

    @property
    def name(self) -> str:
        return f"files-{self.files}" if self.kind == "files" else f"big-{self.mib}"

    @property
    def label(self) -> str:
        if self.kind == "files":
            return f"{self.files:,} files of 1 KiB"
        return f"one {bv.size_label(self.mib)} file"

    @property
    def path(self) -> str:
        return bv.DATA if self.kind == "files" else bv.BIG

    @property
    def payload_bytes(self) -> int:
        return self.files * bv.FILE_SIZE if self.kind == "files" else self.mib * 1024 * 1024

    @property
    def objects(self) -> int:
        """Objects each tool moves: the files, plus the folder's manifest (conveyor) or .dir object (DVC)."""
        return self.files + 1 if self.kind == "files" else 1

    def write(self, repo: Path, seed: int) -> str:
        if self.kind == "files":
            return bv.write_folder(repo, self.files, seed)
        return bv.write_big_file(repo / bv.BIG, self.mib, seed)

    def digest(self, repo: Path) -> str:
        """The same digest `write` returned, computed again from what is on disk now."""
        digest = hashlib.sha256()
        if self.kind == "files":
            for index in range(self.files):
                path = repo / bv.file_name(index)
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
            return digest.hexdigest()
        with (repo / bv.BIG).open("rb") as handle:
            while chunk := handle.read(bv.CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def verify(self, repo: Path, expected: str) -> str | None:
        """What is wrong with the data in repo (None when it is exactly what was written)."""
        target = repo / self.path
        if not target.exists():
            return f"{self.path} is missing"
        if self.kind == "files" and (found := bv.count_files(target)) != self.files:
            return f"{found:,} files in {self.path} instead of {self.files:,}"
        try:
            actual = self.digest(repo)
        except OSError as error:
            return f"cannot read the data back: {error}"
        return None if actual == expected else f"{self.path} does not hold the data that was written"

    def remove(self, repo: Path) -> None:
        target = repo / self.path
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


class Trash:
    """Where folders of many files go between timed runs, deleted only once a data set is done.

    On this machine's file system (ext4 without a journal), every file created in the minutes
    after many files were deleted costs more (the allocator steps over each recently freed inode):
    deleting 20,000 files right before a timed pull made each file it created three to ten times
    slower, for either tool. A fresh clone has deleted nothing, so the timed commands run after
    a rename, and the deletion happens when no more commands are timed on that data.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def discard(self, path: Path, *, many_files: bool) -> None:
        if not path.exists() and not path.is_symlink():
            return
        if not many_files:  # a few large files: deleting them now costs the next run nothing
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path.rename(self.root / str(self.count))
        self.count += 1

    def empty(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


MANY_FILES = 1000

# --------------------------------------------------------------------------------------------------- remotes


class LocalRemote:
    """A folder on the same disk; each tool under its own sub-folder."""

    kind = "local"
    label = "local folder"

    def __init__(self, root: Path, trash: Trash) -> None:
        self.root = root
        self.endpoint = ""
        self.trash = trash

    def location(self, tool: bv.Tool, dataset: Dataset) -> Path:
        return self.root / tool.name / dataset.name

    def url(self, tool: bv.Tool, dataset: Dataset) -> str:
        return str(self.location(tool, dataset))

    def clear(self, tool: bv.Tool, dataset: Dataset) -> None:
        self.trash.discard(self.location(tool, dataset), many_files=dataset.files > MANY_FILES)

    def contents(self, tool: bv.Tool, dataset: Dataset) -> dict[str, int]:
        keys = size = 0
        for folder, _dirs, files in os.walk(self.location(tool, dataset)):
            for name in files:
                keys += 1
                size += os.stat(os.path.join(folder, name)).st_size
        return {"keys": keys, "bytes": size}

    def requests(self) -> dict[str, int] | None:
        return None

    def cpu_seconds(self) -> float | None:
        return None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# The S3 server runs in its own process, so its work is not billed to the benchmark or to a tool, and its
# CPU time can be read from /proc. It logs one line per request (werkzeug); stdin closing stops it.
_MOTO_SERVER = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""
# werkzeug colours the lines of non-200 answers with ANSI escapes, even into a file
_REQUEST_LINE = re.compile(rb'"(?:\x1b\[[\d;]*m)*(GET|PUT|POST|HEAD|DELETE) \S+ HTTP/[\d.]+(?:\x1b\[[\d;]*m)*" (\d{3})')


class S3Remote:
    """moto's S3 server on 127.0.0.1, one bucket; each tool under its own prefix."""

    kind = "s3"
    label = "S3 (moto server, loopback)"

    def __init__(self, log: Path) -> None:
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _MOTO_SERVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=dict(os.environ, **DUMMY_AWS),
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            self.close()
            raise bv.BenchError(f"the moto server did not start:\n{log.read_text(errors='replace')[-2000:]}")
        self.port = int(line)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log_offset = 0
        self._tick = os.sysconf("SC_CLK_TCK")
        import boto3

        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=DUMMY_AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=DUMMY_AWS["AWS_DEFAULT_REGION"],
        )
        self.client.create_bucket(Bucket=BUCKET)
        self.moto_version = importlib.metadata.version("moto")

    def prefix(self, tool: bv.Tool, dataset: Dataset) -> str:
        return f"{tool.name}/{dataset.name}"

    def url(self, tool: bv.Tool, dataset: Dataset) -> str:
        return f"s3://{BUCKET}/{self.prefix(tool, dataset)}"

    def _objects(self, tool: bv.Tool, dataset: Dataset) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=self.prefix(tool, dataset) + "/"):
            found.extend(page.get("Contents", []))
        return found

    def clear(self, tool: bv.Tool, dataset: Dataset) -> None:
        keys = [obj["Key"] for obj in self._objects(tool, dataset)]
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=BUCKET, Delete={"Objects": chunk, "Quiet": True})
        if self._objects(tool, dataset):
            raise bv.BenchError(f"could not empty s3://{BUCKET}/{self.prefix(tool, dataset)}")

    def contents(self, tool: bv.Tool, dataset: Dataset) -> dict[str, int]:
        objects = self._objects(tool, dataset)
        return {"keys": len(objects), "bytes": sum(int(obj["Size"]) for obj in objects)}

    def requests(self) -> dict[str, int] | None:
        """Requests the server logged since the last call, by method and answer ("GET 200": n); the
        benchmark's own requests come between measurements, so they are never counted in a measured command."""
        time.sleep(0.2)  # werkzeug logs a request after answering it
        with self.log.open("rb") as handle:
            handle.seek(self._log_offset)
            data = handle.read()
        self._log_offset += len(data)
        found = Counter(f"{method.decode()} {status.decode()}" for method, status in _REQUEST_LINE.findall(data))
        return dict(sorted(found.items()))

    def cpu_seconds(self) -> float | None:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self._tick

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # the server this benchmark started, by its own handle
                self.proc.wait()


Remote = LocalRemote | S3Remote


# ----------------------------------------------------------------------------------------------------- tools


def remote_commands(tool: bv.Tool, remote: Remote, dataset: Dataset) -> list[list[str]]:
    """Add `remote` as the tool's default remote, named after its kind ("local" or "s3")."""
    url = remote.url(tool, dataset)
    if tool.name == "conveyor":
        argvs = [[*tool.exe, "remote", "add", remote.kind, url, "--default"]]
        if remote.endpoint:
            argvs.append([*tool.exe, "remote", "modify", remote.kind, "endpoint_url", remote.endpoint])
        return argvs
    argvs = [[*tool.exe, "remote", "add", "-d", remote.kind, url]]
    if remote.endpoint:
        argvs.append([*tool.exe, "remote", "modify", remote.kind, "endpointurl", remote.endpoint])
    return argvs


def push_argv(tool: bv.Tool) -> list[str]:
    return [*tool.exe, "push"]


def pull_argv(tool: bv.Tool) -> list[str]:
    return [*tool.exe, "pull"]


def cache_dir(tool: bv.Tool, repo: Path) -> Path:
    return repo / (".conveyor" if tool.name == "conveyor" else ".dvc") / "cache"


def forget_remote(tool: bv.Tool, repo: Path) -> None:
    """Delete what the tool remembers of what its remotes hold, as in a fresh clone.

    conveyor: the pack indexes it keeps under .conveyor/remotes/. DVC: its remote indexes (the .dir objects it
    has seen on a remote, whose files it then takes as present) under index/ in its site cache folder.
    """
    if tool.name == "conveyor":
        shutil.rmtree(repo / ".conveyor" / "remotes", ignore_errors=True)
        return
    site = Path(tool.env["DVC_SITE_CACHE_DIR"])
    for index in site.glob("repo/*/index"):
        shutil.rmtree(index, ignore_errors=True)


def count_check(tool: bv.Tool, verb: str, expected: int) -> bv.OutputCheck:
    """The command must report moving exactly `expected` objects (verb: "pushed" or "fetched")."""
    pattern = rf"^{verb} (\d+) objects?\b" if tool.name == "conveyor" else rf"^\s*(\d+) files? {verb}\b"

    def check(output: str) -> str | None:
        found = re.search(pattern, output, re.MULTILINE)
        if found is None:
            return f"the output does not say how many objects were {verb} ({pattern!r})"
        count = int(found.group(1))
        return None if count == expected else f"{verb} {count:,} objects instead of {expected:,}"

    return check


def noop_check(tool: bv.Tool) -> bv.OutputCheck:
    phrase = "Everything is up to date on '" if tool.name == "conveyor" else "Everything is up to date."
    return lambda output: None if phrase in output else f"the no-op push did not report {phrase!r}"


def transfers(tool: bv.Tool, output: str) -> int | None:
    """The payload transfers conveyor reports ("in N transfers"); DVC does not say."""
    found = re.search(r" in (\d+) transfers?\b", output) if tool.name == "conveyor" else None
    return int(found.group(1)) if found else None


def ensure_dvc_s3(venv: Path, dvc_version: str) -> str:
    """The version of the dvc-s3 plugin in DVC's venv, installed (keeping DVC's version) when missing."""
    python = str(venv / "bin" / "python")
    probe = [python, "-c", "import importlib.metadata as m; print(m.version('dvc-s3'))"]
    try:
        return bv.run_checked(probe).strip()
    except bv.BenchError:
        pass
    progress(f"[setup] installing dvc-s3 into {venv} (keeping DVC {dvc_version}) ...")
    bv.run_checked([python, "-m", "pip", "install", "--quiet", "dvc-s3", f"dvc=={dvc_version}"])
    return bv.run_checked(probe).strip()


def source_state() -> dict[str, Any]:
    """The git commit of conveyor's checkout and a digest of its source files, to tell whether the code under
    test changed while the benchmark ran (the tree is shared with whoever develops conveyor)."""
    root = bv.BENCH_DIR.parent
    digest = hashlib.sha256()
    for path in sorted((root / "src").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    try:
        commit = bv.run_checked(["git", "rev-parse", "HEAD"], cwd=root).strip()
        dirty = bool(bv.run_checked(["git", "status", "--porcelain", "--", "src"], cwd=root).strip())
    except bv.BenchError:
        commit, dirty = "unknown", True
    return {"commit": commit, "src_uncommitted_changes": dirty, "src_sha256": digest.hexdigest()}


def package_version(name: str, python: str | None = None) -> str:
    if python is None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    try:
        return bv.run_checked([python, "-c", code]).strip()
    except bv.BenchError:
        return "not installed"


# ------------------------------------------------------------------------------------------------ benchmarks


@dataclass
class RemoteBench(bv.Bench):
    remotes: list[Remote] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    repeat: int = DEFAULT_REPEAT
    once_over: float = DEFAULT_ONCE_OVER
    extras: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "tool | operation" -> per run
    stored: dict[str, dict[str, int]] = field(default_factory=dict)  # "tool | remote | data" -> keys, bytes
    trash: Trash = field(init=False)

    def __post_init__(self) -> None:
        self.trash = Trash(self.run_dir / "trash")

    @staticmethod
    def op(remote: Remote, dataset: Dataset, what: str) -> str:
        return f"{remote.kind} | {dataset.name} | {what}"

    def timed(
        self,
        tool: bv.Tool,
        operation: str,
        argv: list[str],
        repo: Path,
        remote: Remote,
        check: bv.OutputCheck,
        before: Callable[[int], None] | None = None,
        after: Callable[[], str | None] | None = None,
    ) -> bv.Measurement:
        """Time argv up to `repeat` times (once when its first run is slower than `once_over`), each after
        `before(i)`, untimed; check its output, then `after()`; raise BenchError on any failure."""
        measurement = bv.Measurement(tool.name, operation, argv)
        self.measurements.append(measurement)
        extras = self.extras.setdefault(f"{tool.name} | {operation}", [])
        for i in range(self.repeat):
            if i and measurement.runs[0].seconds > self.once_over:
                break
            if before is not None:
                before(i)
            # what earlier steps wrote is flushed first: a tool that makes its own writes durable
            # (conveyor) must not wait for the disk to write back another step's data
            os.sync()
            remote.requests()  # skip what the setup asked of the server
            cpu = remote.cpu_seconds()
            run, code, stdout, stderr = bv.run_timed(argv, repo, tool.env)
            measurement.runs.append(run)
            output = stdout + stderr
            extra: dict[str, Any] = {"requests": remote.requests(), "transfers": transfers(tool, output)}
            if cpu is not None and (cpu_after := remote.cpu_seconds()) is not None:
                extra["server_cpu_seconds"] = round(cpu_after - cpu, 2)
            extras.append(extra)
            problem = f"exited with {code}" if code != 0 else check(output)
            if problem is None and after is not None:
                problem = after()
            if problem:
                measurement.error = problem
                raise bv.BenchError(
                    f"[{tool.name}] {operation}: `{shlex.join(argv)}` {problem} (in {repo})\n"
                    f"--- stdout ---\n{stdout}--- stderr ---\n{stderr[-4000:]}"
                )
        times = ", ".join(f"{run.seconds:.2f}" for run in measurement.runs)
        detail = f"median of {times} s" if len(measurement.runs) > 1 else f"{measurement.seconds:.2f} s (one run)"
        asked = ""
        if extras and extras[0]["requests"] is not None:
            asked = f", {sum(extras[0]['requests'].values()):,} requests " + json.dumps(extras[0]["requests"])
        progress(f"[{tool.name}] {operation} ... {detail}, {measurement.peak_rss_mib:.0f} MiB peak RSS{asked}")
        return measurement

    def use_site_cache(self, tool: bv.Tool, dataset: Dataset) -> None:
        """A DVC site cache folder per data set, so forget_remote touches only that repository's indexes."""
        if tool.name == "dvc":
            tool.env["DVC_SITE_CACHE_DIR"] = str(self.run_dir / "dvc-site-cache" / dataset.name)

    def setup(self, tool: bv.Tool, dataset: Dataset, name: str | None = None) -> Path:
        """A fresh repository with the data written, added and committed."""
        self.use_site_cache(tool, dataset)
        repo = self.new_repo(tool, name or dataset.name)
        progress(f"[{tool.name}] writing and adding {dataset.label} ...")
        digest = dataset.write(repo, self.seed)
        if name is None:
            self.record_fingerprint(dataset.name, tool, digest)
        bv.run_checked(tool.add(dataset.path), cwd=repo, env=tool.env)
        self.commit(repo, f"track {dataset.path}")
        return repo

    def bench_remote(self, tool: bv.Tool, remote: Remote, dataset: Dataset, repo: Path) -> None:
        self.use_site_cache(tool, dataset)
        for argv in remote_commands(tool, remote, dataset):
            bv.run_checked(argv, cwd=repo, env=tool.env)
        expected = self.fingerprints[dataset.name][tool.name]

        def empty_remote(_i: int) -> None:
            remote.clear(tool, dataset)
            forget_remote(tool, repo)

        op = self.op(remote, dataset, FIRST_PUSH)
        push_check = count_check(tool, "pushed", dataset.objects)
        self.timed(tool, op, push_argv(tool), repo, remote, push_check, before=empty_remote)
        self.stored[f"{tool.name} | {remote.kind} | {dataset.name}"] = remote.contents(tool, dataset)

        self.timed(tool, self.op(remote, dataset, NOOP_PUSH), push_argv(tool), repo, remote, noop_check(tool))

        def empty_cache(_i: int) -> None:
            many = dataset.files > MANY_FILES
            self.trash.discard(repo / dataset.path, many_files=many)
            self.trash.discard(cache_dir(tool, repo), many_files=many)
            forget_remote(tool, repo)

        op = self.op(remote, dataset, PULL)
        pull_check = count_check(tool, "fetched", dataset.objects)
        self.timed(
            tool, op, pull_argv(tool), repo, remote, pull_check, empty_cache, lambda: dataset.verify(repo, expected)
        )

    def warm_up(self, tool: bv.Tool) -> None:
        """Every command once, untimed, on 20 files: Python caches its bytecode, and the setup is checked."""
        tiny = Dataset("files", files=20)
        repo = self.setup(tool, tiny, name="warm-up")
        for remote in self.remotes:
            for argv in [*remote_commands(tool, remote, tiny), push_argv(tool), push_argv(tool)]:
                bv.run_checked(argv, cwd=repo, env=tool.env)
            tiny.remove(repo)
            shutil.rmtree(cache_dir(tool, repo), ignore_errors=True)
            bv.run_checked(pull_argv(tool), cwd=repo, env=tool.env)
            remote.clear(tool, tiny)
        if not self.keep:
            shutil.rmtree(repo, ignore_errors=True)

    def run_all(self) -> None:
        """Each data set in turn; on it each remote, and on that each tool in turn, so load changes hit both."""
        self.operations = [self.op(r, d, what) for d in self.datasets for r in self.remotes for what in OPERATIONS]
        for tool in self.tools:
            try:
                self.warm_up(tool)
            except bv.BenchError as error:
                self.failures.append(str(error))
                progress(f"\n!!!!! BENCHMARK FAILURE (warm-up) !!!!!\n{error}\n")
                return
        for dataset in self.datasets:
            repos: dict[str, Path] = {}
            for tool in self.tools:
                try:
                    repos[tool.name] = self.setup(tool, dataset)
                except bv.BenchError as error:
                    self.failures.append(str(error))
                    progress(f"\n!!!!! BENCHMARK FAILURE (setup) !!!!!\n{error}\n")
            for remote in self.remotes:
                for tool in self.tools:
                    if tool.name not in repos:
                        continue
                    try:
                        self.bench_remote(tool, remote, dataset, repos[tool.name])
                    except bv.BenchError as error:
                        self.failures.append(str(error))
                        progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{error}\n")
                    finally:
                        if not self.keep:
                            remote.clear(tool, dataset)
            self.trash.empty()  # no command is timed on this data any more
            if not self.keep:
                for tool in self.tools:
                    shutil.rmtree(self.run_dir / tool.name / dataset.name, ignore_errors=True)

    # -- derived figures ------------------------------------------------------------------

    def ok(self, tool: str, operation: str) -> bv.Measurement | None:
        measurement = self.result(tool, operation)
        return measurement if measurement is not None and measurement.runs and not measurement.error else None

    def requests_cell(self, tool: str, operation: str) -> str:
        """The total, then by method: "10,008: 10,001 PUT, 6 GET, 1 HEAD"."""
        runs = self.extras.get(f"{tool} | {operation}", [])
        if not runs or runs[0]["requests"] is None:
            return "—"
        by_method: Counter[str] = Counter()
        for key, count in runs[0]["requests"].items():
            by_method[key.split()[0]] += count
        detail = ", ".join(f"{count:,} {method}" for method, count in by_method.most_common())
        return f"{sum(by_method.values()):,}" + (f": {detail}" if detail else "")

    def server_cpu(self, tool: str, operation: str) -> float | None:
        values = [
            r["server_cpu_seconds"]
            for r in self.extras.get(f"{tool} | {operation}", [])
            if r.get("server_cpu_seconds") is not None
        ]
        return statistics.median(values) if values else None

    def targets(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for dataset in self.datasets:
            for remote in self.remotes:
                for what in OPERATIONS:
                    op = self.op(remote, dataset, what)
                    ours, theirs = self.ok("conveyor", op), self.ok("dvc", op)
                    ratio = theirs.seconds / ours.seconds if ours and theirs and ours.seconds > 0 else None
                    where = f"{remote.label}, {dataset.label}"
                    if what == NOOP_PUSH:
                        if dataset.kind != "files" or ours is None:
                            continue
                        rows.append(
                            {
                                "target": f"no-op push, {where}: under {TARGET_NOOP_SECONDS:g} s",
                                "operation": op,
                                "seconds": ours.seconds,
                                "speed_up": ratio,
                                "met": ours.seconds < TARGET_NOOP_SECONDS,
                            }
                        )
                        continue
                    goal = TARGET_SMALL_SPEED_UP if dataset.kind == "files" else TARGET_BIG_PAR
                    text = f"≥ {goal:g}× DVC's throughput" if dataset.kind == "files" else "on par with DVC (≥ 0.95×)"
                    rows.append(
                        {
                            "target": f"{what}, {where}: {text}",
                            "operation": op,
                            "seconds": ours.seconds if ours else None,
                            "speed_up": ratio,
                            "met": None if ratio is None else ratio >= goal,
                        }
                    )
        return rows


# ---------------------------------------------------------------------------------------------------- report


def throughput(measurement: bv.Measurement, dataset: Dataset) -> str:
    seconds = measurement.seconds
    if seconds <= 0:
        return "∞"
    mb_s = dataset.payload_bytes / MB / seconds
    if dataset.kind == "files":
        return f"{dataset.files / seconds:,.0f} files/s, {mb_s:.1f} MB/s"
    return f"{mb_s:.0f} MB/s"


def rate_cell(measurement: bv.Measurement | None, dataset: Dataset, what: str, selected: bool) -> str:
    if what == NOOP_PUSH:
        return "—"
    return bv.cell(measurement, lambda m: throughput(m, dataset), selected)


def runs_phrase(repeat: int, once_over: float) -> str:
    if repeat == 1:
        return "one run"
    return f"median of {repeat} runs, or one run when the first took over {once_over:g} s"


def runs_cell(measurement: bv.Measurement | None) -> str:
    return str(len(measurement.runs)) if measurement and measurement.runs else "—"


def markdown(bench: RemoteBench, meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    pythons = f"{versions['python']} (this script and conveyor)"
    if versions.get("dvc_python"):
        pythons += f", {versions['dvc_python']} (DVC venv)"
    selected = {tool.name for tool in bench.tools}
    source = meta["conveyor_source_start"]
    lines = [
        "## Remote benchmark: conveyor vs DVC",
        "",
        f"- Date: {meta['date_utc']}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']:.1f} GiB RAM, "
        f"{machine['kernel']}, work dir on {machine['filesystem']}",
        f"- Python: {pythons}",
        f"- conveyor: {versions.get('conveyor') or 'not run'} (s3fs {versions['s3fs']}); "
        f"DVC: {versions.get('dvc') or 'not run'} (dvc-s3 {versions.get('dvc_s3', '—')}, "
        f"s3fs {versions.get('dvc_s3fs', '—')}); S3 server: moto {versions.get('moto', '—')}",
        f"- Command: `{meta['command']}`",
        f"- conveyor's source: commit {source['commit'][:12]}"
        + (" with uncommitted changes in src/" if source["src_uncommitted_changes"] else "")
        + (
            "" if source["src_sha256"] == meta["conveyor_source_end"]["src_sha256"] else " (**changed during the run**)"
        ),
        "- Data: " + "; ".join(d.label for d in bench.datasets) + f" (seeded random bytes, seed {meta['seed']}), "
        "added with `conveyor add` / `dvc add` in a fresh git repo per tool. Remotes: "
        + "; ".join(f"**{r.label}**" for r in bench.remotes)
        + ", each tool under its own prefix, both with their default parallelism "
        f"({meta['default_jobs']} transfers on this machine). DVC with analytics and update check off. Both tools "
        "warmed up (bytecode cached) by one untimed round on 20 files.",
        "- First push: into an empty prefix. Pull: without the cache, the data and the tool's memory of "
        "what the remote holds (conveyor's `.conveyor/remotes/`, DVC's remote indexes in its site cache), as in "
        "a fresh clone. Every pushed/fetched count, no-op report and pulled byte is checked. Folders of many "
        f"files (over {MANY_FILES:,}) are moved aside between runs and deleted when no more commands are timed "
        "on that data (deleting 20,000 files slows every file created in the next minutes on this file system); "
        "every timed command starts after a `sync`, so no tool waits for the disk to write back an earlier "
        "step's data.",
        f"- Wall time: {runs_phrase(meta['repeat'], meta['once_over'])} (column *runs*). "
        "Throughput = payload ÷ wall time (MB = 10^6 bytes; payload "
        "= the files' bytes, without manifests). Peak RSS of the command's process tree (`ru_maxrss` via the "
        "launcher of `bench_versioning.py`; repeated rows: the highest).",
        f"- Load average (1, 5, 15 min) at the start: {meta['loadavg_start']}; at the end: {meta['loadavg_end']} "
        "(the machine is shared).",
        "",
        "| remote | data | operation | conveyor (s) | DVC (s) | speed-up (DVC ÷ conveyor) | conveyor throughput "
        "| DVC throughput | conveyor peak RSS (MiB) | DVC peak RSS (MiB) | runs (conveyor, DVC) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for remote in bench.remotes:
        for dataset in bench.datasets:
            for what in OPERATIONS:
                op = bench.op(remote, dataset, what)
                ours, theirs = bench.result("conveyor", op), bench.result("dvc", op)
                cells = [
                    remote.label,
                    dataset.label,
                    what,
                    bp.seconds_cell(ours, "conveyor" in selected),
                    bp.seconds_cell(theirs, "dvc" in selected),
                    bv.speed_up(ours, theirs),
                    rate_cell(ours, dataset, what, "conveyor" in selected),
                    rate_cell(theirs, dataset, what, "dvc" in selected),
                    bp.rss_cell(ours, "conveyor" in selected),
                    bp.rss_cell(theirs, "dvc" in selected),
                    f"{runs_cell(ours)}, {runs_cell(theirs)}",
                ]
                lines.append("| " + " | ".join(cells) + " |")

    s3 = [r for r in bench.remotes if r.kind == "s3"]
    if s3:
        lines += [
            "",
            "Requests to the S3 server (counted in its log; one run) and the server's CPU time (median):",
            "",
            "| data | operation | conveyor requests | DVC requests | server CPU, conveyor (s) | server CPU, DVC (s) |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for dataset in bench.datasets:
            for what in OPERATIONS:
                op = bench.op(s3[0], dataset, what)
                cells = [dataset.label, what]
                for tool in ("conveyor", "dvc"):
                    cells.append(bench.requests_cell(tool, op))
                for tool in ("conveyor", "dvc"):
                    cpu = bench.server_cpu(tool, op)
                    cells.append("—" if cpu is None else f"{cpu:.1f}")
                lines.append("| " + " | ".join(cells) + " |")

    lines += ["", "What each tool left on the remote after its first push:", ""]
    lines += ["| remote | data | conveyor keys | conveyor MB | DVC keys | DVC MB |", "|---|---|---:|---:|---:|---:|"]
    for remote in bench.remotes:
        for dataset in bench.datasets:
            cells = [remote.label, dataset.label]
            for tool in ("conveyor", "dvc"):
                stored = bench.stored.get(f"{tool} | {remote.kind} | {dataset.name}")
                cells += ["—", "—"] if stored is None else [f"{stored['keys']:,}", f"{stored['bytes'] / MB:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")

    targets = bench.targets()
    if targets:
        lines += ["", "| target | result | met |", "|---|---|---|"]
        for target in targets:
            seconds = "—" if target["seconds"] is None else f"{target['seconds']:.2f} s"
            ratio = "—" if target["speed_up"] is None else f"{target['speed_up']:.2f}× DVC"
            met = {True: "yes", False: "**no**", None: "—"}[target["met"]]
            lines.append(f"| {target['target']} | {seconds}, {ratio} | {met} |")
    if bench.failures:
        lines += ["", f"**{len(bench.failures)} failure(s)**; rows marked FAILED or not run have no speed-up:", ""]
        lines += [f"- {failure.splitlines()[0]}" for failure in bench.failures]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ main


def parse_choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        if not chosen or set(chosen) - set(allowed):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}, comma-separated: {text!r}")
        return [name for name in allowed if name in chosen]  # always in this order

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time conveyor's and DVC 3.x's push and pull side by side, to a local folder and an S3 server."
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a fast check: {QUICK_FILES:,} files and a {QUICK_BIG_MIB} MiB file"
    )
    parser.add_argument(
        "--files", type=bv.positive_int, help=f"small files in the folder ({DEFAULT_FILES:,}; {QUICK_FILES:,} quick)"
    )
    parser.add_argument(
        "--big-mib",
        type=bv.positive_int,
        help=f"size of the big file in MiB ({DEFAULT_BIG_MIB}; {QUICK_BIG_MIB} quick)",
    )
    parser.add_argument(
        "--data", type=parse_choices(("files", "big")), default=["files", "big"], help="files, big or both (both)"
    )
    parser.add_argument(
        "--backends", type=parse_choices(("local", "s3")), default=["local", "s3"], help="local, s3 or both (both)"
    )
    parser.add_argument("--only", choices=["conveyor", "dvc", "both"], default="both", help="tools to run (both)")
    parser.add_argument(
        "--repeat", type=bv.positive_int, default=DEFAULT_REPEAT, help=f"runs per command, median ({DEFAULT_REPEAT})"
    )
    parser.add_argument(
        "--once-over",
        type=float,
        default=DEFAULT_ONCE_OVER,
        help=f"seconds: a command whose first run takes longer is run once ({DEFAULT_ONCE_OVER:g})",
    )
    parser.add_argument(
        "--dvc-venv",
        type=Path,
        default=bv.DEFAULT_DVC_VENV,
        help=f"venv with DVC 3.x; created with {bv.DVC_REQUIREMENT} when missing, dvc-s3 added (bench/.venv-dvc)",
    )
    parser.add_argument("--workdir", type=Path, default=bv.DEFAULT_WORKDIR, help="where the repos go (bench/.work)")
    parser.add_argument("--keep", action="store_true", help="keep the repos and the local remote in the work folder")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data (0)")
    args = parser.parse_args(argv)
    args.files = args.files or (QUICK_FILES if args.quick else DEFAULT_FILES)
    args.big_mib = args.big_mib or (QUICK_BIG_MIB if args.quick else DEFAULT_BIG_MIB)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    versions = {"python": platform.python_version()}
    try:
        tools = list(bv.iter_tools(args.only, args.dvc_venv.absolute()))
        for tool in tools:
            versions[tool.name] = tool.version
            if tool.name == "dvc":
                versions["dvc_python"] = tool.python_version
                python = str(args.dvc_venv.absolute() / "bin" / "python")
                if "s3" in args.backends:
                    versions["dvc_s3"] = ensure_dvc_s3(args.dvc_venv.absolute(), tool.version)
                versions["dvc_s3fs"] = package_version("s3fs", python)
    except bv.BenchError as error:
        progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
        return 2
    versions["s3fs"] = package_version("s3fs")
    versions["moto"] = package_version("moto")
    progress("[setup] " + ", ".join(f"{name} {version}" for name, version in versions.items()))

    datasets = []
    if "files" in args.data:
        datasets.append(Dataset("files", files=args.files))
    if "big" in args.data:
        datasets.append(Dataset("big", mib=args.big_mib))
    with bv.RunDir(args.workdir.resolve() / f"remote-{stamp}", args.keep) as run_dir:
        meta: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": bv.machine_info(run_dir),
            "versions": versions,
            "datasets": {d.name: d.label for d in datasets},
            "file_size": bv.FILE_SIZE,
            "files_per_dir": bv.FILES_PER_DIR,
            "repeat": args.repeat,
            "once_over": args.once_over,
            "default_jobs": min(32, 4 * (os.cpu_count() or 1)),
            "seed": args.seed,
            "tools": [tool.name for tool in tools],
            "loadavg_start": bp.loadavg(),
            "conveyor_source_start": source_state(),
        }
        for tool in tools:
            tool.use_workdir(run_dir)
            bp.use_bytecode_cache(tool, run_dir)
            tool.env.update(DUMMY_AWS)
            tool.env["AWS_CONFIG_FILE"] = str(run_dir / "no-aws-config")  # nothing from ~/.aws
            tool.env["AWS_SHARED_CREDENTIALS_FILE"] = str(run_dir / "no-aws-credentials")
        remotes: list[Remote] = []
        bench = RemoteBench(
            tools, run_dir, args.seed, args.keep, datasets=datasets, repeat=args.repeat, once_over=args.once_over
        )
        try:
            if "local" in args.backends:
                remotes.append(LocalRemote(run_dir / "remote-local", bench.trash))
            if "s3" in args.backends:
                progress("[setup] starting the moto S3 server ...")
                remotes.append(S3Remote(run_dir / "moto-server.log"))
                meta["s3_endpoint"] = remotes[-1].endpoint
            bench.remotes = remotes
            bench.run_all()
        except bv.BenchError as error:
            bench.failures.append(str(error))
            progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{error}\n")
        finally:
            for remote in remotes:
                if isinstance(remote, S3Remote) or not args.keep:
                    remote.close()
        meta["loadavg_end"] = bp.loadavg()
        meta["conveyor_source_end"] = source_state()
        if meta["conveyor_source_end"]["src_sha256"] != meta["conveyor_source_start"]["src_sha256"]:
            bench.failures.append(
                "conveyor's source (src/) changed while the benchmark ran: the figures mix two versions; run it again"
            )
            progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{bench.failures[-1]}\n")

    report = markdown(bench, meta)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "data_sha256": bench.fingerprints,
        "payload_bytes": {d.name: d.payload_bytes for d in datasets},
        "stored_on_remote": bench.stored,
        "targets": bench.targets(),
        "measurements": [
            {**m.to_json(), "per_run": bench.extras.get(f"{m.tool} | {m.operation}", [])} for m in bench.measurements
        ],
    }
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    results_file = bv.RESULTS_DIR / f"remote-{stamp}.json"
    results_file.write_text(json.dumps(record, indent=2) + "\n")
    progress(f"[setup] raw numbers in {results_file}")
    if bench.failures:
        progress(f"!!!!! {len(bench.failures)} FAILURE(S): see above; no ratio printed for them !!!!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
