"""Conveyor, end to end: version a real data set next to git, build a model from it with a pipeline, share both.

Run with ``make demo`` (or ``.venv/bin/python demo/demo.py [--keep]``). The demo builds a
throw-away git project in a temp folder, drives the real ``conveyor`` command line and real
git as subprocesses, and prints every command with its output. It also checks every outcome,
so it doubles as an end-to-end test: any surprise stops it with ``DEMO FAILED: ...`` and a
non-zero exit code (the project is then kept for inspection).

Act one versions scikit-learn's wine data: add, status, diff, gc, checkout, links, safety.
Act two runs a real ML pipeline on it (prepare, split, train, evaluate, baselines; the stage
scripts are in demo/pipeline/): the DAG, incremental runs, params, metrics and plots diffs,
the run cache, ``run --verify``, a failing stage, and the record of runs.
Act three adds a remote (a folder next to the project) and 1,797 tiny images (scikit-learn's
digits): ``status --remote``, ``push --run-cache`` (small objects travel as packs), ``gc
--remote --dry-run``, a deleted cache brought back by ``pull``, and a fresh clone whose
``run --pull`` restores the pipeline from the run cache.
Act four guards the pipeline with checks: an inferred data schema, check stages for data
integrity, the train/test split and the model, and a champion/challenger gate that stops a
worse model; ``conveyor check`` finds rows leaked from train into test.
Act five registers the model with its lineage and checks, promotes it to production through
the policy in conveyor.yaml, refuses a model that failed its gate, ships a new one, rolls back,
and reads the history.
Act six serves production over HTTP under steady client load, delivers a better model through
a canary to production without a failed request, stops a worse one at the gate, and lets
monitoring find drifted live traffic and start a retraining delivery.
Act seven runs the pipeline on a Dask cluster; act eight writes the CI workflow and a pull
request's report. Act nine shows the bundle deliver built of production: rebuilt byte for byte,
traced back to its run, and served from its unpacked archive with no workspace. Act ten reads
the dashboard back over HTTP.

Only the standard library, numpy, PyYAML, scikit-learn, matplotlib and httpx, plus conveyor's
checks and serve extras (pandas, SciPy, Starlette, uvicorn), all in the ``demo`` extra, are used.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.datasets import load_digits, load_wine

CONVEYOR = Path(sys.executable).parent / "conveyor"
WINE = "data/wine.csv"
SPLITS = "data/splits"
SPLIT_PREFIX = SPLITS + "/"
STAGE_SCRIPTS = Path(__file__).resolve().parent / "pipeline"  # copied to src/ in the demo project

Sample = tuple[str, ...]  # one CSV row: 13 measurements and the cultivar, as text
State = dict[str, bytes]  # every tracked file (relative path) and its exact content

_UTF8 = "utf" in (sys.stdout.encoding or "").lower()
CHECK = "✓" if _UTF8 else "ok"
_COLOR = sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _style(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if _COLOR else text


class DemoFailure(Exception):
    """An expectation about conveyor's behaviour did not hold."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)


@dataclass(frozen=True)
class Run:
    argv: list[str]
    code: int
    out: str
    err: str


# --------------------------------------------------------------------------------------------
# The data: scikit-learn's wine data set, written as CSV with numpy and the csv module.
# --------------------------------------------------------------------------------------------


def wine_samples() -> tuple[list[str], list[Sample]]:
    """The header and the 178 samples of the wine data set, in a fixed (seeded) delivery order."""
    wine = load_wine()
    header = [*wine.feature_names, "cultivar"]
    order = np.random.default_rng(2024).permutation(len(wine.target))
    samples = [(*(f"{value:.6g}" for value in wine.data[i]), str(int(wine.target[i]))) for i in order]
    return header, samples


