"""Time conveyor and DVC 3.x side by side on the same data.

Each tool works in its own fresh git repository (one per workload) under a work folder, on byte-identical data
generated from a seeded random generator. Workloads:

* ``add N files``: the first add of a folder of N 1-KiB files (``data/d000/f000000.bin`` ..., 1,000 per folder);
* ``add <size> file``: the first add of one big file;
* on the largest N: ``status`` with nothing changed and after changing one file (median of 3 runs), re-adding
  the folder after that change, and checking the folder out again after ``rm -rf data``.

Every command runs directly (no shell) with ``subprocess.Popen``; ``os.wait4`` gives its wall time and the peak
RSS of its process tree. Any failing command, or a wrong result, is reported loudly and gets no speed-up ratio.

    .venv/bin/python bench/bench_versioning.py [--sizes 10000,100000] [--big-mib 1024] [--only both]
        [--dvc-venv bench/.venv-dvc] [--workdir bench/.work] [--keep] [--markdown FILE]

DVC is installed into its own venv (default ``bench/.venv-dvc``, created with ``pip install "dvc==3.67.*"`` when
missing). The raw numbers go to ``bench/results/versioning-YYYYMMDD-HHMMSS.json``; the Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DVC_VENV = BENCH_DIR / ".venv-dvc"
DEFAULT_WORKDIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"
DVC_REQUIREMENT = "dvc==3.67.*"

FILE_SIZE = 1024  # bytes per small file
FILES_PER_DIR = 1000
STATUS_REPEATS = 3
CHUNK = 16 * 1024 * 1024  # bytes generated and written at a time for the big file
DATA = "data"
BIG = "big.bin"

# Checks the output of a command; returns a description of what is wrong, or None when the result is right.
OutputCheck = Callable[[str], str | None]


# --------------------------------------------------------------------------------------------------- running


class BenchError(Exception):
    """A command failed or a tool gave a wrong result: the benchmark must not report a ratio for it."""


@dataclass
class Run:
    seconds: float
    max_rss_kib: int  # ru_maxrss of the process tree (KiB on Linux)


@dataclass
class Measurement:
    tool: str
    operation: str
    command: list[str]
    runs: list[Run] = field(default_factory=list)
    error: str | None = None

    @property
    def seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def peak_rss_mib(self) -> float:
        return max(run.max_rss_kib for run in self.runs) / 1024

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        if self.runs:
            record["median_seconds"] = self.seconds
            record["peak_rss_mib"] = self.peak_rss_mib
        return record


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# The measured command is started by this small launcher, not by the benchmark itself: a
# child's ru_maxrss includes the memory of the process it was forked from, so forking
# straight from this (large) process would bill its size to both tools alike.
_LAUNCHER = """
import os, sys, time
fd = int(sys.argv[1])
argv = sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(fd)
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
os.write(fd, f"{usage.ru_maxrss} {elapsed!r}".encode())
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


def run_timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[Run, int, str, str]:
    """Run argv without a shell; return its wall time and peak RSS, exit code, stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.sync()  # flush the writes of setup steps (and earlier commands) so they are not billed to this command
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _LAUNCHER, str(write_end), *argv],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(write_end,),
            )
            os.close(write_end)
            report = b""
            while chunk := os.read(read_end, 4096):
                report += chunk
            proc.wait()
        finally:
            os.close(read_end)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if not report:
        raise BenchError(f"the launcher reported nothing for `{shlex.join(argv)}`:\n{stderr}")
    max_rss_kib, elapsed = report.decode().split()
    return Run(seconds=float(elapsed), max_rss_kib=int(max_rss_kib)), proc.returncode, stdout, stderr


def run_checked(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run an untimed helper command; raise BenchError with its output if it fails."""
    result = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(
            f"`{shlex.join(argv)}` exited with {result.returncode} (in {cwd or os.getcwd()})\n"
            f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
        )
    return result.stdout


# ----------------------------------------------------------------------------------------------------- tools


