"""Time conveyor's pipeline engine and Luigi 3.x's local scheduler side by side on many trivial Python tasks.

Two graph shapes, each N trivial tasks (a Python function that writes a tiny file; see ``workflow_tasks.py``):

* ``fanin``: N independent tasks ``w@i`` each writing ``out/wIIIII.txt`` (``task i``), plus one ``gather`` task
  reading all N (checking each) and writing ``out/all.txt``: N + 1 tasks;
* ``chain``: task i reads ``out/c(i-1).txt`` (checking what task i - 1 wrote) and writes ``out/cIIIII.txt``.

Conveyor runs them as ``call: workflow_tasks:write_task`` stages (a ``foreach`` over a mapping of N items for the
fan-in, N explicit stages for the chain) from a generated ``conveyor.yaml`` in a fresh git repo (``conveyor
init``, everything committed), with ``conveyor run -j W``. Luigi runs the same functions from ``Task.run`` with
``luigi.build([root], workers=W, local_scheduler=True)`` in its own venv (``bench/.venv-luigi``, created with
``LUIGI_REQUIREMENTS`` on first use), in a fresh folder; ``python workflow_tasks.py luigi ...`` is the command.

For each size N (500 and 5,000; ``--quick``: 100 and 500), shape and number of workers W (1 and 2), each tool:

* the first run, where every task runs, in a fresh folder: wall time and peak RSS of the process tree (the
  launcher of ``bench_versioning.py``: ``wait4``'s ``ru_maxrss``); the outputs are then checked (every file,
  its exact content), as are the lock (conveyor: every stage recorded) and the number of tasks that ran;
* a no-op second run (median of --repeat): conveyor must say everything is up to date and leave the lock as it
  was; Luigi must run nothing. (Luigi's rerun only asks the root task whether its output exists: a complete task's
  requirements are never looked at. Conveyor checks every stage's command, deps and outputs by hash.)

Per-task overhead = first-run wall time ÷ tasks (N + 1 for the fan-in). It is also given less the time the task
bodies take: all N bodies run one after the other in this process (``workflow_tasks.run_bodies``), and, for
conveyor, which runs each ``call`` stage in a child process forked by its fork server, less the mean time of
such a child process (conveyor's own ``StageProcess`` with a fork server, its environment, pipes and log,
``--child-sample`` of them one after the other): what remains is the engine's own cost per stage (for ``-j 1``,
where children do not overlap).

    .venv/bin/python bench/bench_workflow.py [--quick] [--sizes 500,5000] [--shapes fanin,chain] [--workers 1,2]
        [--repeat 3] [--child-sample 100] [--largest-only fanin-w1,...] [--only both]
        [--luigi-venv bench/.venv-luigi] [--workdir bench/.work] [--keep] [--markdown FILE] [--profile]

A full run (every graph and W at 5,000) takes about half an hour here, conveyor most of it (~5 minutes per
-j 1 graph of 5,000 stages); ``--largest-only fanin-w1,fanin-w2`` caps it to about 13 minutes.

``--profile`` measures nothing: it runs one ``conveyor run -j W`` per size, shape and W under cProfile (in a fresh
repo) and prints the top 25 functions by cumulative and by own time (also written next to the JSON results).

The raw numbers go to ``bench/results/workflow-YYYYMMDD-HHMMSS.json``; the Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import pstats
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_pipeline as bp
import bench_versioning as bv
import workflow_tasks as wt

LUIGI_VERSION = "3.8.1"
LUIGI_REQUIREMENTS = [f"luigi=={LUIGI_VERSION}"]
DEFAULT_LUIGI_VENV = bv.BENCH_DIR / ".venv-luigi"
TASKS_FILE = Path(wt.__file__).resolve()
TASKS_NAME = "workflow_tasks.py"

DEFAULT_SIZES = [500, 5000]
QUICK_SIZES = [100, 500]
DEFAULT_WORKERS = [1, 2]
DEFAULT_REPEAT = 3
QUICK_REPEAT = 2
DEFAULT_CHILD_SAMPLE = 100
PROFILE_TOP = 25
TOOL_NAMES = ("conveyor", "luigi")

# Targets of the issue (8, item 6).
TARGET_RATIO = 10.0  # Luigi's per-task time ÷ conveyor's, at the largest size
TARGET_NOOP_SECONDS = 1.0  # conveyor's no-op run at the largest size
FLAT_TOLERANCE = 1.10  # "no worse per task at the largest size than at the smallest", give or take 10 % noise


# ---------------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class Shape:
    kind: str  # "fanin" or "chain"
    n: int

    @property
    def tasks(self) -> int:
        return self.n + 1 if self.kind == "fanin" else self.n

    @property
    def label(self) -> str:
        return f"fan-in, {self.n:,} + 1" if self.kind == "fanin" else f"chain of {self.n:,}"

    @property
    def description(self) -> str:
        if self.kind == "fanin":
            return f"{self.n:,} independent tasks writing a tiny file each, plus one task reading all {self.n:,}"
        return f"{self.n:,} tasks in a line, each reading the previous task's file and writing its own"

    def stage_names(self) -> set[str]:
        if self.kind == "fanin":
            return {f"w@{i:05d}" for i in range(self.n)} | {"gather"}
        return {f"c{i:05d}" for i in range(self.n)}

    def conveyor_yaml(self, process: str = "fresh") -> str:
        """conveyor.yaml: a foreach over a mapping for the fan-in's N tasks; N explicit stages for the chain.
        ``process``: each stage's ``process:`` (fresh, the default, is left out)."""
        text = self._conveyor_yaml()
        if process == "fresh":
            return text
        return re.sub(r"^( *)call: (.*)$", rf"\1call: \2\n\1process: {process}", text, flags=re.MULTILINE)

    def _conveyor_yaml(self) -> str:
        call = "workflow_tasks:write_task"
        if self.kind == "fanin":
            lines = ["stages:", "  w:", "    foreach:"]
            lines += [f'      "{i:05d}": {i}' for i in range(self.n)]
            lines += [
                "    do:",
                f"      call: {call}",
                "      kwargs:",
                "        out: out/w${key}.txt",
                "        i: ${item}",
                "      outs:",
                "        - out/w${key}.txt",
                "  gather:",
                "    call: workflow_tasks:gather_task",
                "    kwargs:",
                f"      out: {wt.GATHER_OUT}",
                f"      n: {self.n}",
                "    deps:",
            ]
            lines += [f"      - {wt.wide_out(i)}" for i in range(self.n)]
            lines += ["    outs:", f"      - {wt.GATHER_OUT}"]
            return "\n".join(lines) + "\n"
        lines = ["stages:"]
        for i in range(self.n):
            out = wt.chain_out(i)
            lines += [f"  c{i:05d}:", f"    call: {call}", "    kwargs:", f"      out: {out}", f"      i: {i}"]
            if i:
                lines += [f"      dep: {wt.chain_out(i - 1)}", "    deps:", f"      - {wt.chain_out(i - 1)}"]
            lines += ["    outs:", f"      - {out}"]
        return "\n".join(lines) + "\n"