def to_csv(header: list[str], samples: Sequence[Sample]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(samples)
    return buffer.getvalue().encode("utf-8")


def split(samples: Sequence[Sample], fractions: dict[str, float], seed: int) -> dict[str, list[Sample]]:
    """A seeded random split; the first named part gets whatever the others leave."""
    order = np.random.default_rng(seed).permutation(len(samples))
    names = list(fractions)
    sizes = {name: round(len(samples) * fractions[name]) for name in names[1:]}
    sizes[names[0]] = len(samples) - sum(sizes.values())
    parts: dict[str, list[Sample]] = {}
    start = 0
    for name in names:
        parts[name] = [samples[i] for i in order[start : start + sizes[name]]]
        start += sizes[name]
    return parts


def make_state(header: list[str], samples: Sequence[Sample], fractions: dict[str, float]) -> State:
    state = {WINE: to_csv(header, samples)}
    for name, part in split(samples, fractions, seed=7).items():
        state[f"{SPLIT_PREFIX}{name}.csv"] = to_csv(header, part)
    return state


def rows(data: bytes) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8")))) - 1


def rows_of(data: bytes) -> list[Sample]:
    return [tuple(r) for r in csv.reader(io.StringIO(data.decode("utf-8")))][1:]


def cache_objects(state: State) -> set[tuple[str, Any]]:
    """What a content-addressed cache holds for ``state``: one object per distinct file content,
    plus one manifest for the folder (named by its files and their contents)."""
    objects: set[tuple[str, Any]] = {("file", data) for data in state.values()}
    objects.add(("dir", frozenset((p, d) for p, d in state.items() if p.startswith(SPLIT_PREFIX))))
    return objects


def expected_changes(old: State, new: State) -> list[tuple[str, str]]:
    changes = []
    for path in sorted(old.keys() | new.keys()):
        if path not in old:
            changes.append(("added", path))
        elif path not in new:
            changes.append(("deleted", path))
        elif old[path] != new[path]:
            changes.append(("modified", path))
    return changes


# --------------------------------------------------------------------------------------------
# The narrated session.
# --------------------------------------------------------------------------------------------


class Session:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = root / "wine-project"
        self.project.mkdir()
        self.commands = 0
        self.section = 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "GIT_"))}
        # A predictable git: no system or user config (signing, hooks, templates) gets in the way.
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
        # As if the virtualenv were activated: the pipeline's `python ...` commands find scikit-learn.
        env["PATH"] = os.pathsep.join([str(CONVEYOR.parent), env.get("PATH", os.defpath)])
        self.env = env

    # ---- printing ------------------------------------------------------------------------

    def heading(self, title: str, text: str) -> None:
        self.section += 1
        line = f"== {self.section}. {title} "
        print()
        print(_style(line + "=" * max(4, 92 - len(line)), "1"))
        if text.strip():
            for paragraph in textwrap.dedent(text).strip().split("\n\n"):
                print(textwrap.fill(" ".join(paragraph.split()), width=92, initial_indent="  ", subsequent_indent="  "))
            print()

    @staticmethod
    def say(text: str) -> None:
        print(textwrap.fill(" ".join(text.split()), width=92, initial_indent="  ", subsequent_indent="  "))

    @staticmethod
    def ok(text: str) -> None:
        print(_style(f"    {CHECK} {text}", "32"))

    @staticmethod
    def show(text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            print(f"    {line}")

    # ---- running commands ----------------------------------------------------------------

    def _run(self, argv: list[str], shown: list[str], expect_code: int, echo: bool, cwd: Path | None = None) -> Run:
        """Run a command in the project (or in ``cwd``, whose name then prefixes the prompt)."""
        self.commands += 1
        where = cwd or self.project
        prompt = "  $ " if where == self.project else f"  {where.name}$ "
        print(_style(prompt + shell_join(shown), "1;36"))
        try:
            proc = subprocess.run(
                argv, cwd=where, env=self.env, capture_output=True, text=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoFailure(f"'{shlex.join(shown)}' did not finish within 120 s") from exc
        run = Run(shown, proc.returncode, proc.stdout, proc.stderr)
        if echo:
            self.show(run.out)
            self.show(run.err)
            if run.code != 0:
                print(f"    [exit code {run.code}]")
        if "Traceback (most recent call last)" in run.err:
            raise DemoFailure(f"'{shlex.join(shown)}' crashed:\n{run.err}\n{self.reproduce(shown, where)}")
        if run.code != expect_code:
            raise DemoFailure(
                f"'{shlex.join(shown)}' exited with {run.code}, expected {expect_code}\n"
                f"stdout:\n{run.out}\nstderr:\n{run.err}\n{self.reproduce(shown, where)}"
            )
        return run

    def reproduce(self, shown: list[str], where: Path) -> str:
        return f"reproduce: cd {shlex.quote(str(where))} && {shlex.join(shown)}"

    def conveyor(self, *args: str, code: int = 0, echo: bool = True, cwd: Path | None = None) -> Run:
        return self._run([str(CONVEYOR), *args], ["conveyor", *args], code, echo, cwd)

    def git(self, *args: str, code: int = 0, echo: bool = True) -> Run:
        return self._run(["git", *args], ["git", *args], code, echo)

    def tool(self, *args: str, code: int = 0) -> Run:
        """Any other command, e.g. tail."""
        return self._run(list(args), list(args), code, True)

    # ---- the workspace -------------------------------------------------------------------

    def write(self, state: State) -> None:
        """Put ``state`` on disk the way a script would: whole new files, stale splits removed."""
        splits = self.project / SPLITS
        splits.mkdir(parents=True, exist_ok=True)
        for old in splits.iterdir():
            if f"{SPLIT_PREFIX}{old.name}" not in state:
                old.unlink()
        for rel, data in state.items():
            (self.project / rel).write_bytes(data)

    def on_disk(self) -> State:
        """The tracked files as they are now, listed as the data is laid out (train, val, test)."""
        state = {WINE: (self.project / WINE).read_bytes()}
        order = {"train.csv": 0, "val.csv": 1, "test.csv": 2}
        for path in sorted((self.project / SPLITS).iterdir(), key=lambda p: (order.get(p.name, 3), p.name)):
            state[f"{SPLIT_PREFIX}{path.name}"] = path.read_bytes()
        return state

    def expect_on_disk(self, state: State, version: str) -> None:
        actual = self.on_disk()
        expect(sorted(actual) == sorted(state), f"{version}: expected files {sorted(state)}, found {sorted(actual)}")
        for rel, data in state.items():
            expect(actual[rel] == data, f"{version}: {rel} is not byte-identical to what was added")

    def row_table(self, state: State) -> None:
        print("    rows  file")
        for rel, data in state.items():
            print(f"    {rows(data):>4}  {rel}")

    def status_json(self) -> dict[str, Any]:
        run = self.conveyor("status", "--json", echo=False)
        try:
            report: dict[str, Any] = json.loads(run.out)
        except json.JSONDecodeError as exc:
            raise DemoFailure(f"'conveyor status --json' printed invalid JSON: {exc}\n{run.out}") from exc
        print(f"    {json.dumps(report)}")
        print("    (conveyor's JSON output, re-printed on one line; the demo checks it below)")
        return report

    def expect_clean(self) -> None:
        self.conveyor("status", "--quiet")  # prints nothing, exits 1 if anything changed
        self.ok("conveyor status --quiet: data and pointers are in sync")

    def pointer(self, rel: str) -> dict[str, str]:
        fields = {}
        for line in (self.project / f"{rel}.cvy").read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition(": ")
                fields[key] = value
        return fields


def shell_join(argv: Sequence[str]) -> str:
    """Like shlex.join, but leaves harmless words such as HEAD~1 unquoted, as a person types them."""
    return " ".join(
        arg if re.fullmatch(r"[\w@%+=:,./~-]+", arg) and not arg.startswith("~") else shlex.quote(arg) for arg in argv
    )


def parse_checkout(run: Run) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+) placed, (\d+) removed, (\d+) unchanged\n", run.out)
    expect(match is not None, f"unexpected 'conveyor checkout' output: {run.out!r}")
    assert match is not None
    placed, removed, unchanged = (int(g) for g in match.groups())
    return placed, removed, unchanged


def parse_diff(run: Run) -> list[tuple[str, str]]:
    changes = []
    for line in run.out.splitlines():
        change, _, path = line.partition(" ")
        changes.append((change, path.strip()))
    return changes


def expect_diff(run: Run, old: State, new: State) -> None:
    got, want = parse_diff(run), expected_changes(old, new)
    expect(got == want, f"'{shell_join(run.argv)}' listed {got}, expected {want}")


def expect_checkout(run: Run, before: State, after: State) -> None:
    placed = sum(1 for rel, data in after.items() if before.get(rel) != data)
    removed = sum(1 for rel in before if rel not in after)
    expected = (placed, removed, len(after) - placed)
    got = parse_checkout(run)
    expect(got == expected, f"'{shell_join(run.argv)}': (placed, removed, unchanged) = {got}, expected {expected}")


def one_line_error(run: Run, *needles: str) -> str:
    lines = run.err.splitlines()
    expect(len(lines) == 1 and lines[0].startswith("error: "), f"expected one 'error: ...' line, got {run.err!r}")
    for needle in needles:
        expect(needle in lines[0], f"expected the error to mention {needle!r}: {lines[0]}")
    return lines[0]


# --------------------------------------------------------------------------------------------
# The story, section by section.
# --------------------------------------------------------------------------------------------


@dataclass
class Story:
    s: Session
    header: list[str]
    samples: list[Sample]
    v1: State
    attempt: State
    v2: State


def setup(s: Session) -> None:
    s.heading(
        "A fresh project",
        """
        Conveyor versions data next to git: git keeps small pointer files, conveyor keeps the
        data itself in a content-addressed cache. We start a throw-away git project for a
        wine-quality model and make it a conveyor workspace.
        """,
    )
    s.conveyor("--version")
    s.git("init", "-q", "-b", "main")
    s.git("config", "user.name", "Conveyor Demo")
    s.git("config", "user.email", "demo@conveyor.invalid")
    s.conveyor("init")
    expect((s.project / ".conveyor" / "config").is_file(), "conveyor init did not create .conveyor/config")
    s.git("add", ".conveyor")
    s.git("commit", "-q", "-m", "conveyor init")
    committed = s.git("ls-files").out.split()
    expect(".conveyor/config" in committed, f".conveyor/config is not committed: {committed}")
    expect(not any("/cache" in p for p in committed), f"the cache must never reach git: {committed}")
    s.ok("the workspace config is in git; the cache, state and lock files are git-ignored")


def data_v1(t: Story) -> None:
    s = t.s
    s.heading(
        "Version 1 of the data",
        f"""
        The wine data set ships with scikit-learn: {len(t.samples)} wines from three cultivars,
        13 chemical measurements each. Say the lab delivers it in two batches. The first
        {rows(t.v1[WINE])} samples arrive now: we write them to {WINE} and a seeded 80/20 split to
        {SPLITS}/ (train.csv, test.csv), then let conveyor track the file and the folder.
        """,
    )
    s.write(t.v1)
    s.row_table(t.v1)
    run = s.conveyor("add", WINE, SPLITS)
    expect(f"added {WINE}" in run.out and f"added {SPLITS}" in run.out, "conveyor add did not report both paths")
    print()
    s.say(f"git gets this pointer instead of the {len(t.v1[WINE]):,} bytes of {WINE}:")
    s.show((s.project / f"{WINE}.cvy").read_text(encoding="utf-8"))
    wine_ptr, splits_ptr = s.pointer(WINE), s.pointer(SPLITS)
    expect(wine_ptr.get("kind") == "file" and wine_ptr.get("size") == str(len(t.v1[WINE])), f"{wine_ptr}")
    split_bytes = sum(len(d) for p, d in t.v1.items() if p.startswith(SPLIT_PREFIX))
    expect(splits_ptr.get("kind") == "dir" and splits_ptr.get("files") == "2", f"{SPLITS}.cvy: {splits_ptr}")
    expect(splits_ptr.get("size") == str(split_bytes), f"{SPLITS}.cvy size: {splits_ptr}")
    s.ok("pointers record kind, content hash, size and file count")
    print()
    run = s.git("status", "--short", "--untracked-files=all")
    untracked = sorted(line[3:] for line in run.out.splitlines())
    expected = ["data/.gitignore", f"{SPLITS}.cvy", f"{WINE}.cvy"]
    expect(untracked == expected, f"git should see only {expected}, sees {untracked}")
    s.ok("git sees the pointers and a .gitignore, never the CSV files")
    s.git("add", "data/.gitignore", f"{WINE}.cvy", f"{SPLITS}.cvy")
    s.git("commit", "-q", "-m", "data v1")


def data_v2(t: Story) -> None:
    s = t.s
    s.heading(
        "The data changes: version 2",
        f"""
        The second batch arrives: {len(t.samples) - rows(t.v1[WINE])} more samples, appended to
        {WINE}. With more data we re-split 70/15/15 and add a validation split (val.csv) for
        model selection. Conveyor shows exactly what changed, down to the files inside the
        folder, before anything is recorded.
        """,
    )
    s.write(t.attempt)
    s.row_table(t.attempt)
    s.conveyor("status")
    report = s.status_json()
    expect(report.get("tracked") == 2, f"status --json: expected 2 tracked paths: {report}")
    changed = {entry["path"]: entry for entry in report.get("changed", [])}
    expect(sorted(changed) == [SPLITS, WINE], f"status --json: expected both paths changed: {report}")
    folder = changed[SPLITS]
    expect(folder["state"] == "modified" and folder["added"] == ["val.csv"], f"status --json: {folder}")
    expect(sorted(folder["modified"]) == ["test.csv", "train.csv"] and folder["deleted"] == [], f"{folder}")
    expect(changed[WINE]["state"] == "modified", f"status --json: {changed[WINE]}")
    s.ok("status --json parsed: wine.csv modified; splits: val.csv new, train.csv and test.csv modified")
    print()
    run = s.conveyor("diff")
    expect_diff(run, t.v1, t.attempt)
    s.ok("diff (HEAD vs workspace) lists each changed data file")
    s.conveyor("add", WINE, SPLITS)
    print()
    duplicated = len(rows_of(t.attempt[WINE])) - len(set(rows_of(t.attempt[WINE])))
    s.say(
        f"""Before committing, a quick quality check (the kind a notebook or a CI step runs) finds
        {duplicated} duplicated sample: the lab's export repeated a row. We drop it, re-split, and
        record the fixed data. Re-adding a tracked path simply records its new content."""
    )
    print()
    expect(duplicated == 1, f"the simulated export glitch should duplicate exactly one row, found {duplicated}")
    s.write(t.v2)
    s.row_table(t.v2)
    s.conveyor("add", WINE, SPLITS)
    s.conveyor("status")
    s.expect_clean()
    print()
    s.say("git sees only the pointer files change, with a review-friendly diff:")
    run = s.git("status", "--short")
    expect(sorted(run.out.split()) == sorted(["M", "M", f"{SPLITS}.cvy", f"{WINE}.cvy"]), f"git status: {run.out}")
    s.git("diff", f"{WINE}.cvy")
    s.git("commit", "-q", "-a", "-m", "data v2")


def compare(t: Story) -> None:
    s = t.s
    s.heading(
        "What changed between two commits",
        """
        Each commit pins an exact version of the data. conveyor diff compares any two revisions,
        file by file inside tracked folders, without checking anything out.
        """,
    )
    log = s.git("log", "--oneline")
    expect([line.split(" ", 1)[1] for line in log.out.splitlines()] == ["data v2", "data v1", "conveyor init"], log.out)
    run = s.conveyor("diff", "HEAD~1", "HEAD")
    expect_diff(run, t.v1, t.v2)
    s.ok("v1 -> v2: wine.csv, train.csv and test.csv modified, val.csv added")


def housekeeping(t: Story) -> None:
    s = t.s
    every = cache_objects(t.v1) | cache_objects(t.attempt) | cache_objects(t.v2)
    history = cache_objects(t.v1) | cache_objects(t.v2)
    s.heading(
        "Cleaning the cache without losing history",
        f"""
        The cache now holds {len(every)} objects: version 1, version 2, and the abandoned first
        attempt at version 2 (with the duplicate) that no commit refers to. Plain gc keeps only
        what the current workspace needs, which would also drop version 1; with --all-commits it
        keeps everything any commit refers to. A dry run shows the difference first; verify then
        re-hashes every object and tracked file, ignoring any cached knowledge.
        """,
    )
    run = s.conveyor("gc", "--dry-run")
    drop = len(every) - len(cache_objects(t.v2))
    expect(
        run.out.startswith(f"would remove {drop} objects") and run.out.endswith(f"kept {len(every) - drop}\n"),
        f"gc --dry-run: expected to remove {drop} of {len(every)} objects: {run.out!r}",
    )
    s.ok(f"workspace-only gc would remove {drop} objects, version 1's data among them")
    run = s.conveyor("gc", "--all-commits")
    drop = len(every) - len(history)
    expect(
        run.out.startswith(f"removed {drop} objects") and run.out.endswith(f"kept {len(history)}\n"),
        f"gc --all-commits: expected to remove {drop} of {len(every)} objects: {run.out!r}",
    )
    s.ok(f"gc --all-commits removed only the {drop} objects of the abandoned attempt")
    run = s.conveyor("verify")
    expect(run.out == f"checked {len(history)} cache objects and {len(t.v2)} workspace files\n", f"verify: {run.out!r}")
    s.ok("every remaining object and tracked file hashes to its name")


def time_travel(t: Story) -> None:
    s = t.s
    s.heading(
        "Time travel",
        """
        To reproduce an old result, check out its commit: git restores the pointers, conveyor
        checkout restores the data they name, from the local cache, in a moment. First, git alone:
        the pointers say version 1 while the files are still version 2, and status says so.
        """,
    )
    s.git("checkout", "-q", "HEAD~1")
    s.conveyor("status")
    run = s.conveyor("checkout")
    expect_checkout(run, t.v2, t.v1)
    s.expect_on_disk(t.v1, "after checking out v1")
    s.row_table(s.on_disk())
    s.ok("version 1 is back, byte for byte (even after gc): val.csv is gone, row counts match")
    s.expect_clean()
    expect(s.git("status", "--porcelain").out == "", "git status should be clean at v1")
    s.ok("git status --porcelain prints nothing: the checked-out data matches the commit exactly")
    print()
    s.say("And back to the present:")
    s.git("checkout", "-q", "main")
    run = s.conveyor("checkout")
    expect_checkout(run, t.v1, t.v2)
    s.expect_on_disk(t.v2, "after returning to main")
    s.ok("version 2 restored")
    s.expect_clean()


def links(t: Story) -> None:
    s = t.s
    s.heading(
        "Big data: links instead of copies",
        """
        By default checkout gives each file its own copy (or a reflink where the filesystem can
        share blocks). For big data sets cache.link can use hardlinks: no second copy on disk.
        Linked files are made read-only so an edit cannot corrupt the cache; conveyor unprotect
        turns a file back into an editable copy. --local keeps the setting on this machine only.
        """,
    )
    s.conveyor("config", "cache.link")
    s.conveyor("config", "--local", "cache.link", "hardlink,copy")
    run = s.conveyor("checkout", "--relink")
    expect(parse_checkout(run)[0] == len(t.v2), f"checkout --relink should re-place every file: {run.out!r}")
    modes = {rel: os.stat(s.project / rel) for rel in t.v2}
    for rel, st in modes.items():
        print(f"    {stat.filemode(st.st_mode)}  {st.st_nlink} links  {rel}")
    if all(st.st_nlink == 1 for st in modes.values()):
        s.say("(this filesystem refused hardlinks, so conveyor fell back to copies, as configured)")
    else:
        for rel, st in modes.items():
            expect(st.st_nlink > 1 and not st.st_mode & 0o222, f"{rel} should be a read-only hardlink: {st}")
        s.ok("each file is one inode shared with the cache, and read-only")
    s.conveyor("unprotect", WINE)
    st = os.stat(s.project / WINE)
    expect(st.st_nlink == 1 and bool(st.st_mode & stat.S_IWUSR), f"{WINE} should be a writable copy: {st}")
    s.ok(f"{WINE} is now a writable copy of its own; content unchanged")
    s.expect_clean()
    s.conveyor("config", "--local", "--unset", "cache.link")
    s.conveyor("checkout", "--relink")
    s.expect_on_disk(t.v2, "after going back to copies")


def safety(t: Story) -> None:
    s = t.s
    s.heading(
        "Safety: conveyor will not throw your work away",
        f"""
        Someone fixes a value in {WINE} by hand and forgets to add it. That edit exists nowhere
        but in the workspace, so checkout refuses to overwrite it and says how to proceed.
        Errors are one line on stderr with a non-zero exit code, easy to read and to script.
        """,
    )
    table = rows_of(t.v2[WINE])
    table[0] = (f"{float(table[0][0]) + 0.1:.6g}", *table[0][1:])  # a "corrected" alcohol value
    edited = to_csv(t.header, table)
    (s.project / WINE).write_bytes(edited)
    s.conveyor("status")
    run = s.conveyor("checkout", code=1)
    one_line_error(run, WINE, "--force")
    expect((s.project / WINE).read_bytes() == edited, "a refused checkout must leave the edit untouched")
    s.ok("checkout refused (exit 1) and left the hand edit in place")
    print()
    s.say("We decide the edit was a mistake and discard it explicitly:")
    run = s.conveyor("checkout", "--force")
    expect_checkout(run, {**t.v2, WINE: edited}, t.v2)
    s.expect_on_disk(t.v2, "after checkout --force")
    s.expect_clean()
    print()
    s.say("Data must live inside the project to be versioned with it:")
    (s.root / "outside.csv").write_bytes(t.v1[WINE])
    run = s.conveyor("add", "../outside.csv", code=2)
    one_line_error(run, "../outside.csv", "outside the workspace")
    expect(not (s.root / "outside.csv.cvy").exists(), "a refused add must not write a pointer")
    s.ok("add refused (exit 2): nothing written")


# --------------------------------------------------------------------------------------------
# Act two: a pipeline that turns the versioned data into a model.
# --------------------------------------------------------------------------------------------

PARAMS_YAML = """\
split:
  test_size: 0.3
  seed: 7
train:
  n_estimators: 100
  max_depth: 4
  seed: 42
"""

PIPELINE_YAML = """\
stages:
  prepare:
    cmd: python src/prepare.py data/wine.csv data/prepared.csv
    deps: [src/prepare.py, data/wine.csv]
    outs: [data/prepared.csv]
  split:
    cmd: python src/split.py data/prepared.csv data/train_test
    deps: [src/split.py, data/prepared.csv]
    params: [split.test_size, split.seed]
    outs: [data/train_test]
  train:
    call: src.train:train            # a Python function, called in a child process
    kwargs:                          # with these arguments, typed values from params.yaml
      n_estimators: ${train.n_estimators}
      max_depth: ${train.max_depth}
      seed: ${train.seed}
    deps: [data/train_test]          # src/train.py is a dependency without being listed
    params: [train.n_estimators, train.max_depth, train.seed]
    outs: [models/model.pkl]
  evaluate:
    cmd: python src/evaluate.py
    deps: [src/evaluate.py, models/model.pkl, data/train_test]
    metrics: [metrics/forest.json]
    plots:
      - plots/per_class.csv:
          x: cultivar
          y: [precision, recall]
          title: Precision and recall per cultivar
  baseline:                          # one stage per item: baseline@majority, baseline@logistic
    foreach: [majority, logistic]
    do:
      cmd: python src/baseline.py ${item}
      deps: [src/baseline.py, data/train_test]
      metrics:
        - metrics/${item}.json
"""

STAGES = ["prepare", "split", "train", "evaluate", "baseline@majority", "baseline@logistic"]
EDGES = {
    ("prepare", "split"),
    ("split", "train"),
    ("split", "evaluate"),
    ("train", "evaluate"),
    ("split", "baseline@majority"),
    ("split", "baseline@logistic"),
}
METRICS_FILES = ["metrics/forest.json", "metrics/majority.json", "metrics/logistic.json"]
MODEL = "models/model.pkl"
Metrics = dict[str, dict[str, float]]  # metrics file -> metric -> value


def stages_with(run: Run, status: str) -> list[str]:
    """The stages a run reports with ``status``, from lines such as '✔ ran: train (1.2 s) — ...'."""
    return re.findall(rf"^\S+ {re.escape(status)}: (\S+)", run.out + run.err, flags=re.MULTILINE)


def expect_stages(run: Run, status: str, expected: Sequence[str]) -> None:
    got = stages_with(run, status)
    expect(sorted(got) == sorted(expected), f"'{shell_join(run.argv)}': {status} {sorted(got)}, expected {expected}")


def run_id(run: Run) -> str:
    match = re.search(r"; run (\S+)\. Commit conveyor\.lock", run.out)
    expect(match is not None, f"'{shell_join(run.argv)}' did not name its run: {run.out!r}")
    assert match is not None
    return match.group(1)


def table_rows(run: Run, columns: int) -> list[list[str]]:
    """The rows of a table of single-word cells (the header row is dropped)."""
    rows = [line.split() for line in run.out.splitlines()[1:]]
    expect(all(len(row) == columns for row in rows), f"'{shell_join(run.argv)}': unexpected table {run.out!r}")
    return rows


def close(shown: str, value: float, digits: int = 5) -> bool:
    """``shown`` is ``value`` rounded to ``digits`` significant digits (conveyor shows 5; 3 for %)."""
    return abs(float(shown) - value) <= 10.0 ** (1 - digits) * max(abs(value), 1e-9)


@dataclass
class Lab:
    """What act two remembers between sections."""

    runs: dict[str, str]  # what the run did -> its run id
    model: bytes = b""  # the 100-tree model of the first run
    metrics: Metrics | None = None  # its metrics


def read_metrics(s: Session) -> Metrics:
    return {rel: json.loads((s.project / rel).read_text(encoding="utf-8")) for rel in METRICS_FILES}


def set_trees(s: Session, old: str, new: str) -> None:
    params = s.project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    expect(f"n_estimators: {old}\n" in text, f"params.yaml should say n_estimators: {old}")
    params.write_text(text.replace(f"n_estimators: {old}\n", f"n_estimators: {new}\n"), encoding="utf-8")


def pipeline_setup(t: Story) -> None:
    s = t.s
    s.heading(
        "Act two: a pipeline from the data to a model",
        f"""
        Versioned data is where a model starts. conveyor.yaml declares how to build one from
        {WINE}, the file tracked above, in stages that read and write files. prepare cleans it
        and adds features; split makes a seeded, stratified train/test split into the folder
        data/train_test/; train is a call: stage, conveyor calls the Python function
        src/train.py:train with keyword arguments taken from params.yaml; evaluate writes
        metrics and a per-cultivar plot; baseline is a foreach stage, one copy per simple model
        the forest has to beat. The stage scripts are plain Python (demo/pipeline/, copied to src/).
        """,
    )
    (s.project / "src").mkdir()
    for script in sorted(STAGE_SCRIPTS.glob("*.py")):
        shutil.copy(script, s.project / "src" / script.name)
    (s.project / "params.yaml").write_text(PARAMS_YAML, encoding="utf-8")
    (s.project / "conveyor.yaml").write_text(PIPELINE_YAML, encoding="utf-8")
    (s.project / ".gitignore").write_text("__pycache__/\nconveyor_plots/\n", encoding="utf-8")
    s.say("params.yaml:")
    s.show(PARAMS_YAML)
    s.say("conveyor.yaml:")
    s.show(PIPELINE_YAML)
    print()
    run = s.conveyor("dag")
    expect(all(f"│ {name} │" in run.out for name in STAGES), f"dag should draw every stage: {run.out}")
    run = s.conveyor("dag", "--mermaid")
    ids = dict(re.findall(r'^\s+(\w+)\["([^"]+)"\]$', run.out, flags=re.MULTILINE))
    edges = {(ids[a], ids[b]) for a, b in re.findall(r"^\s+(\w+) --> (\w+)$", run.out, flags=re.MULTILINE)}
    expect(sorted(ids.values()) == sorted(STAGES), f"dag --mermaid: stages {sorted(ids.values())}")
    expect(edges == EDGES, f"dag --mermaid: edges {sorted(edges)}, expected {sorted(EDGES)}")
    s.ok("the graph follows the files: each stage depends on the stages that write what it reads")


def pipeline_first_run(t: Story, lab: Lab) -> None:
    s = t.s
    s.heading(
        "The first run",
        """
        conveyor run runs every stage in dependency order, independent ones in parallel, and
        records in conveyor.lock the hash of everything each stage read and wrote. Outputs go
        to the cache and are git-ignored, like data added by hand; metrics and plots are small,
        so git keeps them.
        """,
    )
    run = s.conveyor("run")
    expect_stages(run, "ran", STAGES)
    lab.runs["first"] = run_id(run)
    s.ok(f"all {len(STAGES)} stages ran (run {lab.runs['first']})")
    lab.model = (s.project / MODEL).read_bytes()
    lab.metrics = read_metrics(s)
    run = s.conveyor("metrics", "show")
    shown = {(path, key): value for path, key, value in table_rows(run, 3)}
    wanted = {(path, key): value for path, values in lab.metrics.items() for key, value in values.items()}
    expect(shown.keys() == wanted.keys(), f"metrics show: {sorted(shown)}, expected {sorted(wanted)}")
    expect(all(close(shown[k], v) for k, v in wanted.items()), f"metrics show: {shown}, files say {wanted}")
    forest, majority = lab.metrics["metrics/forest.json"], lab.metrics["metrics/majority.json"]
    expect(forest["accuracy"] > majority["accuracy"], f"the forest should beat guessing: {lab.metrics}")
    s.ok(f"metrics show matches the files: the forest scores {forest['accuracy']:.1%} accuracy on unseen wines")
    print()
    run = s.git("status", "--short", "--untracked-files=all")
    seen = sorted(line[3:] for line in run.out.splitlines())
    expected = sorted(
        [".gitignore", "conveyor.lock", "conveyor.yaml", "params.yaml", "data/.gitignore", "models/.gitignore"]
        + [*METRICS_FILES, "plots/per_class.csv"]
        + [f"src/{p.name}" for p in STAGE_SCRIPTS.glob("*.py")]
    )
    expect(seen == expected, f"git should see {expected}, sees {seen}")
    s.ok("git sees code, config, lock, metrics and plot; not the prepared data, the split or the model")
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "pipeline: random forest, 100 trees")
    print()
    s.say("Nothing changed, so nothing runs:")
    run = s.conveyor("run")
    expect(run.out == f"Everything is up to date ({len(STAGES)} stages).\n", f"no-op run: {run.out!r}")
    s.conveyor("status")
    s.expect_clean()


