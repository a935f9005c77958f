"""Time conveyor's pipeline engine and DVC 3.x side by side on the same pipelines.

Two pipeline shapes, written as the same YAML for both tools (``conveyor.yaml`` and ``dvc.yaml``) with the same
shell command in every stage:

* ``chain``: N stages in a line; stage i reads the output of stage i-1 (stage 0 reads ``src.txt``):
  ``cat IN > OUT && echo i >> OUT``;
* ``wide``: N independent stages, each reading ``src.txt`` (``cat src.txt > OUT && echo i >> OUT``), plus one
  ``gather`` stage reading all N outputs (``cat out/w*.txt > out/all.txt``): N + 1 stages.

For each shape, each tool works in its own fresh git repository (conveyor and DVC both initialised in it, the
pipeline file committed) and is timed on:

* the first full run: ``conveyor run -j 1`` and ``conveyor run`` (default -j, one stage per CPU), each in its
  own fresh repository, against ``dvc repro`` (DVC runs stages one at a time);
* a no-op run and ``status`` on the up-to-date pipeline (median of --repeat runs);
* chain only (unless --skip-change): the run after changing ``src.txt``, the input of the first stage, so every
  stage runs again.

Conveyor's own overhead per executed stage is (first-run wall time with -j 1 - the time of the stage commands
alone) / executed stages, where "the commands alone" is the median over --repeat loops of running the same
commands one after the other with ``subprocess.run(["/bin/sh", "-c", CMD])`` from this script, in a scratch copy
of the workspace. DVC runs its commands with ``$SHELL``; the benchmark sets ``SHELL=/bin/sh`` for it, so both
tools use the same shell.

Every command is timed by the launcher of ``bench_versioning.py`` (wall time and peak RSS of its process tree);
every exit code and result is checked (the outputs' contents, the lock listing every stage, the number of stages
that ran, a clean status); a failure is reported loudly and gets no ratio.

    .venv/bin/python bench/bench_pipeline.py [--stages 200] [--repeat 5] [--first-runs 3] [--quick]
        [--skip-change] [--shapes chain,wide] [--only both] [--dvc-venv bench/.venv-dvc] [--workdir bench/.work]
        [--keep] [--markdown FILE]

The raw numbers go to ``bench/results/pipeline-YYYYMMDD-HHMMSS.json``; the Markdown tables to stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_versioning as bv

DEFAULT_STAGES = 200
DEFAULT_REPEAT = 5
DEFAULT_FIRST_RUNS = 3
QUICK_STAGES = 50
QUICK_REPEAT = 3
SOURCE = "src.txt"
OUT_DIR = "out"
SOURCE_TEXT = "hello\n"
CHANGED_SOURCE_TEXT = "hello, changed\n"
CPUS = os.cpu_count() or 1

# Targets of the pipeline issue.
TARGET_SPEED_UP = 10.0
TARGET_NOOP_SECONDS = 0.5
TARGET_OVERHEAD_MS = 20.0


# ---------------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class StageDef:
    name: str
    cmd: str
    deps: list[str]
    out: str


@dataclass(frozen=True)
class Shape:
    kind: str  # "chain" or "wide"
    n: int

    @property
    def label(self) -> str:
        if self.kind == "chain":
            return f"chain of {self.n}"
        return f"wide, {self.n} + 1"

    @property
    def description(self) -> str:
        if self.kind == "chain":
            return f"{self.n} stages in a line, each reading the previous stage's output"
        return f"{self.n} independent stages reading one source file, plus one stage reading their {self.n} outputs"

    def stages(self) -> list[StageDef]:
        """The stages in an order the commands can run in, one after the other."""
        if self.kind == "chain":
            stages = []
            for i in range(self.n):
                dep = SOURCE if i == 0 else f"{OUT_DIR}/s{i - 1:04d}.txt"
                out = f"{OUT_DIR}/s{i:04d}.txt"
                stages.append(StageDef(f"s{i:04d}", f"cat {dep} > {out} && echo {i} >> {out}", [dep], out))
            return stages
        stages = []
        for i in range(self.n):
            out = f"{OUT_DIR}/w{i:04d}.txt"
            stages.append(StageDef(f"w{i:04d}", f"cat {SOURCE} > {out} && echo {i} >> {out}", [SOURCE], out))
        outs = [s.out for s in stages]
        gather_out = f"{OUT_DIR}/all.txt"
        stages.append(StageDef("gather", f"cat {OUT_DIR}/w*.txt > {gather_out}", outs, gather_out))
        return stages

    def yaml(self) -> str:
        """The pipeline file; the same text serves as conveyor.yaml and dvc.yaml."""
        lines = ["stages:"]
        for stage in self.stages():
            lines += [f"  {stage.name}:", f"    cmd: {stage.cmd}", "    deps:"]
            lines += [f"      - {dep}" for dep in stage.deps]
            lines += ["    outs:", f"      - {stage.out}"]
        return "\n".join(lines) + "\n"

    def expected_outputs(self, source: str) -> dict[str, str]:
        """What every output must hold once the pipeline ran on `source`."""
        expected: dict[str, str] = {}
        if self.kind == "chain":
            text = source
            for i in range(self.n):
                text += f"{i}\n"
                expected[f"{OUT_DIR}/s{i:04d}.txt"] = text
            return expected
        for i in range(self.n):
            expected[f"{OUT_DIR}/w{i:04d}.txt"] = f"{source}{i}\n"
        expected[f"{OUT_DIR}/all.txt"] = "".join(expected[k] for k in sorted(expected))
        return expected

    @property
    def stage_count(self) -> int:
        return self.n if self.kind == "chain" else self.n + 1


def write_workspace(repo: Path, shape: Shape, pipeline_file: str | None) -> None:
    (repo / OUT_DIR).mkdir()
    (repo / OUT_DIR / ".gitkeep").write_text("")  # DVC does not create an output's folder
    (repo / SOURCE).write_text(SOURCE_TEXT)
    if pipeline_file is not None:
        (repo / pipeline_file).write_text(shape.yaml())


def check_outputs(repo: Path, shape: Shape, source: str) -> str | None:
    for path, text in shape.expected_outputs(source).items():
        file = repo / path
        if not file.is_file():
            return f"{path} is missing"
        if file.read_text() != text:
            return f"{path} does not hold what its stage wrote"
    return None


def lock_stage_names(lock: Path) -> set[str]:
    """The stage names in conveyor.lock or dvc.lock (both: `stages:` then two-space-indented names)."""
    if not lock.is_file():
        return set()
    return set(re.findall(r"^  ([^\s:]+):\s*$", lock.read_text(), re.MULTILINE))


# ----------------------------------------------------------------------------------------------------- tools


def lock_file(tool: bv.Tool) -> str:
    return "conveyor.lock" if tool.name == "conveyor" else "dvc.lock"


def pipeline_file(tool: bv.Tool) -> str:
    return "conveyor.yaml" if tool.name == "conveyor" else "dvc.yaml"


def run_argv(tool: bv.Tool, jobs: int | None = None) -> list[str]:
    if tool.name == "conveyor":
        return [*tool.exe, "run", *([] if jobs is None else ["-j", str(jobs)])]
    return [*tool.exe, "repro"]


def stages_ran(tool: bv.Tool, stdout: str) -> int | None:
    """How many stages the run reports having run (None when the report cannot be read)."""
    if tool.name == "conveyor":
        if re.search(r"^Everything is up to date", stdout, re.MULTILINE):
            return 0
        found = re.search(r"^ran (\d+) stages?\b", stdout, re.MULTILINE | re.IGNORECASE)
        return int(found.group(1)) if found else None
    return stdout.count("Running stage '")


def ran_check(tool: bv.Tool, expected: int) -> bv.OutputCheck:
    def check(stdout: str) -> str | None:
        ran = stages_ran(tool, stdout)
        return None if ran == expected else f"ran {ran} stages instead of {expected}"

    return check


def noop_check(tool: bv.Tool) -> bv.OutputCheck:
    phrase = "Everything is up to date" if tool.name == "conveyor" else "Data and pipelines are up to date."

    def check(stdout: str) -> str | None:
        if phrase not in stdout or stages_ran(tool, stdout) != 0:
            return f"the no-op run did not report an up-to-date pipeline ({phrase!r}) or ran something"
        return None

    return check


def status_check(tool: bv.Tool) -> bv.OutputCheck:
    phrase = "Pipeline is up to date" if tool.name == "conveyor" else "Data and pipelines are up to date."
    return lambda stdout: None if phrase in stdout else f"status did not report an up-to-date pipeline ({phrase!r})"


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages: the machine is shared, so say how busy it was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def use_bytecode_cache(tool: bv.Tool, run_dir: Path) -> None:
    """Let Python cache compiled bytecode, as after a normal install, even when PYTHONDONTWRITEBYTECODE is set.

    Without it, conveyor (installed editable, from src/, which holds no __pycache__) would compile its modules on
    every command, while DVC's venv has the bytecode pip compiled at install. Conveyor's bytecode goes to a folder
    in the work folder (PYTHONPYCACHEPREFIX), not into src/; the warm-up run fills it.
    """
    tool.env.pop("PYTHONDONTWRITEBYTECODE", None)
    if tool.name == "conveyor":
        tool.env["PYTHONPYCACHEPREFIX"] = str(run_dir / "pycache")


# ------------------------------------------------------------------------------------------------ benchmarks


@dataclass
class Row:
    label: str
    conveyor_op: str
    dvc_op: str


@dataclass
class PipelineBench(bv.Bench):
    repeat: int = DEFAULT_REPEAT
    first_runs: int = DEFAULT_FIRST_RUNS  # conveyor's first runs, each in a fresh repo; DVC's: one (a minute each)
    change: bool = True  # time the run after changing the chain's first input
    shapes: list[Shape] = field(default_factory=list)
    rows: dict[str, list[Row]] = field(default_factory=dict)  # shape label -> table rows
    commands_alone: dict[str, list[float]] = field(default_factory=dict)  # shape label -> loop times

    def new_pipeline_repo(self, tool: bv.Tool, shape: Shape, name: str) -> Path:
        """A fresh git repo with every selected tool initialised and `tool`'s pipeline file, all committed."""
        repo = self.run_dir / tool.name / name
        repo.mkdir(parents=True)
        bv.run_checked(["git", "-c", "init.defaultBranch=main", "init", "-q"], cwd=repo)
        bv.run_checked(["git", "config", "user.name", "conveyor bench"], cwd=repo)
        bv.run_checked(["git", "config", "user.email", "bench@conveyor.invalid"], cwd=repo)
        for each in self.tools:
            for argv in each.init_commands():
                bv.run_checked(argv, cwd=repo, env=each.env)
        write_workspace(repo, shape, pipeline_file(tool))
        self.commit(repo, "init")
        return repo

    def first_run(self, tool: bv.Tool, shape: Shape, op: str, name: str, jobs: int | None, runs: int) -> Path:
        """Time the first full run `runs` times, each in a fresh repository (at the same path); return it."""
        repo = self.run_dir / tool.name / name

        def fresh_repo(i: int) -> None:
            if i:
                self.check_result(tool, op, repo, shape, SOURCE_TEXT)
                shutil.rmtree(repo)
            self.new_pipeline_repo(tool, shape, name)

        self.measure(tool, op, run_argv(tool, jobs), repo, runs, ran_check(tool, shape.stage_count), fresh_repo)
        self.check_result(tool, op, repo, shape, SOURCE_TEXT)
        self.commit(repo, "first run")
        return repo

    def check_result(self, tool: bv.Tool, op: str, repo: Path, shape: Shape, source: str) -> None:
        problem = check_outputs(repo, shape, source)
        names = lock_stage_names(repo / lock_file(tool))
        if problem is None and names != {s.name for s in shape.stages()}:
            problem = f"{lock_file(tool)} lists {len(names)} stages instead of {shape.stage_count}"
        if problem:
            self.measurements[-1].error = "wrong result: " + problem
            raise bv.BenchError(f"[{tool.name}] {op} in {repo}: {problem}")

    def bench_shape(self, tool: bv.Tool, shape: Shape) -> None:
        prefix = f"{shape.label}: "
        if tool.name == "conveyor":
            runs = self.first_runs
            progress(f"[{tool.name}] {shape.label}: first run, -j 1 ...")
            serial = self.first_run(tool, shape, prefix + "first run -j 1", shape.kind + "-j1", 1, runs)
            if not self.keep:
                shutil.rmtree(serial, ignore_errors=True)
            progress(f"[{tool.name}] {shape.label}: first run, default -j ({CPUS}) ...")
            repo = self.first_run(tool, shape, prefix + "first run default -j", shape.kind, None, runs)
        else:
            progress(f"[{tool.name}] {shape.label}: first run ...")
            repo = self.first_run(tool, shape, prefix + "first run", shape.kind, None, 1)

        lock = repo / lock_file(tool)
        lock_text = lock.read_text()
        self.measure(tool, prefix + "no-op run", run_argv(tool), repo, self.repeat, noop_check(tool))
        if lock.read_text() != lock_text:
            self.measurements[-1].error = "wrong result: the no-op run changed the lock"
            raise bv.BenchError(f"[{tool.name}] {shape.label}: the no-op run changed {lock.name} in {repo}")
        self.measure(tool, prefix + "status", tool.status(), repo, self.repeat, status_check(tool))

        if shape.kind == "chain" and self.change:
            (repo / SOURCE).write_text(CHANGED_SOURCE_TEXT)
            op = prefix + "run after changing the first input"
            self.measure(tool, op, run_argv(tool), repo, check=ran_check(tool, shape.stage_count))
            self.check_result(tool, op, repo, shape, CHANGED_SOURCE_TEXT)

    def warm_up(self, tool: bv.Tool) -> None:
        """Run the measured commands once, untimed, on a 2-stage chain: Python caches its bytecode first."""
        shape = Shape("chain", 2)
        repo = self.new_pipeline_repo(tool, shape, "warm-up")
        for argv in (run_argv(tool), run_argv(tool), tool.status()):
            bv.run_checked(argv, cwd=repo, env=tool.env)
        if not self.keep:
            shutil.rmtree(repo, ignore_errors=True)

    def time_commands(self, shape: Shape) -> None:
        """Time the stage commands alone: one `sh -c CMD` after the other, from this process."""
        scratch = self.run_dir / "commands" / shape.kind
        scratch.mkdir(parents=True)
        write_workspace(scratch, shape, None)
        stages = shape.stages()
        loops = []
        for _ in range(self.repeat):
            for stage in stages:
                (scratch / stage.out).unlink(missing_ok=True)
            os.sync()
            start = time.perf_counter()
            for stage in stages:
                subprocess.run(["/bin/sh", "-c", stage.cmd], cwd=scratch, stdin=subprocess.DEVNULL, check=True)
            loops.append(time.perf_counter() - start)
        problem = check_outputs(scratch, shape, SOURCE_TEXT)
        if problem:
            raise bv.BenchError(f"[commands alone] {shape.label}: {problem} (in {scratch})")
        self.commands_alone[shape.label] = loops
        times = ", ".join(f"{t:.2f}" for t in loops)
        progress(f"[commands alone] {shape.label}: {len(stages)} x `sh -c CMD` ... median of {times} s")
        if not self.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    def run_all(self) -> None:
        """Each shape in turn, each tool in turn on it, so load changes hit both tools alike."""
        for tool in self.tools:
            try:
                self.warm_up(tool)
            except bv.BenchError as error:
                self.failures.append(str(error))
                progress(f"\n!!!!! BENCHMARK FAILURE (warm-up) !!!!!\n{error}\n")
                return
        for shape in self.shapes:
            prefix = f"{shape.label}: "
            rows = [
                Row("first run, conveyor `-j 1` vs `dvc repro`", prefix + "first run -j 1", prefix + "first run"),
                Row(
                    f"first run, conveyor default `-j` ({CPUS}) vs `dvc repro`",
                    prefix + "first run default -j",
                    prefix + "first run",
                ),
                Row(f"no-op run (median of {self.repeat})", prefix + "no-op run", prefix + "no-op run"),
                Row(f"`status`, up to date (median of {self.repeat})", prefix + "status", prefix + "status"),
            ]
            if shape.kind == "chain" and self.change:
                op = prefix + "run after changing the first input"
                rows.append(Row(f"run after changing stage 1's input ({shape.n} stages re-run)", op, op))
            self.rows[shape.label] = rows
            self.operations += sorted({op for row in rows for op in (row.conveyor_op, row.dvc_op)})
            try:
                self.time_commands(shape)
            except (bv.BenchError, subprocess.CalledProcessError) as error:
                self.failures.append(str(error))
                progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{error}\n")
            for tool in self.tools:
                try:
                    self.bench_shape(tool, shape)
                except bv.BenchError as error:
                    self.failures.append(str(error))
                    progress(f"\n!!!!! BENCHMARK FAILURE !!!!!\n{error}\n")
                finally:
                    if not self.keep:
                        shutil.rmtree(self.run_dir / tool.name / shape.kind, ignore_errors=True)
                        shutil.rmtree(self.run_dir / tool.name / (shape.kind + "-j1"), ignore_errors=True)

    # -- derived figures ------------------------------------------------------------------

    def ok(self, tool: str, op: str) -> bv.Measurement | None:
        measurement = self.result(tool, op)
        return measurement if measurement is not None and measurement.runs and not measurement.error else None

    def overhead(self, shape: Shape, tool: str) -> dict[str, float] | None:
        """Per executed stage: (first run - commands alone) / stages, and the same less the no-op run's time."""
        prefix = f"{shape.label}: "
        first = self.ok(tool, prefix + ("first run -j 1" if tool == "conveyor" else "first run"))
        noop = self.ok(tool, prefix + "no-op run")
        loops = self.commands_alone.get(shape.label)
        if first is None or not loops:
            return None
        alone = statistics.median(loops)
        figures = {
            "first_run_seconds": first.seconds,
            "commands_alone_seconds": alone,
            "stages": shape.stage_count,
            "overhead_ms_per_stage": (first.seconds - alone) / shape.stage_count * 1000,
        }
        if noop is not None:
            figures["noop_seconds"] = noop.seconds
            less = first.seconds - alone - noop.seconds
            figures["overhead_ms_per_stage_less_noop"] = less / shape.stage_count * 1000
        return figures

    def targets(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for shape in self.shapes:
            prefix = f"{shape.label}: "
            for what, op in (("no-op run", "no-op run"), ("`status`", "status")):
                ours, theirs = self.ok("conveyor", prefix + op), self.ok("dvc", prefix + op)
                if ours is None:
                    continue
                ratio = theirs.seconds / ours.seconds if theirs is not None and ours.seconds > 0 else None
                met = ours.seconds < TARGET_NOOP_SECONDS and (ratio is None or ratio >= TARGET_SPEED_UP)
                rows.append(
                    {
                        "target": f"{what}, {shape.label}: ≥ {TARGET_SPEED_UP:g}× faster than DVC and under "
                        f"{TARGET_NOOP_SECONDS:g} s",
                        "seconds": ours.seconds,
                        "speed_up": ratio,
                        "met": met if ratio is not None else None,
                    }
                )
            figures = self.overhead(shape, "conveyor")
            if figures is not None:
                rows.append(
                    {
                        "target": f"conveyor's overhead per executed stage, {shape.label}: under "
                        f"{TARGET_OVERHEAD_MS:g} ms",
                        "overhead_ms_per_stage": figures["overhead_ms_per_stage"],
                        "met": figures["overhead_ms_per_stage"] < TARGET_OVERHEAD_MS,
                    }
                )
        return rows


def progress(message: str) -> None:
    bv.progress(message)


# ---------------------------------------------------------------------------------------------------- report


def seconds_cell(measurement: bv.Measurement | None, selected: bool) -> str:
    return bv.cell(measurement, lambda m: f"{m.seconds:.2f}", selected)


def rss_cell(measurement: bv.Measurement | None, selected: bool) -> str:
    return bv.cell(measurement, lambda m: f"{m.peak_rss_mib:.0f}", selected)


def markdown(bench: PipelineBench, meta: dict[str, Any]) -> str:
    machine = meta["machine"]
    versions = meta["versions"]
    pythons = f"{versions['python']} (this script and conveyor)"
    if versions.get("dvc_python"):
        pythons += f", {versions['dvc_python']} (DVC venv)"
    lines = [
        "## Pipeline benchmark: conveyor vs DVC",
        "",
        f"- Date: {meta['date_utc']}",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']:.1f} GiB RAM, "
        f"{machine['kernel']}, work dir on {machine['filesystem']}",
        f"- Python: {pythons}",
        f"- conveyor: {versions.get('conveyor') or 'not run'}; DVC: {versions.get('dvc') or 'not run'}",
        f"- Command: `{meta['command']}`",
        "- Pipelines (the same YAML and shell commands for both tools): "
        + "; ".join(f"**{shape.label}**: {shape.description}" for shape in bench.shapes)
        + ". Each stage writes one small file (`cat IN > OUT && echo i >> OUT`). Each tool in its own fresh git "
        "repo (both tools initialised, pipeline committed, lock committed after the first run); DVC with "
        "analytics and update check off and `SHELL=/bin/sh` (conveyor runs commands with `/bin/sh`). Both tools "
        "with Python's bytecode cache on and warmed up by one untimed run of the same commands on a 2-stage "
        "pipeline (conveyor's bytecode in the work folder, as `PYTHONPYCACHEPREFIX`).",
        f"- Wall time: first runs of conveyor, median of {meta['first_runs']} (each in a fresh repo); DVC's first "
        f"run and the run after a change, one run; no-op run and status, median of {meta['repeat']}. Peak RSS of "
        "the command's process tree, stage commands included (`ru_maxrss` from `wait4`, via the launcher of "
        "`bench_versioning.py`; repeated rows: the highest).",
        f"- Load average (1, 5, 15 min) at the start: {meta['loadavg_start']}; at the end: {meta['loadavg_end']} "
        "(the machine is shared).",
        "",
        "| pipeline | operation | conveyor (s) | DVC (s) | speed-up (DVC ÷ conveyor) "
        "| conveyor peak RSS (MiB) | DVC peak RSS (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    selected = {tool.name for tool in bench.tools}
    for shape in bench.shapes:
        for row in bench.rows.get(shape.label, []):
            ours, theirs = bench.result("conveyor", row.conveyor_op), bench.result("dvc", row.dvc_op)
            cells = [
                shape.label,
                row.label,
                seconds_cell(ours, "conveyor" in selected),
                seconds_cell(theirs, "dvc" in selected),
                bv.speed_up(ours, theirs),
                rss_cell(ours, "conveyor" in selected),
                rss_cell(theirs, "dvc" in selected),
            ]
            lines.append("| " + " | ".join(cells) + " |")

    lines += [
        "",
        "Own overhead per executed stage = (first-run wall time − the stage commands alone) ÷ stages run. "
        f"The commands alone: the median of {meta['repeat']} loops running the same commands one after the other "
        'with `subprocess.run(["/bin/sh", "-c", CMD])` from the benchmark (Python 3.11), in a scratch copy of the '
        "workspace. Conveyor: the `-j 1` first run. The last column also takes off the no-op run's time "
        "(start-up, reading the pipeline, the lock), leaving the cost that grows with each stage.",
        "",
        "| pipeline | tool | first run (s) | commands alone (s) | stages | overhead per stage (ms) "
        "| per stage, less the no-op run (ms) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for shape in bench.shapes:
        for tool in bench.tools:
            label = "conveyor `-j 1`" if tool.name == "conveyor" else "DVC"
            figures = bench.overhead(shape, tool.name)
            if figures is None:
                lines.append(f"| {shape.label} | {label} | — | — | {shape.stage_count} | — | — |")
                continue
            less = figures.get("overhead_ms_per_stage_less_noop")
            lines.append(
                f"| {shape.label} | {label} | {figures['first_run_seconds']:.2f} | "
                f"{figures['commands_alone_seconds']:.2f} | {shape.stage_count} | "
                f"{figures['overhead_ms_per_stage']:.1f} | {'—' if less is None else f'{less:.1f}'} |"
            )

    targets = bench.targets()
    if targets:
        lines += ["", "| target | result | met |", "|---|---|---|"]
        for target in targets:
            if "overhead_ms_per_stage" in target:
                result = f"{target['overhead_ms_per_stage']:.1f} ms"
            else:
                ratio = "—" if target["speed_up"] is None else f"{target['speed_up']:.1f}×"
                result = f"{target['seconds']:.2f} s, {ratio}"
            met = {True: "yes", False: "**no**", None: "—"}[target["met"]]
            lines.append(f"| {target['target']} | {result} | {met} |")
    if bench.failures:
        lines += ["", f"**{len(bench.failures)} failure(s)**: rows marked FAILED or not run have no speed-up."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------ main


def parse_shapes(text: str) -> list[str]:
    shapes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(shapes) - {"chain", "wide"})
    if unknown or not shapes:
        raise argparse.ArgumentTypeError(f"shapes are chain and wide, comma-separated: {text!r}")
    return list(dict.fromkeys(shapes))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time conveyor's pipeline engine and DVC 3.x side by side: first run, no-op run, status."
    )
    parser.add_argument(
        "--stages", type=bv.positive_int, help=f"stages per pipeline ({DEFAULT_STAGES}; {QUICK_STAGES} with --quick)"
    )
    parser.add_argument(
        "--repeat",
        type=bv.positive_int,
        help=f"runs of the no-op run, status and the commands alone; the median is reported "
        f"({DEFAULT_REPEAT}; {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--first-runs",
        type=bv.positive_int,
        default=DEFAULT_FIRST_RUNS,
        help=f"conveyor's first full runs, each in a fresh repo; the median is reported ({DEFAULT_FIRST_RUNS}). "
        "DVC's first run is timed once: it takes about a minute for 200 stages",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a fast check: {QUICK_STAGES} stages, {QUICK_REPEAT} repeats"
    )
    parser.add_argument(
        "--skip-change",
        action="store_true",
        help="do not time the run after changing the chain's first input (DVC takes about 2 minutes on 200 stages)",
    )
    parser.add_argument("--shapes", type=parse_shapes, default=["chain", "wide"], help="chain, wide or both (both)")
    parser.add_argument("--only", choices=["conveyor", "dvc", "both"], default="both", help="tools to run (both)")
    parser.add_argument(
        "--dvc-venv",
        type=Path,
        default=bv.DEFAULT_DVC_VENV,
        help=f"venv with DVC 3.x; created with {bv.DVC_REQUIREMENT} when missing (bench/.venv-dvc)",
    )
    parser.add_argument("--workdir", type=Path, default=bv.DEFAULT_WORKDIR, help="where the repos go (bench/.work)")
    parser.add_argument("--keep", action="store_true", help="keep the repos in the work folder")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    args = parser.parse_args(argv)
    args.stages = args.stages or (QUICK_STAGES if args.quick else DEFAULT_STAGES)
    args.repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    try:
        tools = list(bv.iter_tools(args.only, args.dvc_venv.absolute()))
    except bv.BenchError as error:
        progress(f"!!!!! SETUP FAILURE !!!!!\n{error}")
        return 2
    versions = {"python": platform.python_version()}
    for tool in tools:
        versions[tool.name] = tool.version
        if tool.name == "dvc":
            versions["dvc_python"] = tool.python_version
            tool.env["SHELL"] = "/bin/sh"  # DVC runs commands with $SHELL; conveyor with /bin/sh
    progress("[setup] " + ", ".join(f"{name} {version}" for name, version in versions.items()))

    shapes = [Shape(kind, args.stages) for kind in args.shapes]
    with bv.RunDir(args.workdir.resolve() / f"pipeline-{stamp}", args.keep) as run_dir:
        meta: dict[str, Any] = {
            "date_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": shlex.join(sys.orig_argv),
            "machine": bv.machine_info(run_dir),
            "versions": versions,
            "stages": args.stages,
            "repeat": args.repeat,
            "first_runs": args.first_runs,
            "loadavg_start": loadavg(),
            "default_jobs": CPUS,
            "shapes": {shape.label: shape.description for shape in shapes},
            "tools": [tool.name for tool in tools],
        }
        for tool in tools:
            tool.use_workdir(run_dir)
            use_bytecode_cache(tool, run_dir)
        bench = PipelineBench(
            tools,
            run_dir,
            seed=0,
            keep=args.keep,
            repeat=args.repeat,
            shapes=shapes,
            first_runs=args.first_runs,
            change=not args.skip_change,
        )
        bench.run_all()

        meta["loadavg_end"] = loadavg()

    report = markdown(bench, meta)
    print(report, end="")
    if args.markdown:
        args.markdown.write_text(report)
    record = {
        **meta,
        "ok": not bench.failures,
        "failures": bench.failures,
        "commands_alone_seconds": bench.commands_alone,
        "overhead": {shape.label: {tool.name: bench.overhead(shape, tool.name) for tool in tools} for shape in shapes},
        "targets": bench.targets(),
        "pipeline_yaml_head": {shape.label: shape.yaml().splitlines()[:11] for shape in shapes},
        "measurements": [m.to_json() for m in bench.measurements],
    }
    bv.RESULTS_DIR.mkdir(exist_ok=True)
    results_file = bv.RESULTS_DIR / f"pipeline-{stamp}.json"
    results_file.write_text(json.dumps(record, indent=2) + "\n")
    progress(f"[setup] raw numbers in {results_file}")
    if bench.failures:
        progress(f"!!!!! {len(bench.failures)} FAILURE(S): see above; no ratio printed for them !!!!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