def check_outputs(folder: Path, shape: Shape) -> str | None:
    for path, text in wt.expected_outputs(shape.kind, shape.n).items():
        file = folder / path
        if not file.is_file():
            return f"{path} is missing"
        if file.read_text(encoding="utf-8") != text:
            return f"{path} does not hold what its task wrote"
    return None


def validate_pipeline(repo: Path, shape: Shape) -> float:
    """Parse the generated conveyor.yaml with conveyor's own parser and DAG, in this process; return the seconds
    that took. Checks the stage names, each stage's call and kwargs, and the edges."""
    from conveyor.pipeline._dag import Dag
    from conveyor.pipeline._spec import parse_pipeline

    start = time.perf_counter()
    pipeline = parse_pipeline((repo / "conveyor.yaml").read_text(encoding="utf-8"), root=repo)
    dag = Dag.build(pipeline)
    seconds = time.perf_counter() - start
    names = set(pipeline.stages)
    if names != shape.stage_names():
        raise bv.BenchError(f"conveyor.yaml of {shape.label} gives {len(names)} stages, not {shape.tasks}")
    calls = [(s.call, s.kwargs) for s in pipeline.stages.values()]
    expected = [(f"workflow_tasks:{function}", kwargs) for function, kwargs in wt.conveyor_kwargs(shape.kind, shape.n)]
    if calls != expected:
        raise bv.BenchError(f"conveyor.yaml of {shape.label}: the stages' calls or kwargs are not the tasks'")
    for name, stage in pipeline.stages.items():
        if TASKS_NAME not in stage.deps:
            raise bv.BenchError(f"conveyor.yaml of {shape.label}: {name} does not depend on {TASKS_NAME}")
        if shape.kind == "chain":
            i = int(name[1:])
            want = {f"c{i - 1:05d}"} if i else set()
        else:
            want = {n for n in names if n != "gather"} if name == "gather" else set()
        if dag.upstream[name] != want:
            raise bv.BenchError(f"conveyor.yaml of {shape.label}: {name} has the wrong upstream stages")
    return seconds


# ----------------------------------------------------------------------------------------------------- tools


def conveyor_tool(run_dir: Path) -> bv.Tool:
    tool = bv.conveyor_tool()
    tool.env.pop("CONVEYOR_DB", None)  # each workspace's own SQLite database
    bp.use_bytecode_cache(tool, run_dir)
    return tool


def luigi_tool(venv: Path, run_dir: Path) -> bv.Tool:
    python = venv / "bin" / "python"
    if not python.exists():
        interpreter = shutil.which("python3.11") or sys.executable
        progress(f"[setup] creating the Luigi venv {venv} with {' '.join(LUIGI_REQUIREMENTS)} ...")
        bv.run_checked([interpreter, "-m", "venv", str(venv)])
        bv.run_checked([str(python), "-m", "pip", "install", "--quiet", *LUIGI_REQUIREMENTS])
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("LUIGI_")]:  # no luigi.cfg from the caller's environment
        del env[key]
    tool = bv.Tool("luigi", [str(python), TASKS_NAME, "luigi"], env)
    tool.version = bv.run_checked([str(python), "-c", "import luigi; print(luigi.__version__)"], env=env).strip()
    if tool.version != LUIGI_VERSION:
        raise bv.BenchError(f"{venv} has Luigi {tool.version}; this benchmark compares against {LUIGI_VERSION}")
    tool.python_version = bv.run_checked([str(python), "-c", "import platform; print(platform.python_version())"])
    tool.python_version = tool.python_version.strip()
    bp.use_bytecode_cache(tool, run_dir)
    return tool