def pipeline_experiment(t: Story, lab: Lab) -> None:
    s = t.s
    assert lab.metrics is not None
    s.heading(
        "An experiment: a smaller forest",
        """
        Would 3 trees do as well as 100? We change one number in params.yaml. status says which
        stages that makes stale and why; --dry-run says what a run would do. Only train reads
        the param, and evaluate reads the model, so only those two run: the data preparation,
        the split and the baselines are reused as they are.
        """,
    )
    set_trees(s, "100", "3")
    s.git("diff", "params.yaml")
    run = s.conveyor("status")
    stale = re.findall(r"^stale: (\S+)", run.out, flags=re.MULTILINE)
    expect(sorted(stale) == ["evaluate", "train"], f"status: stale {stale}, expected train and evaluate")
    expect("param train.n_estimators changed: 100 -> 3" in run.out, f"status should name the param: {run.out}")
    s.ok("status: train is stale because train.n_estimators changed 100 -> 3; evaluate because train will run")
    run = s.conveyor("run", "--dry-run")
    expect_stages(run, "would run", ["train", "evaluate"])
    expect((s.project / MODEL).read_bytes() == lab.model, "a dry run must not touch the model")
    run = s.conveyor("run")
    expect_stages(run, "ran", ["train", "evaluate"])
    lab.runs["experiment"] = run_id(run)
    s.ok("only train and evaluate ran; prepare, split and the baselines were not re-run")
    print()
    s.say("What did it do? metrics diff compares the committed metrics with the new ones:")
    new = read_metrics(s)
    run = s.conveyor("metrics", "diff")
    rows = table_rows(run, 6)
    changed = {(p, k) for p, values in new.items() for k, v in values.items() if v != lab.metrics[p][k]}
    expect({(row[0], row[1]) for row in rows} == changed, f"metrics diff: {rows}, expected {sorted(changed)}")
    for path, key, old, now, change, pct in rows:
        before, after = lab.metrics[path][key], new[path][key]
        expect(close(old, before) and close(now, after), f"metrics diff: {path} {key}: {old} -> {now}")
        expect(close(change, after - before), f"metrics diff: {path} {key}: change {change}")
        expect(pct.endswith("%") and close(pct[:-1], 100 * (after - before) / abs(before), 3), f"{key}: {pct}")
    accuracy = (lab.metrics["metrics/forest.json"]["accuracy"], new["metrics/forest.json"]["accuracy"])
    expect(accuracy[1] < accuracy[0], f"3 trees should be less accurate than 100: {accuracy}")
    s.ok(f"accuracy {accuracy[0]:.1%} -> {accuracy[1]:.1%}; each change and change in % checked")
    run = s.conveyor("params", "diff")
    expect(table_rows(run, 4) == [["params.yaml", "train.n_estimators", "100", "3"]], f"params diff: {run.out!r}")
    run = s.conveyor("plots", "diff")
    page = s.project / run.out.strip()
    expect(page.is_file(), f"plots diff should write an HTML page: {run.out!r}")
    html = page.read_text(encoding="utf-8")
    expect("data:image/png;base64," in html and "<script" not in html, "the page should embed PNG charts, no JS")
    s.ok(f"{run.out.strip()}: one self-contained page, HEAD and workspace overlaid per cultivar")
    s.git("commit", "-q", "-a", "-m", "experiment: 3 trees")