@dataclass
class Tool:
    name: str  # "conveyor" or "dvc"
    exe: list[str]
    env: dict[str, str]
    version: str = ""
    python_version: str = ""

    @property
    def pointer_suffix(self) -> str:
        return ".cvy" if self.name == "conveyor" else ".dvc"

    def init_commands(self) -> list[list[str]]:
        if self.name == "conveyor":
            return [[*self.exe, "init"]]
        return [
            [*self.exe, "init", "-q"],
            [*self.exe, "config", "core.analytics", "false"],
            # The update check starts a background process on every command while it cannot reach the network.
            [*self.exe, "config", "core.check_update", "false"],
        ]

    def use_workdir(self, run_dir: Path) -> None:
        """Keep DVC's state and link databases in the work folder (default /var/tmp/dvc), so they are cleaned up."""
        if self.name == "dvc":
            self.env["DVC_SITE_CACHE_DIR"] = str(run_dir / "dvc-site-cache")

    def add(self, path: str) -> list[str]:
        return [*self.exe, "add", path]

    def status(self) -> list[str]:
        return [*self.exe, "status"]

    def checkout(self, path: str) -> list[str]:
        target = path if self.name == "conveyor" else path + ".dvc"
        return [*self.exe, "checkout", target]

    def status_clean_check(self) -> OutputCheck:
        expected = "in sync" if self.name == "conveyor" else "up to date"
        return lambda out: None if expected in out else f"status did not report a clean workspace ({expected!r})"

    def status_changed_check(self, changed: str) -> OutputCheck:
        # conveyor lists the changed file; DVC only says the folder output is modified.
        pattern = rf"modified:\s+{re.escape(changed if self.name == 'conveyor' else DATA)}\s*$"
        return lambda out: (
            None if re.search(pattern, out, re.MULTILINE) else f"status did not report the change ({pattern!r})"
        )


def conveyor_tool() -> Tool:
    script = Path(sys.executable).parent / "conveyor"
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "conveyor"]
    tool = Tool("conveyor", exe, dict(os.environ))
    tool.version = run_checked([*exe, "--version"]).strip().split()[-1]
    tool.python_version = platform.python_version()
    return tool