def pip_freeze(python: str) -> list[str]:
    try:
        out = bv.run_checked([python, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"])
    except bv.BenchError as error:
        return [f"pip freeze failed: {error}"]
    return [line for line in out.splitlines() if line and not line.startswith("#")]


def run_argv(tool: bv.Tool, shape: Shape, workers: int) -> list[str]:
    if tool.name == "conveyor":
        return [*tool.exe, "run", "-j", str(workers)]
    return [*tool.exe, "--shape", shape.kind, "--n", str(shape.n), "--workers", str(workers)]


def luigi_result(stdout: str) -> dict[str, Any] | None:
    found = re.search(r"^WORKFLOW-RESULT (\{.*\})\s*$", stdout, re.MULTILINE)
    return json.loads(found.group(1)) if found else None


def first_run_check(tool: bv.Tool, shape: Shape) -> bv.OutputCheck:
    def check(stdout: str) -> str | None:
        if tool.name == "conveyor":
            ran = bp.stages_ran(tool, stdout)
            return None if ran == shape.tasks else f"ran {ran} stages instead of {shape.tasks}"
        result = luigi_result(stdout)
        if result is None:
            return "printed no WORKFLOW-RESULT line"
        if result.get("status") != "SUCCESS" or result.get("completed") != shape.tasks or result.get("failed"):
            return f"did not run the {shape.tasks} tasks successfully: {result}"
        return None

    return check


def noop_check(tool: bv.Tool) -> bv.OutputCheck:
    def check(stdout: str) -> str | None:
        if tool.name == "conveyor":
            if bp.stages_ran(tool, stdout) != 0:
                return "the no-op run did not report an up-to-date pipeline or ran something"
            return None
        result = luigi_result(stdout)
        if result is None:
            return "printed no WORKFLOW-RESULT line"
        if result.get("status") != "SUCCESS" or result.get("completed") != 0 or not result.get("already_done"):
            return f"the no-op run ran something or found nothing complete: {result}"
        return None

    return check


def short(text: str, limit: int = 6000) -> str:
    """A failing run's output can be 5,000 lines: keep its head and tail."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit:,} characters left out ...]\n{text[-half:]}"


def progress(message: str) -> None:
    bv.progress(message)


# ------------------------------------------------------------------------------------------------ benchmarks


def op_name(shape: Shape, workers: int, what: str) -> str:
    return f"{shape.label}, {workers} worker{'s' if workers > 1 else ''}: {what}"


@dataclass
class Bodies:
    """The task bodies alone, for one shape: in this process, and (a sample) as conveyor's child processes."""

    in_process_seconds: float  # all the shape's bodies, one after the other, in this process
    child_seconds: list[float] = field(default_factory=list)  # one per sampled child process

    @property
    def child_mean(self) -> float | None:
        return statistics.fmean(self.child_seconds) if self.child_seconds else None


@dataclass
class WorkflowBench(bv.Bench):
    repeat: int = DEFAULT_REPEAT
    sizes: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    workers: list[int] = field(default_factory=list)
    child_sample: int = DEFAULT_CHILD_SAMPLE
    process: str = "fresh"  # conveyor's stages: process: fresh (a child forked per stage) or shared
    largest_only: list[tuple[str, int]] | None = None  # at the largest size, only these (shape, W)
    bodies: dict[str, Bodies] = field(default_factory=dict)  # shape label -> bodies alone
    parse_seconds: dict[str, float] = field(default_factory=dict)  # shape label -> in-process parse + DAG

    @property
    def shapes(self) -> list[Shape]:
        return [Shape(kind, n) for n in self.sizes for kind in self.kinds]

    def selected(self, shape: Shape, workers: int) -> bool:
        """Whether this graph and W are measured: everything, unless --largest-only caps the largest size."""
        if self.largest_only is None or len(self.sizes) < 2 or shape.n != max(self.sizes):
            return True
        return (shape.kind, workers) in self.largest_only

    def tool(self, name: str) -> bv.Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    # -- workspaces -----------------------------------------------------------------------

    def conveyor_repo(self, tool: bv.Tool, shape: Shape, name: str) -> Path:
        """A fresh git repo: conveyor initialised, workflow_tasks.py and the generated conveyor.yaml, committed."""
        repo = self.run_dir / tool.name / name
        repo.mkdir(parents=True)
        bv.run_checked(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=repo)
        bv.run_checked(["git", "config", "user.name", "conveyor bench"], cwd=repo)
        bv.run_checked(["git", "config", "user.email", "bench@conveyor.invalid"], cwd=repo)
        for argv in tool.init_commands():
            bv.run_checked(argv, cwd=repo, env=tool.env)
        shutil.copyfile(TASKS_FILE, repo / TASKS_NAME)
        (repo / "conveyor.yaml").write_text(shape.conveyor_yaml(self.process), encoding="utf-8")
        seconds = validate_pipeline(repo, shape)
        self.parse_seconds.setdefault(shape.label, seconds)
        self.commit(repo, "init")
        return repo

    def luigi_folder(self, tool: bv.Tool, name: str) -> Path:
        folder = self.run_dir / tool.name / name
        folder.mkdir(parents=True)
        shutil.copyfile(TASKS_FILE, folder / TASKS_NAME)
        return folder

    def new_folder(self, tool: bv.Tool, shape: Shape, name: str) -> Path:
        if tool.name == "conveyor":
            return self.conveyor_repo(tool, shape, name)
        return self.luigi_folder(tool, name)

    # -- measuring ------------------------------------------------------------------------

    def measure_short(self, *args: Any, **kwargs: Any) -> bv.Measurement:
        try:
            return self.measure(*args, **kwargs)
        except bv.BenchError as error:
            raise bv.BenchError(short(str(error))) from None

    def bench_one(self, tool: bv.Tool, shape: Shape, workers: int) -> None:
        name = f"{shape.kind}-{shape.n}-w{workers}"
        folder = self.new_folder(tool, shape, name)
        progress(f"[{tool.name}] {op_name(shape, workers, 'first run')} ...")
        first = op_name(shape, workers, "first run")
        self.measure_short(tool, first, run_argv(tool, shape, workers), folder, 1, first_run_check(tool, shape))
        problem = check_outputs(folder, shape)
        if problem is None and tool.name == "conveyor":
            names = bp.lock_stage_names(folder / "conveyor.lock")
            if names != shape.stage_names():
                problem = f"conveyor.lock lists {len(names)} stages instead of {shape.tasks}"
        if problem:
            self.measurements[-1].error = "wrong result: " + problem
            raise bv.BenchError(f"[{tool.name}] {first} in {folder}: {problem}")
        lock = folder / "conveyor.lock"
        lock_text = lock.read_text() if tool.name == "conveyor" else ""
        if tool.name == "conveyor":
            self.commit(folder, "first run")
        noop = op_name(shape, workers, "no-op run")
        self.measure_short(tool, noop, run_argv(tool, shape, workers), folder, self.repeat, noop_check(tool))
        if tool.name == "conveyor" and lock.read_text() != lock_text:
            self.measurements[-1].error = "wrong result: the no-op run changed the lock"
            raise bv.BenchError(f"[{tool.name}] {noop}: the no-op run changed conveyor.lock in {folder}")
        problem = check_outputs(folder, shape)
        if problem:
            self.measurements[-1].error = "wrong result after the no-op run: " + problem
            raise bv.BenchError(f"[{tool.name}] {noop} in {folder}: {problem}")

    def warm_up(self, tool: bv.Tool) -> None:
        """Run each tool once, untimed, on a 2-task fan-in: Python caches its bytecode first."""
        shape = Shape("fanin", 2)
        folder = self.new_folder(tool, shape, "warm-up")
        for _ in range(2):
            bv.run_checked(run_argv(tool, shape, 1), cwd=folder, env=tool.env)
        self.parse_seconds.pop(shape.label, None)
        if not self.keep:
            shutil.rmtree(folder, ignore_errors=True)

    def time_bodies(self, shape: Shape, conveyor: bv.Tool | None) -> None:
        """The task bodies alone: all in this process; and a sample as the child processes conveyor starts."""
        from threading import Event

        from conveyor.pipeline._executor import StageProcess, Terminal
        from conveyor.pipeline._forkserver import ForkServer
        from conveyor.pipeline._spec import Stage

        scratch = self.run_dir / "bodies" / f"{shape.kind}-{shape.n}"
        scratch.mkdir(parents=True)
        shutil.copyfile(TASKS_FILE, scratch / TASKS_NAME)
        cwd = os.getcwd()
        try:
            os.chdir(scratch)
            os.sync()
            start = time.perf_counter()
            wt.run_bodies(shape.kind, shape.n)
            in_process = time.perf_counter() - start
        finally:
            os.chdir(cwd)
        problem = check_outputs(scratch, shape)
        if problem:
            raise bv.BenchError(f"[bodies alone] {shape.label}: {problem} (in {scratch})")
        bodies = Bodies(in_process)
        child = ""
        if conveyor is not None:
            shutil.rmtree(scratch / wt.OUT_DIR)
            (scratch / wt.OUT_DIR).mkdir()
            # what the runner does for a `call` stage: StageProcess, the stage forked by the run's fork server
            calls = wt.conveyor_kwargs(shape.kind, shape.n)[: self.child_sample]
            server = ForkServer(str(scratch), dict(conveyor.env))
            try:
                for n, (function, kwargs) in enumerate(calls):
                    stage = Stage(
                        name="bench",
                        cmd=None,
                        call=f"workflow_tasks:{function}",
                        kwargs=kwargs,
                        deps=(),
                        params=(),
                        outs=(),
                        env={},
                        wdir=".",
                        shared=self.process == "shared",
                    )
                    quiet = Terminal(prefix=False, quiet=True)
                    start = time.perf_counter()
                    outcome = StageProcess(stage, scratch, scratch / "bench.log", quiet, Event(), None, server).run()
                    if n:  # the first starts the fork server (and a shared process), as once per run
                        bodies.child_seconds.append(time.perf_counter() - start)
                    if not outcome.ok:
                        raise bv.BenchError(f"[bodies alone] a sampled call stage failed: {outcome.error}")
            finally:
                server.close()
            child = f"; conveyor's child process: {statistics.fmean(bodies.child_seconds) * 1000:.1f} ms each "
            child += f"(mean of {len(bodies.child_seconds)}, after one that starts the fork server)"
        self.bodies[shape.label] = bodies
        progress(f"[bodies alone] {shape.label}: {shape.tasks} bodies in this process: {in_process:.3f} s{child}")
        if not self.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    def run_all(self) -> None:
        """Size by size, shape by shape, W by W, each tool in turn, so load changes hit both tools alike."""
        for shape in self.shapes:
            for workers in self.workers:
                self.operations += [op_name(shape, workers, "first run"), op_name(shape, workers, "no-op run")]
        for tool in self.tools:
            try:
                self.warm_up(tool)
            except bv.BenchError as error:
                self.fail(f"(warm-up) {short(str(error))}")
                return
        for shape in self.shapes:
            if not any(self.selected(shape, workers) for workers in self.workers):
                continue
            try:
                self.time_bodies(shape, self.tool("conveyor"))
            except (bv.BenchError, subprocess.CalledProcessError, OSError) as error:
                self.fail(str(error))
            for workers in self.workers:
                if not self.selected(shape, workers):
                    progress(f"[capped] {op_name(shape, workers, 'not run')} (--largest-only)")
                    continue
                for tool in self.tools:
                    try:
                        self.bench_one(tool, shape, workers)
                    except bv.BenchError as error:
                        self.fail(str(error))
                    finally:
                        if not self.keep:
                            shutil.rmtree(self.run_dir / tool.name / f"{shape.kind}-{shape.n}-w{workers}", True)

    def fail(self, message: str) -> None:
        self.failures.append(message)
        progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{message}\n")

    # -- derived figures ------------------------------------------------------------------

    def ok(self, tool: str, op: str) -> bv.Measurement | None:
        measurement = self.result(tool, op)
        return measurement if measurement is not None and measurement.runs and not measurement.error else None

    def figures(self, shape: Shape, workers: int, tool: str) -> dict[str, float] | None:
        first = self.ok(tool, op_name(shape, workers, "first run"))
        if first is None:
            return None
        figures: dict[str, float] = {
            "tasks": shape.tasks,
            "first_run_seconds": first.seconds,
            "ms_per_task": first.seconds / shape.tasks * 1000,
            "first_run_peak_rss_mib": first.peak_rss_mib,
        }
        bodies = self.bodies.get(shape.label)
        if bodies is not None:
            figures["bodies_in_process_seconds"] = bodies.in_process_seconds
            figures["ms_per_task_less_bodies"] = (first.seconds - bodies.in_process_seconds) / shape.tasks * 1000
            if tool == "conveyor" and bodies.child_mean is not None:
                figures["child_process_ms"] = bodies.child_mean * 1000
                if workers == 1:
                    own = first.seconds - bodies.child_mean * shape.tasks
                    figures["ms_per_task_less_child_processes"] = own / shape.tasks * 1000
        noop = self.ok(tool, op_name(shape, workers, "no-op run"))
        if noop is not None:
            figures["noop_seconds"] = noop.seconds
            figures["noop_first_seconds"] = noop.runs[0].seconds  # right after the first run: parses the new lock
            figures["noop_peak_rss_mib"] = noop.peak_rss_mib
        return figures

    def targets(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        small, large = min(self.sizes), max(self.sizes)
        for kind in self.kinds:
            for workers in self.workers:
                big = Shape(kind, large)
                ours = self.figures(big, workers, "conveyor")
                theirs = self.figures(big, workers, "luigi")
                what = f"{big.label}, {workers} worker{'s' if workers > 1 else ''}"
                if ours is not None and small != large:
                    little = self.figures(Shape(kind, small), workers, "conveyor")
                    if little is not None:
                        growth = ours["ms_per_task"] / little["ms_per_task"]
                        rows.append(
                            {
                                "target": f"{what}: conveyor's ms per task no worse than at {small:,} "
                                f"(within {FLAT_TOLERANCE - 1:.0%})",
                                "result": f"{ours['ms_per_task']:.2f} vs {little['ms_per_task']:.2f} ms "
                                f"({growth:.2f}×)",
                                "value": growth,
                                "met": growth <= FLAT_TOLERANCE,
                            }
                        )
                if ours is not None and theirs is not None:
                    ratio = theirs["ms_per_task"] / ours["ms_per_task"]
                    rows.append(
                        {
                            "target": f"{what}: conveyor's ms per task ≥ {TARGET_RATIO:g}× lower than Luigi's",
                            "result": f"{ours['ms_per_task']:.2f} vs {theirs['ms_per_task']:.2f} ms ({ratio:.2f}×)",
                            "value": ratio,
                            "met": ratio >= TARGET_RATIO,
                        }
                    )
                if ours is not None and "noop_seconds" in ours:
                    rows.append(
                        {
                            "target": f"{what}: conveyor's no-op run under {TARGET_NOOP_SECONDS:g} s",
                            "result": f"{ours['noop_seconds']:.2f} s",
                            "value": ours["noop_seconds"],
                            "met": ours["noop_seconds"] < TARGET_NOOP_SECONDS,
                        }
                    )
        return rows


# ---------------------------------------------------------------------------------------------------- report


def state(bench: WorkflowBench, tool: str, shape: Shape, workers: int) -> str | None:
    """What a cell says instead of a number: the tool was not selected, or this row was left out (--largest-only)."""
    if tool not in {t.name for t in bench.tools}:
        return "—"
    if bench.result(tool, op_name(shape, workers, "first run")) is None:
        return "not run"
    return None


def num(figures: dict[str, float] | None, key: str, fmt: str, instead: str | None) -> str:
    if instead is not None:
        return instead
    if figures is None:
        return "FAILED"
    value = figures.get(key)
    return "—" if value is None else format(value, fmt)


def noop_cell(figures: dict[str, float] | None, instead: str | None) -> str:
    """The median of the no-op runs, and the first of them (right after the first run) when it differs."""
    text = num(figures, "noop_seconds", ".2f", instead)
    if instead is None and figures is not None and "noop_first_seconds" in figures:
        first = figures["noop_first_seconds"]
        if f"{first:.2f}" != text:
            text += f" (1st {first:.2f})"
    return text


def markdown(bench: WorkflowBench, meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    pythons = f"{versions['python']} (this script and conveyor)"
    if versions.get("luigi_python"):
        pythons += f", {versions['luigi_python']} (Luigi venv)"
    lines = [
        "## Workflow benchmark: conveyor vs Luigi (local scheduler), many trivial Python tasks",
        "",
        f"- Date: {meta['date_utc']}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']:.1f} GiB RAM, "
        f"{machine['kernel']}, work dir on {machine['filesystem']}",
        f"- Python: {pythons}",
        f"- conveyor: {versions.get('conveyor') or 'not run'}; Luigi: {versions.get('luigi') or 'not run'}",
        f"- Command: `{meta['command']}`",
        "- Graphs: " + "; ".join(f"**{shape.label}**: {shape.description}" for shape in bench.shapes) + ". "
        "Each task calls the same Python function (`workflow_tasks.write_task`: write `task i` to a file). "
        f"conveyor: `call:` stages (`process: {bench.process}`) in a generated `conveyor.yaml` (the fan-in as one "
        "`foreach`), `conveyor run -j W` in a fresh git repo; Luigi: `luigi.build([root], workers=W, "
        "local_scheduler=True)`, its default logging, in a fresh folder. Both warmed up (bytecode cached) by an "
        "untimed run on a 2-task graph.",
        "- First run: one run each, outputs and their contents checked after it; ms per task = wall time ÷ tasks. "
        f"No-op run: median of {meta['repeat']} (and the first, right after the first run, when it differs: conveyor "
        "then parses the lock it just wrote and caches it for the next commands). Peak RSS: the process tree's "
        "(`ru_maxrss` from `wait4`).",
        "- Luigi's no-op run asks only the root task (its output exists) and never looks further; conveyor's "
        "checks every stage.",
        *(
            [
                f"- **Capped** (`--largest-only`): at {max(bench.sizes):,} tasks only "
                + ", ".join(f"{kind} with {w} worker{'s' if w > 1 else ''}" for kind, w in bench.largest_only)
                + " ran; the other rows of that size say *not run*."
            ]
            if bench.largest_only and len(bench.sizes) > 1
            else []
        ),
        f"- Load average (1, 5, 15 min) at the start: {meta['loadavg_start']}; at the end: {meta['loadavg_end']} "
        "(the machine is shared).",
        "",
        "| graph | tasks | workers | conveyor first run (s) | Luigi first run (s) | conveyor ms/task | Luigi ms/task "
        "| Luigi ÷ conveyor | conveyor no-op (s) | Luigi no-op (s) | conveyor peak RSS (MiB) | Luigi peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shape in bench.shapes:
        for workers in bench.workers:
            ours = bench.figures(shape, workers, "conveyor")
            theirs = bench.figures(shape, workers, "luigi")
            ratio = "—"
            if ours is not None and theirs is not None:
                ratio = f"{theirs['ms_per_task'] / ours['ms_per_task']:.2f}×"
            c, lu = state(bench, "conveyor", shape, workers), state(bench, "luigi", shape, workers)
            cells = [
                shape.label,
                f"{shape.tasks:,}",
                str(workers),
                num(ours, "first_run_seconds", ".2f", c),
                num(theirs, "first_run_seconds", ".2f", lu),
                num(ours, "ms_per_task", ".2f", c),
                num(theirs, "ms_per_task", ".2f", lu),
                ratio,
                noop_cell(ours, c),
                noop_cell(theirs, lu),
                num(ours, "first_run_peak_rss_mib", ".0f", c),
                num(theirs, "first_run_peak_rss_mib", ".0f", lu),
            ]
            lines.append("| " + " | ".join(cells) + " |")

    lines += [
        "",
        "Where the time goes, in ms per task. *Bodies alone*: all the task bodies run one after the other in the "
        "benchmark's process. Conveyor runs each `call` stage in a child process its fork server forks: *child "
        f"process* is the mean of {bench.child_sample} such stages (conveyor's own StageProcess and fork server) run "
        "one after the other; *less its child processes* takes them off the `-j 1` first run, leaving the engine's "
        "own cost per stage (scheduling, hashing, storing outputs, writing `conveyor.lock` and `.gitignore`, the run "
        "record).",
        "",
        "| graph | workers | bodies alone | conveyor less bodies | Luigi less bodies | conveyor child process "
        "| conveyor less its child processes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for shape in bench.shapes:
        bodies = bench.bodies.get(shape.label)
        alone = "—" if bodies is None else f"{bodies.in_process_seconds / shape.tasks * 1000:.3f}"
        for workers in bench.workers:
            ours = bench.figures(shape, workers, "conveyor")
            theirs = bench.figures(shape, workers, "luigi")
            c, lu = state(bench, "conveyor", shape, workers), state(bench, "luigi", shape, workers)
            cells = [
                shape.label,
                str(workers),
                alone,
                num(ours, "ms_per_task_less_bodies", ".2f", c),
                num(theirs, "ms_per_task_less_bodies", ".2f", lu),
                num(ours, "child_process_ms", ".1f", c),
                num(ours, "ms_per_task_less_child_processes", ".2f", c),
            ]
            lines.append("| " + " | ".join(cells) + " |")

    targets = bench.targets()
    if targets:
        lines += ["", "| target (issue 8, item 6) | result | met |", "|---|---|---|"]
        for target in targets:
            met = {True: "yes", False: "**no**"}[target["met"]]
            lines.append(f"| {target['target']} | {target['result']} | {met} |")
    if bench.failures:
        lines += ["", f"**{len(bench.failures)} failure(s)**: rows marked FAILED have no figures."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------- profile


def profile_conveyor(bench: WorkflowBench, tool: bv.Tool, results_stem: Path) -> str:
    """One `conveyor run -j W` per shape and W under cProfile, in a fresh repo; the top functions as text."""
    report = []
    bench.warm_up(tool)  # bytecode cached first, as for the measured runs
    prefixes = {str(bv.BENCH_DIR.parent / "src") + "/": "", sysconfig.get_paths()["purelib"] + "/": "site-packages/"}
    prefixes[sysconfig.get_paths()["stdlib"] + "/"] = "stdlib/"
    for shape in bench.shapes:
        for workers in bench.workers:
            name = f"profile-{shape.kind}-{shape.n}-w{workers}"
            repo = bench.conveyor_repo(tool, shape, name)
            stats_file = bench.run_dir / f"{name}.pstats"
            # the console script (a Python file) or `-m conveyor`, whichever bv.conveyor_tool found
            target = tool.exe if len(tool.exe) == 1 else ["-m", "conveyor"]
            argv = [sys.executable, "-m", "cProfile", "-o", str(stats_file), *target, "run", "-j", str(workers)]
            progress(f"[profile] {op_name(shape, workers, 'first run')} under cProfile ...")
            start = time.perf_counter()
            bv.run_checked(argv, cwd=repo, env=tool.env)
            seconds = time.perf_counter() - start
            problem = check_outputs(repo, shape)
            if problem:
                raise bv.BenchError(f"[profile] {shape.label}: {problem} (in {repo})")
            text = io.StringIO()
            stats = pstats.Stats(str(stats_file), stream=text)
            text.write(f"### {op_name(shape, workers, 'first run')}: {seconds:.1f} s under cProfile\n\n")
            text.write("cProfile sees the main thread, which makes every decision and write; the worker threads only ")
            text.write("start each stage's process and wait for it (time the main thread spends in `wait`).\n\n")
            sections = (
                ("cumulative", "cumulative time", ()),
                ("tottime", "own time", ()),
                ("cumulative", "cumulative time, conveyor's own functions", ("conveyor/",)),
            )
            for key, what, restrict in sections:
                text.write(f"Top {PROFILE_TOP} by {what}\n```\n")
                start_at = text.tell()
                stats.sort_stats(key).print_stats(*restrict, PROFILE_TOP)
                body = text.getvalue()[start_at:]
                for prefix, short_name in prefixes.items():
                    body = body.replace(prefix, short_name)
                text.seek(start_at)
                text.truncate()
                text.write(body + "```\n\n")
            report.append(text.getvalue())
            progress(f"[profile] {seconds:.1f} s")
            if not bench.keep:
                shutil.rmtree(repo, ignore_errors=True)
    out = "\n".join(report)
    path = results_stem.with_name(results_stem.name + "-profile.md")
    path.write_text(out)
    progress(f"[profile] written to {path}")
    return out


# ------------------------------------------------------------------------------------------------------ main


def parse_ints(text: str) -> list[int]:
    try:
        values = sorted({int(part.replace("_", "").replace(",", "")) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of whole numbers: {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("must be positive")
    return values


def parse_combos(text: str) -> list[tuple[str, int]]:
    combos = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        found = re.fullmatch(r"(fanin|chain)-w(\d+)", part)
        if not found:
            raise argparse.ArgumentTypeError(f"expected SHAPE-wW items like fanin-w1,chain-w2: {part!r}")
        combos.append((found.group(1), int(found.group(2))))
    if not combos:
        raise argparse.ArgumentTypeError("name at least one SHAPE-wW, like fanin-w1")
    return combos


def parse_kinds(text: str) -> list[str]:
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(kinds) - set(wt.SHAPES))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"shapes are fanin and chain, comma-separated: {text!r}")
    return list(dict.fromkeys(kinds))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time conveyor's pipeline engine and Luigi 3.x's local scheduler side by side on many trivial "
        "Python tasks: a fan-in and a chain, first run and no-op run."
    )
    parser.add_argument(
        "--sizes",
        type=parse_ints,
        help="task counts N, comma-separated (500,5000; 100,500 with --quick); the largest must stay under 100,000",
    )
    parser.add_argument("--quick", action="store_true", help="a fast check: sizes 100,500 and 2 no-op runs")
    parser.add_argument("--shapes", type=parse_kinds, default=list(wt.SHAPES), help="fanin, chain or both (both)")
    parser.add_argument("--workers", type=parse_ints, default=DEFAULT_WORKERS, help="worker counts W (1,2)")
    parser.add_argument(
        "--repeat",
        type=bv.positive_int,
        help=f"no-op runs, the median is reported ({DEFAULT_REPEAT}; {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--child-sample",
        type=bv.positive_int,
        default=DEFAULT_CHILD_SAMPLE,
        help=f"conveyor-style child processes timed per graph to estimate their share ({DEFAULT_CHILD_SAMPLE})",
    )
    parser.add_argument(
        "--largest-only",
        type=parse_combos,
        metavar="SHAPE-wW,...",
        help="at the largest size, run only these graphs and worker counts (e.g. fanin-w1): a cap on the run's "
        "length, since conveyor takes minutes per graph of 5,000 tasks; the smaller sizes run in full",
    )
    parser.add_argument("--only", choices=["conveyor", "luigi", "both"], default="both", help="tools to run (both)")
    parser.add_argument(
        "--process",
        choices=["fresh", "shared"],
        default="fresh",
        help="conveyor's call stages: a child forked per stage (fresh, the default) or process: shared",
    )
    parser.add_argument(
        "--luigi-venv",
        type=Path,
        default=DEFAULT_LUIGI_VENV,
        help=f"venv with Luigi {LUIGI_VERSION}; created with {' '.join(LUIGI_REQUIREMENTS)} when missing "
        "(bench/.venv-luigi)",
    )
    parser.add_argument("--workdir", type=Path, default=bv.DEFAULT_WORKDIR, help="where the folders go (bench/.work)")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="measure nothing: profile one conveyor first run per size, shape and W with cProfile",
    )
    args = parser.parse_args(argv)
    args.sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    if max(args.sizes) >= 100_000:
        parser.error("--sizes: at most 99,999 tasks (file names carry 5 digits)")
    args.repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    wall_start = time.perf_counter()
    names = TOOL_NAMES if args.only == "both" else (args.only,)
    if args.profile:
        names = ("conveyor",)
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    results_stem = bv.RESULTS_DIR / f"workflow-{stamp}"
    with bv.RunDir(args.workdir.resolve() / f"workflow-{stamp}", args.keep) as run_dir:
        try:
            tools = [
                conveyor_tool(run_dir) if name == "conveyor" else luigi_tool(args.luigi_venv.absolute(), run_dir)
                for name in names
            ]
        except bv.BenchError as error:
            progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
            return 2
        versions: dict[str, Any] = {"python": platform.python_version()}
        for tool in tools:
            versions[tool.name] = tool.version
            if tool.name == "luigi":
                versions["luigi_python"] = tool.python_version
                versions["luigi_venv"] = pip_freeze(str(args.luigi_venv.absolute() / "bin" / "python"))
        progress("[setup] " + ", ".join(f"{k} {v}" for k, v in versions.items() if isinstance(v, str)))
        bench = WorkflowBench(
            tools,
            run_dir,
            seed=0,
            keep=args.keep,
            repeat=args.repeat,
            sizes=args.sizes,
            kinds=args.shapes,
            workers=args.workers,
            child_sample=args.child_sample,
            process=args.process,
            largest_only=args.largest_only,
        )
        if args.profile:
            try:
                report = profile_conveyor(bench, tools[0], results_stem)
            except bv.BenchError as error:
                progress(f"!!!!! PROFILE FAILURE !!!!!\n{short(str(error))}")
                return 1
            print(report, end="")
            if args.markdown:
                args.markdown.write_text(report)
            return 0
        meta: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": bv.machine_info(run_dir),
            "versions": versions,
            "luigi_requirements": LUIGI_REQUIREMENTS,
            "sizes": args.sizes,
            "shapes": {shape.label: shape.description for shape in bench.shapes},
            "workers": args.workers,
            "repeat": args.repeat,
            "child_sample": args.child_sample,
            "process": args.process,
            "largest_only": args.largest_only,
            "loadavg_start": bp.loadavg(),
            "tools": [tool.name for tool in tools],
        }
        bench.run_all()
        meta["loadavg_end"] = bp.loadavg()
        meta["wall_seconds"] = time.perf_counter() - wall_start

    report = markdown(bench, meta)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "figures": {
            shape.label: {
                str(workers): {tool.name: bench.figures(shape, workers, tool.name) for tool in tools}
                for workers in args.workers
            }
            for shape in bench.shapes
        },
        "bodies": {
            label: {"in_process_seconds": b.in_process_seconds, "child_process_seconds": b.child_seconds}
            for label, b in bench.bodies.items()
        },
        "conveyor_yaml_parse_seconds_in_process": bench.parse_seconds,
        "targets": bench.targets(),
        "conveyor_yaml_head": {
            shape.label: shape.conveyor_yaml(bench.process).splitlines()[:12] for shape in bench.shapes
        },
        "measurements": [m.to_json() for m in bench.measurements],
    }
    results_file = results_stem.with_suffix(".json")
    results_file.write_text(json.dumps(record, indent=2) + "\n")
    progress(f"[setup] raw numbers in {results_file}; {meta['wall_seconds']:.0f} s in all")
    if bench.failures:
        progress(f"!!!!! {len(bench.failures)} FAILURE(S): see above; no figures for them !!!!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