def pipeline_revert(t: Story, lab: Lab) -> None:
    s = t.s
    s.heading(
        "Going back costs nothing: the run cache",
        """
        Fewer trees lose accuracy, so we go back: git restores params.yaml from the commit
        before. conveyor remembers every stage it ran by a fingerprint of its code, data,
        arguments and params; train with 100 trees ran before, so its model is restored from
        the cache instead of being trained again, and evaluate, given that model, likewise.
        """,
    )
    s.git("checkout", "HEAD~1", "--", "params.yaml")
    run = s.conveyor("run")
    expect_stages(run, "restored from the run cache", ["train", "evaluate"])
    expect_stages(run, "ran", [])
    expect((s.project / MODEL).read_bytes() == lab.model, f"{MODEL} should be the first run's, byte for byte")
    s.ok(f"nothing was trained; {MODEL} is the first run's model, byte for byte")
    run = s.conveyor("metrics", "diff", "HEAD~1")
    expect(run.out == "No metrics changed between HEAD~1 and workspace.\n", f"metrics diff HEAD~1: {run.out!r}")
    s.ok("the metrics are exactly those of the first pipeline commit")
    s.git("commit", "-q", "-a", "-m", "back to 100 trees")
    s.expect_clean()


def pipeline_verify(t: Story) -> None:
    s = t.s
    s.heading(
        "Is it reproducible?",
        """
        A result nobody can reproduce is not worth much. run --verify runs every up-to-date
        stage again in a scratch copy of the project and compares what it writes with
        conveyor.lock, byte for byte. The stages fix their random seeds, so every one matches;
        a stage that did not (an unseeded split, a timestamp in a file) would be named, and the
        command would exit 1, failing a CI job.
        """,
    )
    run = s.conveyor("run", "--verify")
    expect_stages(run, "reproducible", STAGES)
    s.ok(f"all {len(STAGES)} stages reproduced their outputs exactly; the workspace was not touched")
    s.expect_clean()


def pipeline_failure(t: Story, lab: Lab) -> None:
    s = t.s
    s.heading(
        "When a stage fails",
        """
        Someone types the letter O for the zeros: n_estimators: 1OO. train fails; conveyor
        stops what depends on it, exits 1 and names the stage and its log (--quiet keeps the
        stage's own output, here a long traceback, in the log only). The fix is the old value;
        train cleared its output before it failed, but the run cache still has that model.
        """,
    )
    set_trees(s, "100", "1OO")
    run = s.conveyor("run", "--quiet", code=1)
    expect_stages(run, "failed", ["train"])
    expect_stages(run, "skipped", ["evaluate"])
    expect_stages(run, "ran", [])
    error = [line for line in run.err.splitlines() if line.startswith("error: ")]
    expect(len(error) == 1 and "'train'" in error[0], f"expected one error line naming train: {run.err!r}")
    match = re.search(r"its log: (\S+)$", error[0])
    expect(match is not None, f"the error should name the stage's log: {error[0]}")
    assert match is not None
    log = match.group(1)
    expect((s.project / log).is_file(), f"the log {log} should exist")
    lab.runs["failed"] = Path(log).parent.name  # .conveyor/logs/<run id>/<stage>.log
    run = s.tool("tail", "-n", "1", log)
    expect("n_estimators" in run.out and "1OO" in run.out, f"the log should say what was wrong: {run.out!r}")
    s.ok("exit code 1; the error names the stage and its log, and the log says why")
    s.git("checkout", "params.yaml")
    run = s.conveyor("run")
    expect_stages(run, "restored from the run cache", ["train"])
    expect((s.project / MODEL).read_bytes() == lab.model, f"{MODEL} should be the 100-tree model again")
    s.ok("the model is back from the run cache, no training needed")
    s.expect_clean()


def pipeline_runs(t: Story, lab: Lab) -> None:
    s = t.s
    s.heading(
        "Every run is on record",
        """
        Each conveyor run is recorded: when, on which commit (* marks uncommitted changes to
        files git tracks), what ran, how long it took, the params and the metrics. runs
        compare puts two of them side by side: the first run and the 3-tree experiment.
        """,
    )
    run = s.conveyor("runs", "list")
    listed = {line.split()[0]: line for line in run.out.splitlines()[1:] if line.strip()}
    for what, rid in lab.runs.items():
        expect(rid in listed, f"runs list should show the {what} run {rid}: {run.out}")
    failed = [rid for rid, line in listed.items() if " failed " in line]
    expect(len(failed) == 1, f"runs list should show one failed run: {run.out}")
    s.ok(f"{len(listed)} runs listed, newest first, the failed one among them")
    run = s.conveyor("runs", "compare", lab.runs["first"], lab.runs["experiment"])
    expect(re.search(r"train\.n_estimators\s+100\s+3\b", run.out) is not None, f"runs compare: {run.out}")
    expect("metrics/forest.json:accuracy" in run.out, f"runs compare should compare the accuracy: {run.out}")
    s.ok("runs compare: n_estimators 100 -> 3, and what it did to every metric and stage duration")


# --------------------------------------------------------------------------------------------
# Act three: a remote, to back the project up and to share it.
# --------------------------------------------------------------------------------------------

DIGITS = "data/digits"
STORAGE = "storage"  # the remote: a folder next to the project, standing in for S3 or a shared drive
PULLED = [WINE, SPLITS, DIGITS, "data/prepared.csv", "data/train_test", MODEL]  # what the cache restores
CACHED = [*PULLED, *METRICS_FILES, "plots/per_class.csv"]  # what the remote keeps (metrics and plot too)


@dataclass
class Remote:
    """What act three remembers between sections."""

    folder: Path
    pushed: int = 0  # objects the first push sent: the workspace's and the run cache's
    workspace: int = 0  # objects the workspace refers to (without the run cache's)
    files: frozenset[str] = frozenset()  # the files in the remote folder after the push
    packs: int = 0


def write_digits(project: Path) -> int:
    """scikit-learn's handwritten digits, one 8x8 greyscale PGM image (74 bytes) per file, by label."""
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = project / DIGITS / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.pgm").write_bytes(b"P5\n8 8\n16\n" + image.astype(np.uint8).tobytes())
    return len(digits.images)


def files_under(folder: Path) -> frozenset[str]:
    return frozenset(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def snapshot(project: Path, paths: Sequence[str]) -> State:
    """Every file at or below ``paths``, with its exact content."""
    state: State = {}
    for rel in paths:
        path = project / rel
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                state[str(file.relative_to(project))] = file.read_bytes()
    return state


def remote_objects(folder: Path) -> set[str]:
    """The objects a remote folder holds, read straight from its layout: the pack indexes
    ('conveyor-pack 1', then '<hash> <offset> <size>' lines) and the loose objects/ab/cdef..."""
    found: set[str] = set()
    for index in (folder / "packs").glob("*.idx"):
        lines = index.read_text(encoding="utf-8").splitlines()
        expect(lines[:1] == ["conveyor-pack 1"], f"{index.name}: not a pack index: {lines[:1]}")
        found.update(line.split()[0] for line in lines[1:])
    found.update(p.parent.name + p.name for p in (folder / "objects").glob("*/*"))
    return found


def referenced(project: Path) -> set[str]:
    """The hashes the pointer files and conveyor.lock's outputs name."""
    names = {
        line.split("blake3:", 1)[1]
        for pointer in project.glob("data/*.cvy")
        for line in pointer.read_text(encoding="utf-8").splitlines()
        if line.startswith("hash: blake3:")
    }
    lock = yaml.safe_load((project / "conveyor.lock").read_text(encoding="utf-8"))
    names.update(out["hash"] for stage in lock["stages"].values() for out in stage.get("outs", []))
    return names


def path_states(run: Run) -> dict[str, tuple[str, int]]:
    """'not pushed: data/wine.csv (1 object)' lines of status --remote: path -> (state, objects)."""
    pattern = r"^(not pushed|not fetched|partly pushed|missing): (\S+) \((\d+) objects?\)$"
    found = re.findall(pattern, run.out, flags=re.MULTILINE)
    return {path: (state, int(count)) for state, path, count in found}


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def count(pattern: str, run: Run) -> int:
    match = re.search(pattern, run.out, flags=re.MULTILINE)
    expect(match is not None, f"'{shell_join(run.argv)}': expected {pattern!r} in {run.out!r}")
    assert match is not None
    return int(match.group(1))


def remote_setup(t: Story) -> Remote:
    s = t.s
    s.heading(
        "Act three: a remote, to back up and to share",
        f"""
        Everything so far lives on one disk. Git has the pointers, but lose the cache or hand
        the project to a colleague, and the data and models are gone. A remote is a second home
        for the cache: a folder on a shared drive, an S3 bucket (or MinIO, GCS, Azure), an SSH
        server; here a folder next to the project, ../{STORAGE}, stands in for one. Remote
        storage is slowest with many small files, one request each, so first we add a data set
        of that kind: scikit-learn's handwritten digits, one tiny image per file.
        """,
    )
    images = write_digits(s.project)
    run = s.conveyor("add", DIGITS)
    expect(f"added {DIGITS} (" in run.out and f"{images} files" in run.out, f"add {DIGITS}: {run.out!r}")
    run = s.conveyor("remote", "add", "storage", f"../{STORAGE}", "--default")
    expect(run.out == f"added remote 'storage' (default): ../{STORAGE} (in .conveyor/config)\n", f"{run.out!r}")
    run = s.git("diff", ".conveyor/config")
    expect(f"+    url: ../{STORAGE}" in run.out, f"the remote should be in the committed config: {run.out!r}")
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "digits; remote storage")
    s.ok("the remote is in .conveyor/config, committed: every clone knows where the data is")
    print()
    s.say("status --remote compares what the workspace refers to with what the remote holds:")
    run = s.conveyor("status", "--remote")
    states = path_states(run)
    expect(sorted(states) == sorted(CACHED), f"status --remote should list {sorted(CACHED)}: {sorted(states)}")
    expect({state for state, _n in states.values()} == {"not pushed"}, f"status --remote: {states}")
    expect(states[DIGITS][1] == images + 1, f"{DIGITS}: expected {images} images and a manifest: {states[DIGITS]}")
    s.ok(f"nothing is pushed yet: {DIGITS} alone is {images + 1:,} objects ({images:,} images and the manifest)")
    return Remote(s.root / STORAGE, workspace=sum(n for _state, n in states.values()))


