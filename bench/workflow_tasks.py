"""The trivial tasks of ``bench_workflow.py``: the Python functions both tools run, and the Luigi side.

``bench_workflow.py`` copies this file into each tool's fresh work folder, next to the generated pipeline:

* conveyor's ``call:`` stages run ``workflow_tasks:write_task`` and ``workflow_tasks:gather_task`` (conveyor
  imports the module from the workspace, in a child process per stage, forked by its fork server);
* Luigi runs it as a script, in Luigi's own venv: ``python workflow_tasks.py luigi --shape fanin --n 500
  --workers 2`` builds the same graph of Luigi tasks, whose ``run()`` calls the same two functions, with
  ``luigi.build(..., local_scheduler=True, workers=W)``, and prints one JSON line with what ran.

The shapes (N is the ``--n``):

* ``fanin``: N independent tasks ``w@i`` writing ``out/wIIIII.txt``, plus ``gather`` reading all N and
  writing ``out/all.txt``: N + 1 tasks;
* ``chain``: N tasks in a line; task i reads ``out/c(i-1).txt`` (checking what task i-1 wrote) and writes
  ``out/cIIIII.txt``.

This module imports nothing but the standard library at import time (Luigi only in ``luigi_main``), so that
conveyor's stage processes, which import it, pay for nothing else.
"""

from __future__ import annotations

import os

OUT_DIR = "out"
SHAPES = ("fanin", "chain")


def wide_out(i: int) -> str:
    return f"{OUT_DIR}/w{i:05d}.txt"


def chain_out(i: int) -> str:
    return f"{OUT_DIR}/c{i:05d}.txt"


GATHER_OUT = f"{OUT_DIR}/all.txt"


def task_text(i: int) -> str:
    return f"task {i}\n"


def gather_text(n: int) -> str:
    return f"gathered {n} tasks, ids summing to {n * (n - 1) // 2}\n"


def expected_outputs(shape: str, n: int) -> dict[str, str]:
    """Every output file of the shape and what it must hold once everything ran."""
    if shape == "chain":
        return {chain_out(i): task_text(i) for i in range(n)}
    expected = {wide_out(i): task_text(i) for i in range(n)}
    expected[GATHER_OUT] = gather_text(n)
    return expected


# ------------------------------------------------------------------------------------- the task bodies


def write_task(out: str, i: int, dep: str | None = None) -> None:
    """Write ``task i`` to ``out``; in a chain, first check that ``dep`` holds what task i - 1 wrote."""
    if dep is not None:
        with open(dep, encoding="utf-8") as handle:
            found = handle.read()
        if found != task_text(i - 1):
            raise RuntimeError(f"{dep} holds {found!r}, not what task {i - 1} writes")
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(task_text(i))


def gather_task(out: str, n: int) -> None:
    """Read the N fan-in outputs, check each, and write one line about them to ``out``."""
    total = 0
    for i in range(n):
        with open(wide_out(i), encoding="utf-8") as handle:
            found = handle.read()
        if found != task_text(i):
            raise RuntimeError(f"{wide_out(i)} holds {found!r}, not what task {i} writes")
        total += i
    if total != n * (n - 1) // 2:
        raise RuntimeError("the ids do not add up")
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(gather_text(n))


def run_bodies(shape: str, n: int) -> None:
    """Every task body of the shape, one after the other, in this process (in the current folder)."""
    os.makedirs(OUT_DIR, exist_ok=True)
    if shape == "chain":
        for i in range(n):
            write_task(chain_out(i), i, chain_out(i - 1) if i else None)
        return
    for i in range(n):
        write_task(wide_out(i), i)
    gather_task(GATHER_OUT, n)


def conveyor_kwargs(shape: str, n: int) -> list[tuple[str, dict[str, object]]]:
    """(function, kwargs) of each task, in an order they can run in: what conveyor's stages are given."""
    if shape == "chain":
        calls: list[tuple[str, dict[str, object]]] = []
        for i in range(n):
            kwargs: dict[str, object] = {"out": chain_out(i), "i": i}
            if i:
                kwargs["dep"] = chain_out(i - 1)
            calls.append(("write_task", kwargs))
        return calls
    return [("write_task", {"out": wide_out(i), "i": i}) for i in range(n)] + [
        ("gather_task", {"out": GATHER_OUT, "n": n})
    ]


# ------------------------------------------------------------------------------------------- Luigi side


def luigi_main(argv: list[str]) -> int:
    """Build the shape's Luigi task graph with the local scheduler; print one JSON line of what happened."""
    import argparse
    import json

    import luigi
    from luigi.execution_summary import LuigiStatusCode

    parser = argparse.ArgumentParser(prog="workflow_tasks.py luigi")
    parser.add_argument("--shape", choices=SHAPES, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    class WideTask(luigi.Task):
        i = luigi.IntParameter()

        def output(self) -> luigi.LocalTarget:
            return luigi.LocalTarget(wide_out(self.i))

        def run(self) -> None:
            write_task(wide_out(self.i), self.i)

    class GatherTask(luigi.Task):
        n = luigi.IntParameter()

        def requires(self) -> list[WideTask]:
            return [WideTask(i=i) for i in range(self.n)]

        def output(self) -> luigi.LocalTarget:
            return luigi.LocalTarget(GATHER_OUT)

        def run(self) -> None:
            gather_task(GATHER_OUT, self.n)

    class ChainTask(luigi.Task):
        i = luigi.IntParameter()

        def requires(self) -> list[ChainTask]:
            return [ChainTask(i=self.i - 1)] if self.i else []

        def output(self) -> luigi.LocalTarget:
            return luigi.LocalTarget(chain_out(self.i))

        def run(self) -> None:
            write_task(chain_out(self.i), self.i, chain_out(self.i - 1) if self.i else None)

    os.makedirs(OUT_DIR, exist_ok=True)
    root = GatherTask(n=args.n) if args.shape == "fanin" else ChainTask(i=args.n - 1)
    result = luigi.build([root], workers=args.workers, local_scheduler=True, detailed_summary=True)
    summary: dict[str, object] = {"status": result.status.name}
    try:
        from luigi.execution_summary import _summary_dict

        counts = _summary_dict(result.worker)
        for key in ("completed", "already_done", "failed", "upstream_failure", "not_run", "still_pending_ext"):
            summary[key] = len(counts.get(key, ()))
    except Exception as exc:  # a private helper: report it rather than fail the run
        summary["summary_error"] = repr(exc)
    print("WORKFLOW-RESULT " + json.dumps(summary), flush=True)
    return 0 if result.status in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY) else 1


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2 or sys.argv[1] != "luigi":
        sys.exit("usage: python workflow_tasks.py luigi --shape fanin|chain --n N [--workers W]")
    sys.exit(luigi_main(sys.argv[2:]))