def dvc_tool(venv: Path) -> Tool:
    dvc = venv / "bin" / "dvc"
    if not dvc.exists():
        python = shutil.which("python3.11") or sys.executable
        progress(f"[setup] creating the DVC venv {venv} with {DVC_REQUIREMENT} ...")
        run_checked([python, "-m", "venv", str(venv)])
        run_checked([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", DVC_REQUIREMENT])
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    tool = Tool("dvc", [str(dvc)], env)
    tool.version = run_checked([str(dvc), "--version"], env=env).strip().splitlines()[-1]
    if not tool.version.startswith("3."):
        raise BenchError(f"{dvc} is DVC {tool.version}; this benchmark compares against DVC 3.x")
    tool.python_version = run_checked(
        [str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"]
    ).strip()
    return tool


# ------------------------------------------------------------------------------------------------------ data


def file_name(index: int) -> str:
    return f"{DATA}/d{index // FILES_PER_DIR:03d}/f{index:06d}.bin"


def write_folder(repo: Path, count: int, seed: int) -> str:
    """Write `count` files of FILE_SIZE seeded random bytes; return the SHA-256 of names and contents."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    for index in range(count):
        path = repo / file_name(index)
        if index % FILES_PER_DIR == 0:
            path.parent.mkdir(parents=True)
        content = rng.randbytes(FILE_SIZE)
        path.write_bytes(content)
        digest.update(path.name.encode())
        digest.update(content)
    return digest.hexdigest()


def write_big_file(path: Path, mib: int, seed: int) -> str:
    rng = random.Random(seed)
    digest = hashlib.sha256()
    remaining = mib * 1024 * 1024
    with path.open("wb") as out:
        while remaining:
            chunk = rng.randbytes(min(CHUNK, remaining))
            out.write(chunk)
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def replace_file(path: Path, content: bytes) -> None:
    """Give a tracked file new bytes: unlink first, never write through a possible link into a cache."""
    path.unlink()
    path.write_bytes(content)


def count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def size_label(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def largest_label(count: int) -> str:
    return f", {count:,} files"


def operation_labels(sizes: list[int], big_mib: int) -> list[str]:
    """The table rows, in order."""
    where = largest_label(max(sizes))
    return [
        *(f"add {n:,} files" for n in sizes),
        "status (no-op)" + where,
        "status after 1 change" + where,
        "re-add after 1 change" + where,
        "checkout deleted folder" + where,
        f"add {size_label(big_mib)} file",
    ]


# ------------------------------------------------------------------------------------------------ benchmarks


@dataclass
class Bench:
    tools: list[Tool]
    run_dir: Path
    seed: int
    keep: bool
    measurements: list[Measurement] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)  # table rows, in order
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)  # dataset -> tool -> SHA-256
    failures: list[str] = field(default_factory=list)

    def measure(
        self,
        tool: Tool,
        operation: str,
        argv: list[str],
        repo: Path,
        repeats: int = 1,
        check: OutputCheck | None = None,
        before: Callable[[int], None] | None = None,
    ) -> Measurement:
        """Time argv (repeats times, each after `before(i)`, untimed); raise BenchError on failure."""
        if operation not in self.operations:
            raise AssertionError(f"operation {operation!r} is not a table row")
        measurement = Measurement(tool.name, operation, argv)
        self.measurements.append(measurement)
        for i in range(repeats):
            if before is not None:
                before(i)
            run, code, stdout, stderr = run_timed(argv, repo, tool.env)
            measurement.runs.append(run)
            problem = f"exited with {code}" if code != 0 else (check(stdout) if check else None)
            if problem:
                measurement.error = problem
                raise BenchError(
                    f"[{tool.name}] {operation}: `{shlex.join(argv)}` {problem} (in {repo})\n"
                    f"--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
                )
        times = ", ".join(f"{run.seconds:.2f}" for run in measurement.runs)
        detail = f"median of {times} s" if repeats > 1 else f"{measurement.seconds:.2f} s"
        progress(f"[{tool.name}] {operation} ... {detail}, {measurement.peak_rss_mib:.0f} MiB peak RSS")
        return measurement

    def new_repo(self, tool: Tool, name: str) -> Path:
        """A fresh git repository with the tool initialised and committed."""
        repo = self.run_dir / tool.name / name
        repo.mkdir(parents=True)
        run_checked(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=repo)
        run_checked(["git", "config", "user.name", "conveyor bench"], cwd=repo)
        run_checked(["git", "config", "user.email", "bench@conveyor.invalid"], cwd=repo)
        for argv in tool.init_commands():
            run_checked(argv, cwd=repo, env=tool.env)
        self.commit(repo, "init")
        return repo

    @staticmethod
    def commit(repo: Path, message: str) -> None:
        run_checked(["git", "add", "-A"], cwd=repo)
        run_checked(["git", "commit", "-q", "--allow-empty", "-m", message], cwd=repo)

    def record_fingerprint(self, dataset: str, tool: Tool, digest: str) -> None:
        fingerprints = self.fingerprints.setdefault(dataset, {})
        fingerprints[tool.name] = digest
        if len(set(fingerprints.values())) > 1:
            raise BenchError(f"the tools got different data for {dataset}: {fingerprints}")

    def bench_folder(self, tool: Tool, count: int, full: bool) -> None:
        """Add a folder of `count` files; with `full`, then status, change one file, status, re-add, checkout."""
        repo = self.new_repo(tool, f"files-{count}")
        progress(f"[{tool.name}] writing {count:,} files of {FILE_SIZE} bytes ...")
        self.record_fingerprint(f"{count} files", tool, write_folder(repo, count, self.seed))
        self.measure(tool, f"add {count:,} files", tool.add(DATA), repo)
        self.commit(repo, f"track {DATA}")
        if not full:
            return
        pointer = repo / (DATA + tool.pointer_suffix)
        first_pointer = pointer.read_text()
        where = largest_label(count)
        self.measure(tool, "status (no-op)" + where, tool.status(), repo, STATUS_REPEATS, tool.status_clean_check())

        changed = file_name(count // 2)
        new_content = random.Random(self.seed + 1).randbytes(FILE_SIZE)
        if (repo / changed).read_bytes() == new_content:
            raise BenchError(f"the replacement bytes for {changed} equal the old ones; pick another seed")
        replace_file(repo / changed, new_content)
        changed_check = tool.status_changed_check(changed)
        self.measure(tool, "status after 1 change" + where, tool.status(), repo, STATUS_REPEATS, changed_check)

        def change_another(i: int) -> None:  # round 0 re-adds the change status saw; later rounds make a new one
            nonlocal changed, new_content
            if i:
                changed = file_name(count // 2 + i)
                new_content = random.Random(self.seed + 1 + i).randbytes(FILE_SIZE)
                replace_file(repo / changed, new_content)

        self.measure(tool, "re-add after 1 change" + where, tool.add(DATA), repo, STATUS_REPEATS, before=change_another)
        if pointer.read_text() == first_pointer:
            raise BenchError(f"[{tool.name}] re-add after 1 change left {pointer.name} unchanged")
        self.commit(repo, f"change {changed}")

        self.measure(
            tool,
            "checkout deleted folder" + where,
            tool.checkout(DATA),
            repo,
            STATUS_REPEATS,
            before=lambda _i: shutil.rmtree(repo / DATA),
        )
        problems = []
        if (found := count_files(repo / DATA)) != count:
            problems.append(f"{found:,} files instead of {count:,}")
        if not (repo / changed).is_file() or (repo / changed).read_bytes() != new_content:
            problems.append(f"{changed} does not have the re-added content")
        if problems:
            self.measurements[-1].error = "wrong result: " + "; ".join(problems)
            raise BenchError(f"[{tool.name}] checkout deleted folder in {repo}: " + "; ".join(problems))

    def bench_big_file(self, tool: Tool, mib: int) -> None:
        repo = self.new_repo(tool, f"big-{mib}")
        progress(f"[{tool.name}] writing a {size_label(mib)} file ...")
        self.record_fingerprint(f"{mib} MiB file", tool, write_big_file(repo / BIG, mib, self.seed))
        self.measure(tool, f"add {size_label(mib)} file", tool.add(BIG), repo)

    def run(self, sizes: list[int], big_mib: int) -> None:
        """Run every workload; each tool in turn on the same workload, so load changes hit both alike."""
        self.operations = operation_labels(sizes, big_mib)
        workloads: list[tuple[str, Callable[[Tool], None]]] = [
            (f"files-{n}", functools.partial(self.bench_folder, count=n, full=n == max(sizes))) for n in sizes
        ]
        workloads.append((f"big-{big_mib}", functools.partial(self.bench_big_file, mib=big_mib)))
        for name, workload in workloads:
            for tool in self.tools:
                try:
                    workload(tool)
                except BenchError as error:
                    self.failures.append(str(error))
                    progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{error}\n")
                finally:
                    if not self.keep:
                        shutil.rmtree(self.run_dir / tool.name / name, ignore_errors=True)

    def result(self, tool: str, operation: str) -> Measurement | None:
        return next((m for m in self.measurements if m.tool == tool and m.operation == operation), None)


# ---------------------------------------------------------------------------------------------------- report


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding path, from /proc/mounts (`stat -f` says ext2/ext3 for ext4)."""
    path = path.resolve()
    best, fstype = "", ""
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mount_point, kind, *_ = line.split()
            mount_point = mount_point.replace("\\040", " ")
            inside = path == Path(mount_point) or Path(mount_point) in path.parents
            if inside and len(mount_point) > len(best):
                best, fstype = mount_point, kind
    except OSError:
        pass
    return fstype or run_checked(["stat", "-f", "-c", "%T", str(path)]).strip()


def machine_info(workdir: Path) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(ram_gib(), 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "filesystem": filesystem_type(workdir),
    }


def cell(measurement: Measurement | None, value: Callable[[Measurement], str], selected: bool) -> str:
    if not selected:
        return "—"
    if measurement is None:
        return "not run"
    if measurement.error:
        return "FAILED"
    return value(measurement)


def speed_up(conveyor: Measurement | None, dvc: Measurement | None) -> str:
    if not conveyor or not dvc or conveyor.error or dvc.error:
        return "—"
    if conveyor.seconds <= 0:
        return "∞"
    return f"{dvc.seconds / conveyor.seconds:.1f}×"


def markdown(bench: Bench, meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    pythons = f"{versions['python']} (this script and conveyor)"
    if versions.get("dvc_python"):
        pythons += f", {versions['dvc_python']} (DVC venv)"
    lines = [
        "## Versioning benchmark: conveyor vs DVC",
        "",
        f"- Date: {meta['date_utc']}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']:.1f} GiB RAM, "
        f"{machine['kernel']}, work dir on {machine['filesystem']}",
        f"- Python: {pythons}",
        f"- conveyor: {versions.get('conveyor') or 'not run'}; DVC: {versions.get('dvc') or 'not run'}",
        f"- Command: `{meta['command']}`",
        f"- Data: files of {FILE_SIZE} bytes, {FILES_PER_DIR:,} per folder, and one {size_label(meta['big_mib'])} "
        f"file, seeded random bytes (seed {meta['seed']}); each tool in its own fresh git repo, default link "
        "strategy (reflink, else copy); DVC with analytics and update check off.",
        f"- Wall time of one run (status, re-add and checkout: median of {STATUS_REPEATS} runs); peak RSS of the "
        "command's process tree "
        "(`ru_maxrss` from `wait4`, forked from a small launcher so the benchmark's own memory is not counted; "
        "status: the highest of the runs).",
        "",
        "| operation | conveyor (s) | DVC (s) | speed-up (DVC ÷ conveyor) "
        "| conveyor peak RSS (MiB) | DVC peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    selected = {tool.name for tool in bench.tools}
    for operation in bench.operations:
        ours, theirs = bench.result("conveyor", operation), bench.result("dvc", operation)
        row = [
            operation,
            cell(ours, lambda m: f"{m.seconds:.2f}", "conveyor" in selected),
            cell(theirs, lambda m: f"{m.seconds:.2f}", "dvc" in selected),
            speed_up(ours, theirs),
            cell(ours, lambda m: f"{m.peak_rss_mib:.0f}", "conveyor" in selected),
            cell(theirs, lambda m: f"{m.peak_rss_mib:.0f}", "dvc" in selected),
        ]
        lines.append("| " + " | ".join(row) + " |")
    if bench.failures:
        lines += ["", f"**{len(bench.failures)} failure(s)**: rows marked FAILED or not run have no speed-up."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ main


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of file counts: {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("file counts must be positive")
    return sizes


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time conveyor and DVC 3.x side by side: add, status, re-add and checkout on the same data."
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=parse_sizes("10000,100000"),
        help="file counts of the folder workloads, comma-separated (10000,100000); "
        "status, re-add and checkout run on the largest",
    )
    parser.add_argument("--big-mib", type=positive_int, default=1024, help="size of the big file in MiB (1024)")
    parser.add_argument("--only", choices=["conveyor", "dvc", "both"], default="both", help="tools to run (both)")
    parser.add_argument(
        "--dvc-venv",
        type=Path,
        default=DEFAULT_DVC_VENV,
        help=f"venv with DVC 3.x; created with {DVC_REQUIREMENT} when missing (bench/.venv-dvc)",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the repos go (bench/.work)")
    parser.add_argument("--keep", action="store_true", help="keep the repos in the work folder")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data (0)")
    return parser.parse_args(argv)


@dataclass
class RunDir:
    path: Path
    keep: bool

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True)
        return self.path

    def __exit__(self, *_: object) -> None:
        if self.keep:
            progress(f"[setup] kept the work folder {self.path}")
            return
        shutil.rmtree(self.path, ignore_errors=True)
        parent = self.path.parent  # the work folder: remove it too when no other run is in it
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def iter_tools(only: str, dvc_venv: Path) -> Iterator[Tool]:
    if only in ("conveyor", "both"):
        yield conveyor_tool()
    if only in ("dvc", "both"):
        yield dvc_tool(dvc_venv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    try:
        tools = list(iter_tools(args.only, args.dvc_venv.absolute()))
    except BenchError as error:
        progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
        return 2
    versions = {"python": platform.python_version()}
    for tool in tools:
        versions[tool.name] = tool.version
        if tool.name == "dvc":
            versions["dvc_python"] = tool.python_version
    progress("[setup] " + ", ".join(f"{name} {version}" for name, version in versions.items()))

    with RunDir(args.workdir.resolve() / f"run-{stamp}", args.keep) as run_dir:
        meta: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": machine_info(run_dir),
            "versions": versions,
            "sizes": args.sizes,
            "big_mib": args.big_mib,
            "file_size": FILE_SIZE,
            "files_per_dir": FILES_PER_DIR,
            "status_repeats": STATUS_REPEATS,
            "seed": args.seed,
            "tools": [tool.name for tool in tools],
        }
        for tool in tools:
            tool.use_workdir(run_dir)
        bench = Bench(tools, run_dir, args.seed, args.keep)
        bench.run(args.sizes, args.big_mib)

    report = markdown(bench, meta)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "data_sha256": bench.fingerprints,
        "measurements": [m.to_json() for m in bench.measurements],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    results_file = RESULTS_DIR / f"versioning-{stamp}.json"
    results_file.write_text(json.dumps(record, indent=2) + "\n")
    progress(f"[setup] raw numbers in {results_file}")
    if bench.failures:
        progress(f"!!!!! {len(bench.failures)} FAILURE(S): see above; no ratio printed for them !!!!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