def remote_push(t: Story, remote: Remote) -> None:
    s = t.s
    s.heading(
        "Push: many small files, one pack",
        """
        push sends what the workspace refers to, data and pipeline outputs; --run-cache adds
        every result the run cache remembers, such as the 3-tree model. Which objects the remote
        already has comes from one listing, not a request per object. Small objects travel
        bundled in pack files with an index; large ones would travel as they are. A second
        push has nothing to send.
        """,
    )
    entries = sum(1 for _ in (s.project / ".conveyor" / "cache" / "runs").rglob("*.json"))
    run = s.conveyor("push", "--run-cache")
    remote.pushed = count(r"^pushed (\d+) objects \(", run)
    expect(count(r"; (\d+) already there$", run) == 0, f"a first push finds nothing there: {run.out!r}")
    expect(count(r"^pushed (\d+) run-cache entr", run) == entries, f"push: expected {entries} entries: {run.out!r}")
    expect(remote.pushed > remote.workspace, f"push: {remote.pushed} objects, the workspace alone has more")
    run = s.tool("find", f"../{STORAGE}", "-type", "f")
    remote.files = files_under(remote.folder)
    packs = sorted(f for f in remote.files if f.endswith(".pack"))
    remote.packs = len(packs)
    expect(all(f"{p[: -len('.pack')]}.idx" in remote.files for p in packs), f"each pack needs an index: {packs}")
    expect(len(remote.files) <= 6, f"expected a handful of files on the remote, found {len(remote.files)}")
    held = remote_objects(remote.folder)
    expect(len(held) == remote.pushed, f"the remote's indexes hold {len(held)} objects, push sent {remote.pushed}")
    expect(referenced(s.project) <= held, "every object the pointers and conveyor.lock name should be on the remote")
    s.ok(
        f"{remote.pushed:,} objects and {entries} run-cache entries are {len(remote.files)} files on the remote: "
        f"{plural(len(packs), 'pack')} with {'its index' if len(packs) == 1 else 'their indexes'}, "
        "and one run-cache bundle"
    )
    run = s.conveyor("push", "--run-cache")
    expect(run.out == f"Everything is up to date on 'storage' ({remote.pushed} objects).\n", f"push: {run.out!r}")
    run = s.conveyor("status", "--remote")
    expect(run.out == f"Everything is on 'storage' and here ({remote.workspace} objects).\n", f"{run.out!r}")
    s.ok("a second push moved nothing; status --remote: everything is on both sides")
    print()
    s.say(
        """gc --remote cleans a remote as gc cleans the cache. The run cache counts as a
        reference, so the 3-tree experiment's results stay; a dry run shows what would go
        without that:"""
    )
    run = s.conveyor("gc", "--remote", "--dry-run", "--no-run-cache")
    dead = count(r"^'storage': (\d+) objects? \(", run)
    expect(dead == remote.pushed - remote.workspace, f"gc: {dead} dead, expected the run cache's own objects")
    expect(count(r", (\d+) kept;", run) == remote.workspace, f"gc should keep the workspace's objects: {run.out!r}")
    expect(run.out.endswith("(dry run: nothing deleted)\n"), f"gc --dry-run: {run.out!r}")
    expect(files_under(remote.folder) == remote.files, "a dry run must not change the remote")
    s.ok(f"only the {dead} objects that nothing but the run cache refers to would go; nothing was deleted")


def remote_restore(t: Story, remote: Remote) -> None:
    s = t.s
    s.heading(
        "The disk dies: pull brings everything back",
        """
        We delete the whole local cache, the data and the pipeline's outputs. status --remote
        now says the other thing: on the remote, not here. pull fetches what the current
        commit refers to, checks every object against its hash before it enters the cache,
        and checks the files out.
        """,
    )
    before = snapshot(s.project, PULLED)
    s.tool("rm", "-rf", ".conveyor/cache", *PULLED)
    expect(not any((s.project / rel).exists() for rel in PULLED), "the data should be gone")
    run = s.conveyor("status", "--remote")
    states = path_states(run)
    expect({state for state, _n in states.values()} == {"not fetched"}, f"status --remote: {states}")
    expect(sorted(states) == sorted(CACHED), f"status --remote should list {sorted(CACHED)}: {sorted(states)}")
    run = s.conveyor("pull")
    fetched = count(r"^fetched (\d+) objects \(", run)
    expect(fetched == remote.workspace, f"pull: fetched {fetched} objects, expected {remote.workspace}")
    after = snapshot(s.project, PULLED)
    expect(sorted(after) == sorted(before), f"pull: files differ: {sorted(set(before) ^ set(after))[:5]}")
    expect(all(after[rel] == data for rel, data in before.items()), "pull: a file is not byte-identical")
    s.ok(f"all {len(before):,} files are back, byte for byte")
    tracked = sum(1 for rel in before if rel.startswith((WINE, SPLIT_PREFIX, DIGITS + "/")))
    run = s.conveyor("verify")
    expect(run.out == f"checked {fetched} cache objects and {tracked} workspace files\n", f"verify: {run.out!r}")
    s.expect_clean()


def remote_clone(t: Story, lab: Lab, remote: Remote) -> None:
    s = t.s
    clone = s.root / "colleague"
    s.heading(
        "A colleague, or a CI job: run --pull",
        """
        A colleague clones the project (a CI job does the same): git brings the code, the
        params, the pointers, conveyor.lock and the remote's name, but no data and no model.
        run --pull first fetches the run cache and what the stages read and write, then brings
        the pipeline up to date. Every stage's result is in the run cache, so nothing is
        trained. Only what the pipeline needs travels: the digits stay on the remote.
        """,
    )
    s.git("clone", "-q", ".", f"../{clone.name}")
    run = s.conveyor("run", "--pull", cwd=clone)
    expect_stages(run, "restored from the run cache", ["prepare", "split", "train"])
    expect_stages(run, "ran", [])
    expect((clone / MODEL).read_bytes() == lab.model, f"the clone's {MODEL} should be the first run's, byte for byte")
    for rel in METRICS_FILES:
        expect((clone / rel).read_bytes() == (s.project / rel).read_bytes(), f"the clone's {rel} differs")
    expect(not (clone / DIGITS).exists(), f"run --pull should not fetch {DIGITS}: no stage reads it")
    s.ok(f"restored, not run: {MODEL} and the metrics are identical to the original project's")
    run = s.conveyor("run", cwd=clone)
    expect(run.out == f"Everything is up to date ({len(STAGES)} stages).\n", f"the clone's pipeline: {run.out!r}")
    s.ok(f"the clone's pipeline is up to date; {DIGITS} is still only on the remote")


# --------------------------------------------------------------------------------------------
# Act four: checks and gates, so that a bad data set or a worse model stops the pipeline.
# --------------------------------------------------------------------------------------------

CHAMPION = "models/champion.pkl"
GATE_STAGES = ["data_checks", "split_checks", "model_checks", "gate"]
GATES_YAML = """\
  data_checks:                       # a check stage: a suite of checks, and a gate
    check:
      suite: data_integrity
      data: data/prepared.csv
      label: cultivar
      schema: checks/schema.yaml     # inferred once, reviewed, committed
  split_checks:
    check:
      suite: train_test              # drift, leakage between train and test, new categories
      train: data/train_test/train.csv
      test: data/train_test/test.csv
      label: cultivar
  model_checks:
    check:
      suite: model_evaluation
      train: data/train_test/train.csv
      test: data/train_test/test.csv
      model: models/model.pkl
      label: cultivar
  gate:                              # the candidate against the model in production
    check:
      suite:
        suite: champion_challenger
        conditions:
          champion_challenger:
            max_degradation: {fail: 0.02}   # at most 2 points of accuracy worse, at 95%
      test: data/train_test/test.csv
      model: models/model.pkl
      champion: models/champion.pkl
      label: cultivar
"""


def gates_setup(t: Story) -> None:
    s = t.s
    s.heading(
        "Act four: checks and gates",
        """
        A bad data set or a worse model must stop the pipeline before it ships. conveyor
        schema infers the schema the prepared data satisfies (columns, kinds, categories,
        ranges) into a YAML file to review and commit. Four check stages then guard the
        pipeline: data integrity after prepare, train/test checks after split, model
        evaluation after train, and a gate that compares the new model with the one in
        production (models/champion.pkl, tracked with conveyor add) on the same test rows,
        with a paired bootstrap rather than two point estimates.
        """,
    )
    run = s.conveyor("schema", "data/prepared.csv", "-o", "checks/schema.yaml", "--label", "cultivar")
    expect("wrote checks/schema.yaml" in run.out, f"schema: {run.out}")
    schema = yaml.safe_load((s.project / "checks" / "schema.yaml").read_text(encoding="utf-8"))
    expect(schema["columns"]["cultivar"]["categories"] == ["0", "1", "2"], f"schema: {schema['columns']['cultivar']}")
    s.ok(f"the schema lists {len(schema['columns'])} columns; the label's categories are 0, 1 and 2")
    shutil.copy(s.project / MODEL, s.project / CHAMPION)
    s.conveyor("add", CHAMPION)
    with (s.project / "conveyor.yaml").open("a", encoding="utf-8") as handle:
        handle.write(GATES_YAML)
    s.say("conveyor.yaml gains four check stages:")
    s.show(GATES_YAML)
    run = s.conveyor("run")
    expect_stages(run, "ran", GATE_STAGES)
    for stage in GATE_STAGES:
        report = json.loads((s.project / "reports" / f"{stage}.json").read_text(encoding="utf-8"))
        expect(report["passed"], f"{stage} should pass on the clean data: {report['counts']}")
    gate = json.loads((s.project / "reports" / "gate.json").read_text(encoding="utf-8"))["checks"][0]
    expect(gate["values"]["gain"] == 0 and gate["status"] == "pass", f"the same model against itself: {gate}")
    s.ok("every check stage passed; the reports are in reports/ (HTML, Markdown for a pull request, JSON)")
    print()
    s.tool("head", "-n", "8", "reports/model_checks.md")
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "checks and a gate")


def gates_stop_a_worse_model(t: Story) -> None:
    s = t.s
    s.heading(
        "A worse model is stopped",
        """
        Someone trains a tiny forest: 2 trees of depth 1. train runs, evaluate scores it, and
        the gate compares it with the champion on the same test wines: it is clearly worse,
        beyond the tolerance of 2 points, so the gate stage fails and conveyor run exits 1,
        naming it. Nothing downstream of a failed gate would run; the report says why.
        """,
    )
    set_trees(s, "100", "2")
    params = s.project / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("max_depth: 4", "max_depth: 1"), encoding="utf-8")
    run = s.conveyor("run", "--quiet", code=1)
    expect_stages(run, "failed", ["gate"])
    error = [line for line in run.err.splitlines() if line.startswith("error: ")]
    expect(len(error) == 1 and "'gate'" in error[0], f"expected one error line naming the gate: {run.err!r}")
    gate = json.loads((s.project / "reports" / "gate.json").read_text(encoding="utf-8"))["checks"][0]
    expect(gate["status"] == "fail" and gate["values"]["gain"] < -0.02, f"the gate should fail: {gate}")
    html = (s.project / "reports" / "gate.html").read_text(encoding="utf-8")
    expect("<svg" in html and "<script" not in html, "the HTML report should embed its chart, with no script")
    s.ok(
        f"the gate failed: accuracy {gate['values']['metric_challenger']:.3f} against the champion's "
        f"{gate['values']['metric_champion']:.3f}; reports/gate.html says so, with the bootstrap distribution"
    )
    s.git("checkout", "params.yaml")
    run = s.conveyor("run")
    expect((s.project / MODEL).read_bytes() == (s.project / CHAMPION).read_bytes(), "the 100-tree model again")
    expect_stages(run, "restored from the run cache", ["model_checks", "gate"])
    s.ok("back to 100 trees: the seeded forest is the champion again, byte for byte, and its checks are known")
    s.expect_clean()


def gates_stop_leaked_rows(t: Story) -> None:
    s = t.s
    s.heading(
        "Leaked rows are caught",
        """
        The same checks run from the command line (and from Python, inside a test). Here a test
        set that shares rows with the training set, the classic leak that makes a model look
        better than it is: conveyor check names the check and exits 1.
        """,
    )
    train = (s.project / "data/train_test/train.csv").read_text(encoding="utf-8").splitlines()
    test = (s.project / "data/train_test/test.csv").read_text(encoding="utf-8").splitlines()
    leaked = s.root / "leaked_test.csv"
    leaked.write_text("\n".join([*test, *train[1:11]]) + "\n", encoding="utf-8")
    run = s.conveyor(
        "check",
        "train_test",
        "--train",
        "data/train_test/train.csv",
        "--test",
        str(leaked),
        "--label",
        "cultivar",
        code=1,
    )
    expect("FAIL  Rows shared by train and test: 10 test row(s)" in run.out, f"check: {run.out}")
    one_line_error(run, "check train_test failed", "train_test_overlap")
    s.ok("10 leaked rows found; exit code 1 stops a CI job")


# --------------------------------------------------------------------------------------------
# Act five: the model registry, its policy and its history.
# --------------------------------------------------------------------------------------------

REGISTRY_YAML = """\
registry:                            # what an alias requires of a model version
  aliases:
    production:
      requires: [data_checks, split_checks, model_checks, gate]
"""


def registry_first_release(t: Story) -> None:
    s = t.s
    s.heading(
        "Act five: the model registry",
        """
        The model that passed every gate becomes version 1 of the model 'wine': its artifact
        goes into the cache (and the remote, with the data), and the registry records its
        lineage from the run that made it (the stage, the hashes of its data and code, its
        params and metrics) and the check results on it and on its data. conveyor.yaml says
        what production requires; the promotion is checked against it and recorded.
        """,
    )
    with (s.project / "conveyor.yaml").open("a", encoding="utf-8") as handle:
        handle.write(REGISTRY_YAML)
    s.show(REGISTRY_YAML)
    run = s.conveyor(
        "model",
        "register",
        "wine",
        MODEL,
        "--signature-from",
        "data/train_test/train.csv",
        "--label",
        "cultivar",
        "-d",
        "random forest, 100 trees",
    )
    expect(run.out.startswith("registered wine:1: model.pkl, sklearn (pickle)"), f"register: {run.out!r}")
    expect("(stage train)" in run.out, f"the lineage should name the train stage: {run.out!r}")
    shown = s.conveyor("model", "show", "wine:1")
    for stage in GATE_STAGES:
        expect(f"(stage {stage}): passed" in shown.out, f"show should list the passed {stage}: {shown.out}")
    expect("data/prepared.csv" in shown.out, "the lineage should reach back to the prepared data")
    s.ok("wine:1 knows its run, commit, data, params, metrics, and the four check stages it passed")
    run = s.conveyor("model", "promote", "wine", "1", "--to", "production", "--reason", "first release")
    expect(run.out == "production: nothing -> wine:1\n", f"promote: {run.out!r}")
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "a promotion policy for production")


def registry_refusal(t: Story) -> None:
    s = t.s
    s.heading(
        "The policy refuses what failed its gate",
        """
        The 2-tree model that the gate stopped in act four is still in the cache, and its run is
        on record. Registering it is allowed (a registry records candidates too), but the
        policy will not let it become production: its gate failed. --force --reason could
        override that, and the history would keep both.
        """,
    )
    failed = json.loads(s.conveyor("runs", "list", "--status", "failed", "--json", echo=False).out)
    worse_run = failed[0]["id"]
    run = s.conveyor("model", "register", "wine", "--from-run", worse_run[:15], "--out", MODEL, "-d", "2 trees")
    expect(run.out.startswith("registered wine:2:"), f"register --from-run: {run.out!r}")
    run = s.conveyor("model", "promote", "wine", "2", "--to", "production", code=1)
    one_line_error(run, "wine:2 cannot become 'production'", "gate did not pass")
    s.ok("refused, exit code 1: the gate's failed result is recorded against wine:2's artifact")


def registry_new_release(t: Story) -> None:
    s = t.s
    s.heading(
        "A new model ships, and production rolls back",
        """
        300 trees instead of 100: the pipeline retrains, and every check stage runs again on
        the new model, the gate included (no worse than the champion, at 95%). It becomes
        wine:3 and production. Then, say, it misbehaves in production: a rollback moves the
        alias back to the version before, recorded like any other move. The history says who
        moved what, when and why, and which version was production at any moment.
        """,
    )
    set_trees(s, "100", "300")
    run = s.conveyor("run", "--quiet")
    expect_stages(run, "ran", ["train", "evaluate", "model_checks", "gate"])
    run = s.conveyor("model", "register", "wine", MODEL, "-d", "random forest, 300 trees")
    expect(run.out.startswith("registered wine:3:"), f"register: {run.out!r}")
    run = s.conveyor("model", "promote", "wine", "3", "--to", "production", "--reason", "300 trees, every gate passed")
    expect(run.out == "production: wine:1 -> wine:3\n", f"promote: {run.out!r}")
    between = time.time()
    time.sleep(0.05)
    s.conveyor("model", "list")
    run = s.conveyor("model", "rollback", "wine", "--alias", "production", "--reason", "p99 latency doubled")
    expect(run.out == "production: wine:3 -> wine:1\n", f"rollback: {run.out!r}")
    run = s.conveyor("model", "history", "wine")
    actions = [row.split()[4] for row in run.out.splitlines()[1:]]  # after the date, time, zone and alias
    expect(actions == ["promote", "promote", "rollback"], f"history: {run.out!r}")
    when = dt.datetime.fromtimestamp(between).isoformat(timespec="milliseconds")  # local time, as history prints
    run = s.conveyor("model", "history", "wine", "--at", when)
    expect("production: wine:3" in run.out, f"history --at: {run.out!r}")
    s.ok(f"at {when} production was wine:3; now it is wine:1 again, and the audit history shows why")
    s.git("checkout", "params.yaml")
    run = s.conveyor("run", "--quiet")
    s.expect_clean()


# --------------------------------------------------------------------------------------------
# Act six: serving, continuous delivery, rollouts and monitoring.
# --------------------------------------------------------------------------------------------

DEPLOY_YAML = """\
deploy:                              # what conveyor deliver ships, and how it is rolled out
  model: wine
  artifact: models/model.pkl
  rollout: {mode: canary, share: 0.3, window: 60, max_error_rate: 0.01, timeout: 120}
  monitor: {reference: data/train_test/train.csv, label: cultivar, min_rows: 100}
"""
SERVE_TOKEN = "demo-admin-token-5f1c0b9e2d7a"


@dataclass
class Traffic:
    """Client threads sending the test wines to the server without pause; every answer kept."""

    url: str
    rows: list[list[float]]
    columns: list[str]
    scale: float = 1.0
    answers: list[tuple[int, str]] | None = None
    _stop: Any = None
    _threads: list[Any] | None = None

    def __enter__(self) -> Traffic:
        import threading

        self.answers, self._stop, self._threads = [], threading.Event(), []
        for n in range(2):
            thread = threading.Thread(target=self._send, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads or []:
            thread.join(timeout=30)

    def _send(self, n: int) -> None:
        import httpx

        assert self.answers is not None
        with httpx.Client(timeout=30) as client:
            i = n
            while not self._stop.is_set():
                i = (i + 3) % len(self.rows)
                batch = [[v * self.scale for v in row] for row in self.rows[i : i + 4]] or [self.rows[0]]
                body = {"dataframe_split": {"columns": self.columns, "data": batch}}
                try:
                    answer = client.post(f"{self.url}/invocations", json=body)
                    self.answers.append((answer.status_code, answer.headers.get("x-conveyor-model-version", "?")))
                except httpx.HTTPError as exc:
                    self.answers.append((0, type(exc).__name__))

    def failed(self) -> int:
        return sum(1 for status, _ in self.answers or [] if status != 200)

    def versions(self) -> set[str]:
        return {version for status, version in self.answers or [] if status == 200}


def start_server(s: Session) -> tuple[subprocess.Popen[bytes], str, Path]:
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = s.root / "admin.token"
    token.write_text(SERVE_TOKEN, encoding="utf-8")
    log = s.root / "server.log"
    argv = ["serve", "wine@production", "--port", str(port), "--log-sample", "1", "--admin-token-file", str(token)]
    print(_style("  $ " + shell_join(["conveyor", *argv]) + " &", "1;36"))
    s.commands += 1
    with log.open("wb") as sink:
        server = subprocess.Popen([str(CONVEYOR), *argv], cwd=s.project, env=s.env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoFailure(f"the server exited with {server.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return server, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.kill()
    raise DemoFailure("the server did not become ready within 60 s")


def test_rows(s: Session) -> tuple[list[str], list[list[float]]]:
    with (s.project / "data/train_test/test.csv").open(encoding="utf-8", newline="") as handle:
        table = list(csv.reader(handle))
    header = table[0]
    keep = [i for i, name in enumerate(header) if name != "cultivar"]
    return [header[i] for i in keep], [[float(row[i]) for i in keep] for row in table[1:]]


def delivery_loop(t: Story) -> None:
    s = t.s
    s.heading(
        "Act six: serving and continuous delivery",
        """
        conveyor serve answers predictions for whatever 'production' names, in the Open
        Inference Protocol and MLflow's scoring protocol, and follows the alias: a version put
        on the 'canary' alias takes a share of live traffic and is promoted, or rolled back, by
        its error rate and latency. conveyor deliver is the whole path in one command: pull, run
        the pipeline (its check stages are the gates), register, staging, canary, production.
        """,
    )
    with (s.project / "conveyor.yaml").open("a", encoding="utf-8") as handle:
        handle.write(DEPLOY_YAML)
    s.show(DEPLOY_YAML)
    server, url, _log = start_server(s)
    columns, rows = test_rows(s)
    try:
        s.ok(f"serving wine:1 (production) on {url}; two clients send it the test wines without pause")
        with Traffic(url, rows, columns) as traffic:
            time.sleep(1)
            set_trees(s, "100", "300")
            run = s.conveyor("deliver", "--server", url)
            expect(run.out.strip().endswith("wine:3 released"), f"deliver: {run.out!r}")
            expect("canary on" in run.out and "promoted by conveyor-serve" in run.out, f"deliver: {run.out!r}")
            time.sleep(0.5)
        expect(traffic.failed() == 0, f"{traffic.failed()} requests failed during the rollout")
        expect(traffic.versions() == {"1", "3"}, f"versions that answered: {traffic.versions()}")
        s.ok(
            f"{len(traffic.answers or [])} requests during the canary and the swap, 0 failed; "
            "wine:1 and wine:3 both answered, now wine:3 serves"
        )
        run = s.conveyor("deploy", "status", "wine", "--url", url)
        expect(f"server {url}: serves wine:3" in run.out, f"deploy status: {run.out!r}")
        s.heading(
            "A worse model is stopped at the gate; production never sees it",
            """
            Two trees again: conveyor deliver runs the pipeline, the champion/challenger gate
            fails, and the delivery stops there with exit code 1. The server keeps answering
            with wine:3 the whole time.
            """,
        )
        with Traffic(url, rows, columns) as traffic:
            set_trees(s, "300", "2")
            run = s.conveyor("deliver", "--server", url, code=1)
            expect("✗ run" in run.out or "x run" in run.out, f"deliver: {run.out!r}")
            one_line_error(run, "delivery of wine stopped at run")
        expect(traffic.failed() == 0 and traffic.versions() == {"3"}, "the worse model must never answer")
        s.ok(f"stopped at the gate, exit code 1; {len(traffic.answers or [])} requests all answered by wine:3")
        set_trees(s, "2", "300")
        s.conveyor("run", "--quiet")
        s.heading(
            "Live data drifts; monitoring raises the alarm and retrains",
            """
            The server logs what it is asked and what it answers (Parquet, sampled; here every
            request). Now the wines sent to it are measured 60% larger than any the model was
            trained on. conveyor monitor compares the live inputs and predictions with the
            training data using the drift checks, writes a report, and on an alarm runs
            conveyor deliver to retrain: here no new labelled data has arrived yet, so the
            pipeline is up to date and nothing new is released.
            """,
        )
        logs = s.project / ".conveyor" / "serving" / "wine" / "requests"
        written = len(list(logs.glob("*.parquet")))
        drift_started = time.time()
        with Traffic(url, rows, columns, scale=1.6) as traffic:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (
                len(traffic.answers or []) < 150 or len(list(logs.glob("*.parquet"))) <= written + 1
            ):
                time.sleep(0.2)
        expect(traffic.failed() == 0, "drifted requests are still answered")
        time.sleep(5.5)  # the server writes its request log every 5 s
        since = f"{time.time() - drift_started + 1:.0f}"
        run = s.conveyor("monitor", "--since", since, code=1)
        expect("ALARM: " in run.out and "features drifted" in run.out, f"monitor: {run.out!r}")
        expect("retraining:\n" in run.out and "wine:3 unchanged" in run.out, f"monitor: {run.out!r}")
        one_line_error(run, "model 'wine': live traffic drifted")
        s.ok("drift found; the retraining delivery found nothing new to release, so monitor exits 1 for CI")
        import httpx

        metrics = httpx.get(f"{url}/metrics").text
        served = [
            line
            for line in metrics.splitlines()
            if line.startswith("conveyor_requests_total") and 'endpoint="invocations"' in line
        ]
        s.show("\n".join(served[:3]))
        expect(any('version="3"' in line for line in served), "Prometheus metrics per version")
        s.ok("Prometheus metrics at /metrics: requests, errors and latency per model version")
    finally:
        server.send_signal(2)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "continuous delivery: the deploy section; 300 trees in production")


# --------------------------------------------------------------------------------------------
# Act seven: the same pipeline on a Dask cluster.
# --------------------------------------------------------------------------------------------


class DaskCluster:
    """A local ``dask scheduler`` and two ``dask worker`` processes, each in a process group of its own."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env  # the demo's: the venv's python first on PATH, as for the stages run here
        self.procs: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def __enter__(self) -> DaskCluster:
        dask = str(Path(sys.executable).parent / "dask")
        self.root.mkdir(parents=True, exist_ok=True)
        info = self.root / "scheduler.json"
        self._start(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
            "scheduler",
        )
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        expect(info.exists(), "the Dask scheduler did not start within 60 s")
        time.sleep(0.2)  # the file is written whole, but give it a moment
        self.address = json.loads(info.read_text())["address"]
        for n in range(2):
            self._start(
                [
                    dask,
                    "worker",
                    self.address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"w{n}",
                    "--local-directory",
                    str(self.root / f"w{n}"),
                ],
                f"w{n}",
            )
        import distributed

        with distributed.Client(self.address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        return self

    def _start(self, argv: list[str], name: str) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - the process writes it until the end
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=log, env=self.env, start_new_session=True))

    def __exit__(self, *_exc: object) -> None:
        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait()


def on_a_cluster(t: Story) -> None:
    s = t.s
    try:
        import distributed  # noqa: F401
    except ImportError:
        s.heading("Act seven: the pipeline on a Dask cluster (skipped)", "The dask extra is not installed.")
        return
    s.heading(
        "Act seven: the same pipeline on a Dask cluster",
        """
        conveyor run --executor dask://HOST:PORT sends the stages to a Dask cluster; the
        workers get their inputs from the remote and put their outputs there, and this
        workspace keeps the lock and the run record. Here a scheduler and two workers run on
        this machine; forced, every stage runs again, the check stages here (they record their
        results in this workspace), the others on the workers. Their outputs come back identical
        to the ones made here, hash for hash.
        """,
    )

    def trained() -> dict[str, Any]:
        stages = yaml.safe_load((s.project / "conveyor.lock").read_text(encoding="utf-8"))["stages"]
        return {name: stages[name] for name in STAGES}

    before = trained()
    with DaskCluster(s.root / "dask", s.env) as cluster:
        dask_address = "dask://" + cluster.address.removeprefix("tcp://")
        s.ok(f"a Dask scheduler at {cluster.address} with two workers")
        run = s.conveyor("run", "--executor", dask_address, "--force", "--quiet")
    on_workers = re.findall(r"^✔ ran: (\S+) \([\d.]+ s on (tcp://[\d.:]+)\)", run.out, re.MULTILINE)
    places = {stage: worker for stage, worker in on_workers}
    expect(set(STAGES) <= set(places), f"every pipeline stage should have run on a worker: {run.out!r}")
    here = [name for name in stages_with(run, "ran") if name not in places]
    expect(sorted(here) == sorted(GATE_STAGES), f"the check stages should run here: {here}")
    expect(trained() == before, "the cluster's outputs should be identical to the local ones")
    s.ok(
        f"{len(places)} stages ran on {len(set(places.values()))} workers, {len(here)} check stages here; "
        "every output of the pipeline's stages has the same hash as before: the cluster reproduced them"
    )
    s.git("status", "--short")  # only the check reports, which carry the time they were written


def pull_request(t: Story) -> None:
    s = t.s
    s.heading(
        "Act eight: CI, and the report on a pull request",
        """
        conveyor ci init writes the CI workflow that runs all of this on every push and pull
        request; conveyor report --md writes the comment the workflow posts on the pull
        request: the gates' verdict, the metrics and params against main, the checks, the plots.
        Here, on a branch, a colleague tries 400 trees.
        """,
    )
    run = s.conveyor("ci", "init", "github")
    workflow = s.project / ".github" / "workflows" / "conveyor.yml"
    expect(workflow.exists(), f"ci init: no {workflow}: {run.out!r}")
    spec = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    triggers = spec.get(True, spec.get("on"))  # YAML 1.1 reads the key `on` as True
    expect({"push", "pull_request"} <= set(triggers), f"the workflow should run on push and pull_request: {triggers}")
    steps = " ".join(str(step.get("run", "")) for job in spec["jobs"].values() for step in job["steps"])
    expect("conveyor report --md" in steps and "gh pr comment" in steps, "the workflow should report and comment")
    s.ok("the workflow runs the pipeline on every push and pull request, and comments the report")
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "CI: conveyor")
    s.git("checkout", "-q", "-b", "more-trees")
    set_trees(s, "300", "400")
    s.conveyor("run", "--quiet")
    run = s.conveyor("report", "--md", "--base", "main", echo=False)
    s.show(run.out)
    expect(run.out.splitlines()[1].startswith("## ✅"), f"the gates passed, so should the report: {run.out[:300]!r}")
    expect("n_estimators" in run.out and "| 300 | 400 |" in run.out, "the report should show the changed param")
    s.ok("the report: gates passed, 300 -> 400 trees, the metrics against main, ready to post with gh pr comment")


def build_step(t: Story) -> None:
    """Act nine: the bundle deliver built of production, rebuilt byte for byte, served with no workspace."""
    import socket
    import tarfile

    import httpx

    s = t.s
    s.heading(
        "Act nine: the build step, a bundle of what production serves",
        """
        What was tested is what is deployed: conveyor deliver built a bundle of each version it
        promoted. A bundle holds the model (hash-verified), its signature and lineage, the exact
        packages its training run had (requirements.lock, with conveyor's own wheel), an entry
        point that serves it from the bundle alone, a Dockerfile, Kubernetes manifests and a
        KServe InferenceService. Building it again gives the same bytes, and the registry
        traces an archive back to its version, run, data and checks.
        """,
    )
    bundles = s.project / "bundles"
    built = sorted(p.name for p in bundles.iterdir() if not p.name.startswith("."))
    expect("wine-3" in built and "wine-3.tar.gz" in built, f"deliver should have built wine-3: {built}")
    s.show("bundles/: " + ", ".join(built))
    shown = s.conveyor("model", "show", "wine@production")
    recorded = re.search(r"sha256:([0-9a-f]{64})", shown.out)
    expect(recorded is not None, f"model show should list the bundle: {shown.out!r}")
    rebuild = s.root / "rebuild" / "wine-3"
    run = s.conveyor("build", "wine@production", "-o", str(rebuild))
    again = re.search(r"sha256:\s+([0-9a-f]{64})", run.out)
    expect(
        again is not None and recorded is not None and again.group(1) == recorded.group(1),
        f"a rebuild should give the same archive: {run.out!r}",
    )
    same = (bundles / "wine-3.tar.gz").read_bytes() == (s.root / "rebuild" / "wine-3.tar.gz").read_bytes()
    expect(same, "the rebuilt archive should be byte-identical")
    s.ok("rebuilt byte for byte: the same SHA-256 as the bundle deliver built")
    lock = (rebuild / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pins = [line for line in lock if re.match(r"^(scikit-learn|numpy|pandas|joblib)==", line)]
    expect(len(pins) == 4, f"the lock should pin the model's packages: {lock}")
    s.show("requirements.lock (excerpt):\n" + "\n".join(pins) + "\n" + lock[-1])
    docker = (rebuild / "Dockerfile").read_text(encoding="utf-8").splitlines()
    s.show("Dockerfile (excerpt):\n" + "\n".join(line for line in docker if line.startswith(("FROM", "USER", "CMD"))))
    s.show("k8s/: " + ", ".join(sorted(p.name for p in (rebuild / "k8s").iterdir())) + "; kserve/inferenceservice.yaml")
    run = s.conveyor("model", "trace", str(s.root / "rebuild" / "wine-3.tar.gz"))
    expect("was built from wine:3" in run.out and "run:" in run.out, f"model trace: {run.out!r}")
    run = s.conveyor("build", "wine@production", "-o", str(rebuild), code=2)
    one_line_error(run, "already exists: a bundle is never written over another")
    # deploy it: the archive alone, unpacked outside any workspace, served by its own entry point
    deploy = s.root / "deploy"
    deploy.mkdir()
    with tarfile.open(bundles / "wine-3.tar.gz") as tar:
        tar.extractall(deploy, filter="data")
    # a fresh virtual environment, from the bundle's lock alone
    venv = deploy / "venv"
    fresh_env = {k: v for k, v in s.env.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    fresh_env["PATH"] = os.pathsep.join([str(venv / "bin"), os.defpath])
    for argv, where in (
        ([sys.executable, "-m", "venv", str(venv)], deploy),
        ([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "-r", "requirements.lock"], deploy / "wine-3"),
        ([str(venv / "bin" / "pip"), "check"], deploy / "wine-3"),
    ):
        shown = ["python" if argv[0] == sys.executable else f"venv/bin/{Path(argv[0]).name}", *argv[1:]]
        shown = [a.replace(str(venv), "venv") for a in shown]
        print(_style(f"  {where.name}$ " + shell_join(shown), "1;36"))
        s.commands += 1
        done = subprocess.run(argv, cwd=where, env=fresh_env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise DemoFailure(f"{shell_join(shown)} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        s.show(done.stdout.strip())
    lines = (deploy / "wine-3" / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pinned = [line.split()[0] for line in lines if line and not line.startswith("#")]
    names = {
        p.name.split("-")[0].lower().replace("_", "-") for p in venv.glob("lib/python3*/site-packages/*.dist-info")
    }
    missing = [p for p in pinned if "==" in p and p.split("==")[0] not in names]
    expect(not missing, f"the fresh environment should hold every pinned package: {missing}")
    s.ok(
        f"a fresh virtual environment with the lock's {len(pinned)} packages (conveyor's wheel among them), "
        "pip check clean"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["venv/bin/python", "wine-3/serve.py", "--port", str(port)]
    print(_style(f"  {deploy.name}$ " + shell_join(argv) + " &", "1;36"))
    s.commands += 1
    log = s.root / "bundle-server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(venv / "bin" / "python"), *argv[1:]], cwd=deploy, env=fresh_env, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise DemoFailure(f"the bundle's server did not start: {log.read_text()}")
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        columns, rows = test_rows(s)
        with (s.project / "data/train_test/test.csv").open(encoding="utf-8", newline="") as handle:
            labels = [int(row["cultivar"]) for row in csv.DictReader(handle)]
        answer = httpx.post(
            f"{url}/invocations", json={"dataframe_split": {"columns": columns, "data": rows}}, timeout=30
        )
        expect(answer.status_code == 200, f"the bundle's server should answer: {answer.text}")
        predicted = [int(v) for v in answer.json()["predictions"]]
        right = sum(p == y for p, y in zip(predicted, labels, strict=True))
        expect(right / len(labels) > 0.8, f"the bundle's model should predict like wine:3: {right}/{len(labels)}")
        expect(not (deploy / ".conveyor").exists(), "a bundle needs no workspace")
        s.ok(
            f"served from the unpacked archive in the fresh environment, no workspace or registry: {right} of "
            f"{len(labels)} test wines right, as wine:3 in production"
        )
        s.say("(tests/test_build.py also runs hadolint on the Dockerfile and kubernetes-validate on the manifests)")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def dashboard(t: Story, keep_up: bool) -> None:
    """Act ten: ``conveyor ui`` on this project, its pages read back over HTTP."""
    import socket

    import httpx

    s = t.s
    s.heading(
        "Act ten: the dashboard",
        """
        conveyor ui serves all of it in a browser, offline: the pipeline's DAG (live while a run
        is in progress), the runs with their params and metrics, the checks and their reports,
        the registry with each version's lineage and the audit history, what is deployed (with
        promote and roll back behind a token), and the team's delivery metrics (DORA).
        """,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token_file = s.root / "ui-token"
    token_file.write_text(os.urandom(16).hex())
    argv = ["ui", "--port", str(port), "--token-file", str(token_file)]
    print(_style("  $ " + shell_join(["conveyor", *argv]) + " &", "1;36"))
    s.commands += 1
    server = subprocess.Popen(
        [str(CONVEYOR), *argv], cwd=s.project, env=s.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/static/app.css", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    problem = server.stderr.read() if server.stderr else ""
                    raise DemoFailure(f"conveyor ui did not start: {problem}") from None
                time.sleep(0.1)
        states = httpx.get(url + "/api/pipeline", timeout=30).json()["states"]
        expect(set(STAGES) <= set(states), f"the dashboard's DAG should show every stage: {sorted(states)}")
        s.show("pipeline: " + ", ".join(f"{name} {state}" for name, state in states.items()))
        paths = ("/", "/runs", "/models", "/deployments", "/stats")
        pages = {path: httpx.get(url + path, timeout=60) for path in paths}
        broken = [path for path, answer in pages.items() if answer.status_code != 200]
        expect(not broken, f"dashboard pages should answer: {broken}")
        expect("wine" in pages["/models"].text, "the dashboard should list the wine model")
        runs = re.search(r"<h1>Runs <small>(\d+)</small>", pages["/runs"].text)
        expect(runs is not None and int(runs.group(1)) > 0, "the dashboard should list the recorded runs")
        figures = {
            name: re.sub(r"<[^>]+>", "", found.group(1)).strip()
            for name in ("deploys-per-week", "lead-time", "failure-rate", "time-to-restore")
            if (found := re.search(rf'id="{name}">(.*?)</p>', pages["/stats"].text, re.S))
        }
        expect(len(figures) == 4, f"the delivery page should show the four DORA figures: {figures}")
        s.show(
            f"runs recorded: {runs.group(1) if runs else '?'}; deployments per week {figures['deploys-per-week']}, "
            f"lead time {figures['lead-time']}, change failure rate {figures['failure-rate']}, "
            f"time to restore {figures['time-to-restore']}"
        )
        s.ok(f"the dashboard answered every page at {url}/ (DAG, runs, registry, deployments, DORA)")
        if keep_up:
            print()
            print(_style(f"  The dashboard is up at {url}/ — actions need the token in {token_file}", "1"))
            print("  Ctrl-C ends the demo.")
            try:
                server.wait()
            except KeyboardInterrupt:
                pass
        else:
            s.say(f"(it served at {url}/; make demo UI=1 keeps it up)")
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def summary(t: Story, remote: Remote, seconds: float, kept: Path | None) -> None:
    s = t.s
    pointers = sum(len((s.project / f"{rel}.cvy").read_bytes()) for rel in (WINE, SPLITS))
    data = sum(len(d) for d in t.v2.values())
    s.heading("Summary", "")
    for line in (
        f"versioned real data ({len(t.samples)} wines) next to git: {data:,} bytes of CSV behind "
        f"{pointers} bytes of pointers in git",
        "status and diff showed what changed, per file inside folders, as text and as JSON",
        "checkout travelled between versions, restoring exact bytes from the local cache",
        "gc --all-commits dropped the abandoned attempt and kept all history; verify re-hashed all",
        "hardlinks saved disk space, unprotect made a file editable again",
        "checkout refused to discard unsaved work; bad input got a one-line error and exit code",
        f"a {len(STAGES)}-stage pipeline (cmd, call and foreach stages) turned the data into a model",
        "changing one param re-ran only the 2 stages that read it; diffs showed params, metrics, plots",
        "going back restored the earlier model from the run cache, byte for byte, without training",
        "run --verify reproduced every stage exactly; a failing stage got exit 1, its name and its log",
        "every run is on record: runs list and runs compare",
        f"push sent {remote.pushed:,} objects to a remote as {plural(remote.packs, 'pack')}; a second push sent "
        "nothing",
        "after the cache was deleted, pull brought every file back byte for byte; verify agreed",
        "a fresh clone's run --pull restored the pipeline from the run cache, training nothing",
        "four check stages guarded the pipeline; a worse model was stopped by the champion/challenger gate",
        "conveyor check found rows leaked from train into test and exited 1",
        "the registry recorded wine:1 with its lineage and checks; the policy let it into production",
        "a model that failed its gate was refused production; a rollback was recorded like any move",
        "conveyor deliver took a better model through a canary to production under load, 0 failed requests",
        "a worse model was stopped at the gate by deliver; the server never answered with it",
        "monitoring found drift in the live traffic and started a retraining delivery",
        "the pipeline ran again on a two-worker Dask cluster and reproduced every output byte for byte",
        "ci init wrote the CI workflow; report --md wrote the pull-request comment for a branch",
        "deliver built a bundle of production; a rebuild gave the same bytes; it served from a fresh venv",
        "the dashboard showed the DAG, the runs, the registry, the deployments and the DORA figures",
    ):
        print(f"  {CHECK} {line}")
    print()
    print(f"  {s.commands} real commands, every outcome checked, in {seconds:.1f} s.")
    if kept is not None:
        print(f"  The project is kept in {kept}")


def build_story(s: Session) -> Story:
    header, samples = wine_samples()
    first, batch = samples[:160], samples[160:]
    glitched = [*batch[:5], batch[4], *batch[5:]]  # the export repeated one row
    v1 = make_state(header, first, {"train": 0.8, "test": 0.2})
    attempt = make_state(header, [*first, *glitched], {"train": 0.7, "val": 0.15, "test": 0.15})
    v2 = make_state(header, list(dict.fromkeys([*first, *glitched])), {"train": 0.7, "val": 0.15, "test": 0.15})
    expect(len(set(samples)) == len(samples), "the wine data set itself should have no duplicate rows")
    return Story(s, header, samples, v1, attempt, v2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the demo project and print where it is")
    parser.add_argument("--ui", action="store_true", help="keep the dashboard up at the end, until Ctrl-C")
    args = parser.parse_args(argv)
    if not CONVEYOR.exists():
        print(f"DEMO FAILED: no conveyor command at {CONVEYOR}; run 'make demo' to install it", file=sys.stderr)
        return 1
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="conveyor-demo-"))
    print(_style("Conveyor demo: continuous delivery for ML: data versioning, a pipeline, a remote, gates", "1"))
    print(f"  (a throw-away project in {root / 'wine-project'})")
    failed = False
    try:
        session = Session(root)
        story = build_story(session)
        steps: list[Callable[[Story], None]] = [data_v1, data_v2, compare, housekeeping, time_travel, links, safety]
        setup(session)
        for step in steps:
            step(story)
        lab = Lab(runs={})
        pipeline_setup(story)
        for act in (pipeline_first_run, pipeline_experiment, pipeline_revert):
            act(story, lab)
        pipeline_verify(story)
        pipeline_failure(story, lab)
        pipeline_runs(story, lab)
        remote = remote_setup(story)
        remote_push(story, remote)
        remote_restore(story, remote)
        remote_clone(story, lab, remote)
        gates_setup(story)
        gates_stop_a_worse_model(story)
        gates_stop_leaked_rows(story)
        registry_first_release(story)
        registry_refusal(story)
        registry_new_release(story)
        delivery_loop(story)
        on_a_cluster(story)
        pull_request(story)
        build_step(story)
        dashboard(story, args.ui)
        summary(story, remote, time.perf_counter() - started, root if args.keep else None)
    except DemoFailure as exc:
        failed = True
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        print(f"The project is kept for inspection in {root}", file=sys.stderr)
    finally:
        if not failed and not args.keep:
            shutil.rmtree(root, onerror=_force_remove)
    return 1 if failed else 0


def _force_remove(func: Callable[[str], object], path: str, _exc: object) -> None:
    """rmtree helper: make read-only cache files and folders writable, then retry."""
    os.chmod(os.path.dirname(path), 0o755)
    if os.path.lexists(path) and not os.path.islink(path):
        os.chmod(path, 0o755)
    func(path)


if __name__ == "__main__":
    sys.exit(main())
