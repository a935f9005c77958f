"""``run``: bring the pipeline's outputs up to date, running only the stages that are stale.

The main thread owns every decision and every write (hashing, the object store, the lock,
the run cache, the run store); worker threads only wait on child processes. A stage is
decided when all its upstream stages are done, with the hashes of what they actually
wrote, so a stage whose upstream re-ran but produced the same bytes does not run.

After each stage, its outputs are stored, then its run-cache entry, then the lock is
rewritten (atomically): a run killed at any moment leaves a lock that describes only
finished stages, and the next run picks up from there.
"""

from __future__ import annotations

import functools
import gc
import heapq
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import TYPE_CHECKING, Protocol

from conveyor import _fs
from conveyor.errors import ConveyorError, MissingFileError
from conveyor.pipeline._dag import Dag
from conveyor.pipeline._executor import Loop, Outcome, StageProcess, Terminal
from conveyor.pipeline._forkserver import ForkServer
from conveyor.pipeline._freshness import Facts, Reason, file_stamp, same_value, stale_reasons
from conveyor.pipeline._live import LivePublisher
from conveyor.pipeline._lock import LOCK_FILE, Fact, Lock, LockEntry
from conveyor.pipeline._runcache import RunCache, fingerprint
from conveyor.pipeline._spec import Stage, load_pipeline
from conveyor.versioning._repo import Repo
from conveyor.workspace import Workspace, private_dir

if TYPE_CHECKING:
    from conveyor.pipeline._cluster_executor import Cluster
    from conveyor.store import RunRecord, RunStore, StageRecord


class StageFailedError(ConveyorError):
    """One or more stages failed; the lock records every stage that finished."""

    exit_code = 1


class RunTimedOutError(StageFailedError):
    """The whole run took longer than its timeout; the lock records every stage that finished."""


@dataclass(slots=True)
class StageResult:
    """What happened to one stage in a run."""

    name: str
    status: str  # ran, restored, up-to-date, frozen, failed, skipped, interrupted, would-run
    reasons: list[str] = field(default_factory=list)
    duration: float = 0.0
    attempts: int = 0
    error: str | None = None
    outs: dict[str, str] = field(default_factory=dict)  # path -> hash
    deps: dict[str, str] = field(default_factory=dict)  # path -> hash the outputs were made from
    log: str | None = None  # the stage's log file, relative to the workspace root
    worker: str | None = None  # the cluster worker that ran it (run --executor)


@dataclass(slots=True)
class RunReport:
    """Every selected stage's result, in the order they finished (or were decided)."""

    run_id: str | None
    stages: list[StageResult] = field(default_factory=list)
    dry_run: bool = False

    def with_status(self, *statuses: str) -> list[StageResult]:
        return [s for s in self.stages if s.status in statuses]

    @property
    def ok(self) -> bool:
        return not self.with_status("failed", "skipped", "interrupted")


def run(
    targets: list[str] | None = None,
    *,
    force: bool = False,
    single_stage: bool = False,
    downstream: bool = False,
    dry_run: bool = False,
    jobs: int | None = None,
    keep_going: bool = False,
    run_cache: bool = True,
    pull: bool = False,
    remote: str | None = None,
    quiet: bool = False,
    on_stage: Callable[[StageResult], None] | None = None,
    timeout: float | None = None,
    executor: str | None = None,
    workspace: Workspace | None = None,
) -> RunReport:
    """Run the stale stages of ``conveyor.yaml`` (all, or ``targets`` and what they need).

    ``targets`` are stage names (``name`` also selects every ``name@...``) or output paths.
    ``single_stage`` runs only the targets; ``downstream`` the targets and what depends on
    them. ``force`` runs the selected stages even when up to date. ``dry_run`` only reports
    what would run. A failing stage stops the run (``keep_going`` lets independent stages
    finish) and raises :class:`StageFailedError` after the lock is written. ``timeout``: seconds
    the whole run may take; then its running stages are stopped, the lock keeps every stage that
    finished, and :class:`RunTimedOutError` is raised. ``executor``: ``dask://HOST:PORT`` runs the
    stages on that Dask cluster, whose workers exchange inputs and outputs with this workspace
    through the remote (``remote``, or the default one); ``jobs`` then defaults to the cluster's
    worker threads.
    """
    ws = workspace or Workspace.find()
    if jobs is not None and jobs < 1:
        from conveyor.errors import UsageError

        raise UsageError(f"-j {jobs}: needs at least one job", hint="pass -j 1 or more")
    if timeout is not None and timeout <= 0:
        from conveyor.errors import UsageError

        raise UsageError(f"--timeout {timeout:g}: must be positive", hint="seconds the whole run may take, e.g. 3600")
    with ws.lock(), Repo(ws) as repo:
        pipeline = load_pipeline(ws)
        dag = Dag.build(pipeline)
        selected = dag.select(dag.normalize_targets(ws, targets), single_stage=single_stage, downstream=downstream)
        lock = Lock.read(ws.root / LOCK_FILE, conveyor_dir=ws.conveyor_dir)
        if dry_run:
            from conveyor.pipeline._status import compute_status

            report = RunReport(None, dry_run=True)
            for entry in compute_status(dag, lock, Facts(repo), selected, force=force).stages:
                status = "would-run" if entry.stale else entry.state
                report.stages.append(StageResult(entry.name, status, [str(r) for r in entry.reasons]))
            return report
        from conveyor.notify import notifier_for

        notifier_for(ws.root)  # a broken notify: section stops here, with its line, not silently later
        cluster = None
        if executor is not None and executor != "local":
            from conveyor.pipeline._cluster_executor import Cluster

            cluster = Cluster(repo, executor, remote)
        jobs = jobs or (cluster.workers() if cluster is not None else os.cpu_count() or 1)
        runner = _Runner(
            ws,
            repo,
            dag,
            lock,
            selected,
            jobs=jobs,
            force=force,
            keep_going=keep_going,
            run_cache=run_cache,
            quiet=quiet,
            on_stage=on_stage,
        )
        runner.deadline = None if timeout is None else time.monotonic() + timeout
        runner.timeout = timeout
        runner.cluster = cluster
        try:
            if pull:
                runner.fetcher = _pull_inputs(repo, dag, lock, selected, remote, run_cache=run_cache)
            return runner.execute(targets or [])
        finally:
            if cluster is not None:
                cluster.close()


def _pull_inputs(
    repo: Repo, dag: Dag, lock: Lock, selected: list[str], remote: str | None, *, run_cache: bool
) -> Callable[[list[Fact]], None]:
    """Before a ``run --pull``: fetch the run cache and what the selected stages read and wrote
    (by conveyor.lock and the pointer files), and check out tracked data deps that are missing.
    Returns the fetcher the runner uses for run-cache outputs it finds missing later."""
    from conveyor.remote._transfer import Root, fetch_into

    ws = repo.ws
    roots: list[Root] = []
    deps: set[str] = set()
    for name in selected:
        stage = dag.stage(name)
        deps.update(stage.deps)
        entry = lock.get(name)
        for out in entry.outs if entry is not None else ():
            roots.append(Root(out.hash, out.kind, out.path))
    pointer_deps = []
    for item in repo.tracked():
        if any(item.rel == d or d.startswith(item.rel + "/") or item.rel.startswith(d + "/") for d in deps):
            roots.append(Root(item.pointer.digest, item.pointer.kind, item.rel))
            if not os.path.lexists(item.target):
                pointer_deps.append(str(item.target))
    fetch_into(repo, None, remote=remote, run_cache=run_cache, roots=roots)
    if pointer_deps:
        from conveyor.versioning._checkout import checkout

        checkout(list(pointer_deps), workspace=ws)

    def fetch_outputs(outs: list[Fact]) -> None:
        fetch_into(repo, None, remote=remote, roots=[Root(o.hash, o.kind, o.path) for o in outs])

    return fetch_outputs


class _Runner:
    def __init__(
        self,
        ws: Workspace,
        repo: Repo,
        dag: Dag,
        lock: Lock,
        selected: list[str],
        *,
        jobs: int,
        force: bool,
        keep_going: bool,
        run_cache: bool,
        quiet: bool,
        on_stage: Callable[[StageResult], None] | None,
    ) -> None:
        self.ws = ws
        self.repo = repo
        self.dag = dag
        self.lock = lock
        self.selected = selected
        self.jobs = jobs
        self.force = force
        self.keep_going = keep_going
        self.use_run_cache = run_cache
        self.on_stage = on_stage
        self.facts = Facts(repo)
        self.run_cache = RunCache(ws.cache_dir / "runs")
        self.cancel = threading.Event()
        self.deadline: float | None = None  # time.monotonic() by which the whole run must end
        self.timeout: float | None = None
        self.timed_out = False
        self.terminal = Terminal(prefix=jobs > 1 and len(selected) > 1, quiet=quiet)
        self.report = RunReport(None)
        self.store: RunStore | None = None
        self._record: RunRecord | None = None  # the run, until something happens worth recording
        self._quiet_stages: list[StageRecord] = []  # up to date or frozen, before that
        self.fetcher: Callable[[list[Fact]], None] | None = None  # run --pull: get missing run-cache outputs
        self.run_id: str | None = None
        self.forkserver: ForkServer | None = None
        self._logs_dir: Path | None = None
        # results decided while the stages they follow are being recorded: reported after those
        self._held: list[tuple[StageResult, float]] | None = None
        self._env = dict(os.environ)  # read once: copying os.environ for each of 5,000 stages cost 0.04 ms each
        self._journal = _Journal()
        self.cluster: Cluster | None = None
        self._no_forkserver = os.environ.get("CONVEYOR_NO_FORKSERVER") == "1"

    # -- the run record -------------------------------------------------------------------

    def _start_record(self, targets: list[str]) -> None:
        """Prepare the run's record. It reaches the database when the first stage runs or is
        restored (:meth:`_open_record`): a run that finds everything up to date records nothing
        and never imports SQLAlchemy, so a no-op ``conveyor run`` stays fast."""
        from conveyor.store._records import RunRecord, environment_info, git_state, new_run_id

        commit, dirty = git_state(self.ws.root) if self.ws.has_scm else (None, False)
        self.run_id = new_run_id()
        self.report.run_id = self.run_id
        params: dict[str, object] = {}
        for stage_name in self.selected:
            stage = self.dag.stage(stage_name)
            try:
                for file, values in self.facts.params(stage, strict=False).items():
                    prefix = "" if file == "params.yaml" else f"{file}:"
                    params.update({f"{prefix}{k}": v for k, v in values.items() if not _is_absent(v)})
            except ConveyorError:
                pass
        self._record = RunRecord(
            id=self.run_id,
            started_at=time.time(),
            commit=commit,
            dirty=dirty,
            targets=targets,
            command=" ".join(["conveyor", *sys.argv[1:]]) if sys.argv else "conveyor run",
            params=params,
            environment=environment_info(),
        )

    def _open_record(self) -> None:
        """Record the run (once), with the quiet stages decided before anything happened."""
        if self.store is not None or self._record is None or self.run_id is None:
            return
        from conveyor.store import RunStore

        with interrupts_deferred():
            self.store = RunStore.open(self.ws)
            self.store.start_run(self._record)
            for stage in self._quiet_stages:
                self.store.record_stage(self.run_id, stage)
            self._quiet_stages.clear()
        from conveyor.notify import emit

        emit(self.ws.root, "run.started", run_id=self.run_id, commit=self._record.commit, stages=self.selected)

    def _record_stage(self, result: StageResult, started_at: float) -> None:
        if self.run_id is None or self._record is None:
            return
        from conveyor.store._records import StageRecord

        stage = StageRecord(
            name=result.name,
            status=result.status,
            started_at=started_at,
            duration=result.duration,
            attempts=max(result.attempts, 1),
            outs=dict(result.outs),
            error=result.error,
            deps=dict(result.deps),
        )
        if self.store is None and result.status in ("up-to-date", "frozen"):
            self._quiet_stages.append(stage)
            return
        self._open_record()
        self._journal.records.append(stage)

    def _finish_record(self, status: str) -> None:
        if self.store is None or self.run_id is None:
            return  # nothing ran or was restored: nothing to record
        metrics: dict[str, object] = {}
        try:
            from conveyor.pipeline._metrics import read_metrics

            metrics = dict(read_metrics(self.ws, self.dag.pipeline))
            # only the metrics of stages this run vouches for (ran, restored, or up to date against the
            # lock): a file of a stage that failed, or that was not selected, holds another run's numbers
            current = {s.name for s in self.report.stages if s.status in ("ran", "restored", "up-to-date", "frozen")}
            files = {
                out.path for stage in self.dag.pipeline.stages.values() for out in stage.outs if out.kind == "metric"
            }
            vouched = {out.path for name in current for out in self.dag.stage(name).outs if out.kind == "metric"}
            stale = files - vouched
            metrics = {k: v for k, v in metrics.items() if not any(k.startswith(f"{p}:") for p in stale)}
        except (ConveyorError, ImportError):
            pass
        with interrupts_deferred():
            self.store.finish_run(self.run_id, status=status, ended_at=time.time(), metrics=metrics)
            self.store.close()
            self.store = None
        from conveyor.notify import emit

        failed = [{"stage": s.name, "error": s.error} for s in self.report.with_status("failed", "interrupted")]
        event = "run.succeeded" if status == "succeeded" else "run.failed"
        emit(self.ws.root, event, run_id=self.run_id, status=status, failed=failed, metrics=metrics)

    # -- the scheduler --------------------------------------------------------------------

    def execute(self, targets: list[str]) -> RunReport:
        self._start_record(targets)
        status = "failed"
        # the parsed pipeline and lock live as long as the run: a collection of the oldest
        # generation need not walk them (with thousands of stages that cost 0.1 ms a stage)
        gc.freeze()
        try:
            self._schedule()
            status = "succeeded" if self.report.ok else "failed"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            gc.unfreeze()
            self._finish_record(status)
        if self.timed_out:
            stopped = [s.name for s in self.report.with_status("interrupted")]
            timed_out = RunTimedOutError(
                f"the run timed out after {self.timeout:g} s"
                + (f": stopped {', '.join(stopped[:5])}" if stopped else ""),
                hint="finished stages are recorded and will not re-run; run again (or with a longer --timeout)",
            )
            timed_out.report = self.report  # type: ignore[attr-defined]
            raise timed_out
        failed = self.report.with_status("failed")
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            log = f"; its log: {first.log}" if first.log else ""
            err = StageFailedError(
                f"stage {first.name!r} failed: {first.error}{more}",
                hint=f"fix it and run again; finished stages are recorded and will not re-run{log}",
            )
            err.report = self.report  # type: ignore[attr-defined]
            raise err
        return self.report

    def _schedule(self) -> None:
        chosen = set(self.selected)
        rank = {name: i for i, name in enumerate(self.selected)}
        needs = {name: self.dag.upstream[name] & chosen for name in self.selected}
        unmet = {name: len(needs[name]) for name in self.selected}
        dependents: dict[str, list[str]] = {name: [] for name in self.selected}
        for name in self.selected:
            for up in needs[name]:
                dependents[up].append(name)
        ready = [rank[name] for name in self.selected if not unmet[name]]  # a heap: decided in pipeline order
        heapq.heapify(ready)
        undecided = set(self.selected)
        blocked: set[str] = set()
        # decided to run, by (-priority, when queued): a heap, so starting a stage costs the same
        # with 5,000 ready stages as with 5
        queue: list[tuple[int, int, str, LockEntry, list[Reason]]] = []
        queued = itertools.count()
        running: dict[str, tuple[LockEntry, list[Reason], float, _Startable]] = {}
        # local stages run on the loop, in this thread; the others (on a cluster) in threads of
        # their own, whose outcomes come back through `from_threads`
        loop = Loop()
        live = LivePublisher(self.ws.conveyor_dir, self.run_id or "run")
        done: list[tuple[str, Outcome]] = []
        from_threads: SimpleQueue[tuple[str, Outcome]] = SimpleQueue()
        pool: ThreadPoolExecutor | None = None
        last_end = time.monotonic()
        stop = False

        def finished_ok(name: str) -> None:
            for down in dependents[name]:
                unmet[down] -= 1
                if not unmet[down]:
                    heapq.heappush(ready, rank[down])

        def block(name: str) -> None:
            """``name`` will not finish: everything downstream of it is skipped, now."""
            blocked.add(name)
            frontier = [name]
            while frontier:
                for down in dependents[frontier.pop()]:
                    if down in undecided:
                        undecided.discard(down)
                        blocked.add(down)
                        up = sorted(needs[down] & blocked)[0]
                        self._emit(StageResult(down, "skipped", error=f"upstream stage {up!r} did not finish"), 0.0)
                        frontier.append(down)

        def ended_in_thread(name: str, future: Future[Outcome]) -> None:
            try:
                outcome = future.result()
            except Exception as exc:  # a bug or an OS error in the worker: this stage failed, not the run
                outcome = Outcome(False, 1, 0.0, error=f"{type(exc).__name__}: {exc}")
            from_threads.put((name, outcome))
            loop.wake()

        def start_queued() -> None:
            nonlocal pool
            while queue and len(running) < self.jobs and not stop:
                if not self._fits(queue[0][2], list(running)):
                    break  # what is ready needs more CPUs than are free now: wait for a stage to end
                _priority, _seq, name, entry, reasons = heapq.heappop(queue)
                proc = self._prepare(name, entry)
                running[name] = (entry, reasons, time.time(), proc)
                live.update(tuple(running))
                if isinstance(proc, StageProcess):
                    proc.start(loop, functools.partial(lambda n, outcome: done.append((n, outcome)), name))
                else:
                    pool = pool or ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="stage")
                    pool.submit(proc.run).add_done_callback(functools.partial(ended_in_thread, name))

        def decide_ready() -> None:
            nonlocal stop
            while ready and not stop:
                name = self.selected[heapq.heappop(ready)]
                if name not in undecided:
                    continue
                undecided.discard(name)
                decision = self._decide(name)
                if decision is None:
                    finished_ok(name)
                elif isinstance(decision, StageResult):
                    self._emit(decision, time.time())
                    block(name)
                    stop = stop or not self.keep_going
                else:
                    stage_name, entry, reasons = decision
                    priority = -self.dag.stage(stage_name).priority
                    heapq.heappush(queue, (priority, next(queued), stage_name, entry, reasons))

        try:
            while ready or queue or running or (stop and undecided):
                decide_ready()
                start_queued()
                if self._journal.due():
                    self._flush()  # while the stages just started run
                why = "the run timed out" if self.timed_out else "the run stopped after a failure"
                if stop and queue:
                    for _priority, _seq, name, _entry, _reasons in sorted(queue):
                        self._emit(StageResult(name, "skipped", error=why), 0.0)
                        block(name)
                    queue.clear()
                if stop and not running:
                    for name in sorted(undecided, key=rank.__getitem__):
                        self._emit(StageResult(name, "skipped", error=why), 0.0)
                    undecided.clear()
                    ready.clear()
                if not running:
                    if not ready and not queue and not stop:
                        break  # nothing can start (cannot happen with a valid DAG)
                    continue
                if not done and from_threads.empty():
                    loop.run_once(self._journal.IDLE if self._journal.dirty else 0.2)
                    live.flush()  # what changed since the last write, now that stages take a while
                while not from_threads.empty():
                    done.append(from_threads.get())
                now = time.monotonic()
                if done:
                    last_end = now
                elif self._journal.dirty and now - last_end >= self._journal.IDLE:
                    self._flush()  # the running stages take a while: what finished before them is kept now
                    last_end = now
                if self.deadline is not None and not self.timed_out and now > self.deadline:
                    self.timed_out = stop = True
                    self.cancel.set()  # stages on a cluster stop on that; local ones here
                    for _entry, _reasons, _started, proc in running.values():
                        if isinstance(proc, StageProcess):
                            proc.stop()
                # what ended is stored first, and the stages it let start (or the next in the queue)
                # are started, so that they run while it is recorded
                settled = []
                for name, outcome in done:
                    entry, reasons, started_at, _proc = running.pop(name)
                    outs = self._settle(name, outcome)
                    if outs is not None:
                        finished_ok(name)
                    settled.append((name, entry, reasons, outcome, started_at, outs))
                done.clear()
                live.update(tuple(running))
                if all(outs is not None for *_rest, outs in settled):
                    self._held = []  # what is decided now is reported after these, as in pipeline order
                    decide_ready()
                    start_queued()
                held, self._held = self._held, None
                for name, entry, reasons, outcome, started_at, outs in settled:
                    result = self._complete(name, entry, reasons, outcome, started_at, outs)
                    if result.status != "ran":
                        block(name)
                        stop = stop or not self.keep_going
                for result, started_at in held or ():
                    self._emit(result, started_at)
        except KeyboardInterrupt:
            self.cancel.set()
            self._release_held()
            for name, (_entry, _reasons, started_at, proc) in running.items():
                if isinstance(proc, StageProcess):
                    proc.kill_now()  # its process group is stopped and waited for
                self._emit(StageResult(name, "interrupted", error="interrupted"), started_at)
            raise
        finally:
            self.cancel.set()
            self._release_held()
            for _entry, _reasons, _started, proc in running.values():
                if isinstance(proc, StageProcess):
                    proc.kill_now()  # after an error of conveyor's own: no stage is left running
            if pool is not None:
                pool.shutdown(wait=True)  # stages on a cluster see the cancel and return
            loop.close()
            live.close()
            if self.forkserver is not None:
                self.forkserver.close()
                self.forkserver = None
            self._flush()

    def _flush(self) -> None:
        """Make what finished stages left durable, in the order that keeps every state consistent:
        their objects, then their run-cache entries, .gitignore lines and the lock (which name
        those objects), then their run records."""
        journal = self._journal
        if not journal.dirty:
            return
        started = time.monotonic()
        with interrupts_deferred():
            self.repo.odb.sync()
            for key, outs in journal.run_cache:
                self.run_cache.put(key, outs)
            if journal.ignores and self.ws.has_scm:
                from conveyor.versioning._add import set_ignored

                set_ignored(journal.ignores)
            if journal.lock:
                self.lock.write()
            if journal.records and self.store is not None and self.run_id is not None:
                self.store.record_stages(self.run_id, journal.records)
            journal.clear()
        journal.flushed(time.monotonic() - started)

    def _fits(self, name: str, running: list[str]) -> bool:
        """Whether the next stage to start (the highest priority, then the earliest queued) fits
        beside the running stages' CPUs on this machine (a stage that needs more than the machine
        has runs alone). Nothing overtakes it while it waits, so a large stage is never starved
        by small ones."""
        running = [other for other in running if not self._on_cluster(other)]  # Dask places those
        if not running or self._on_cluster(name):
            return True
        available = float(os.cpu_count() or 1)
        busy = sum(self.dag.stage(other).cpus for other in running)
        return busy + self.dag.stage(name).cpus <= available + 1e-9

    def _release_held(self) -> None:
        held, self._held = self._held, None
        for result, started_at in held or ():
            self._emit(result, started_at)

    def _emit(self, result: StageResult, started_at: float) -> None:
        if self._held is not None:
            self._held.append((result, started_at))
            return
        self.report.stages.append(result)
        self._record_stage(result, started_at)
        if result.status == "failed" and self.dag.stage(result.name).call == "conveyor.checks._stage:run":
            from conveyor.notify import emit

            emit(self.ws.root, "gate.failed", run_id=self.run_id, stage=result.name, error=result.error, log=result.log)
        if self.on_stage is not None:
            self.on_stage(result)

    # -- one stage ------------------------------------------------------------------------

    def _decide(self, name: str) -> tuple[str, LockEntry, list[Reason]] | StageResult | None:
        """None when up to date (or restored); a failed result; or what to run and why."""
        stage = self.dag.stage(name)
        started = time.time()
        if stage.frozen:
            self._emit(StageResult(name, "frozen"), started)
            return None
        entry = self.lock.get(name)
        reasons, deps, params = stale_reasons(stage, entry, self.facts)
        if self.force:
            reasons.insert(0, Reason("forced", "forced"))
        if stage.always_run:
            reasons.append(Reason("always-run", "always_run is set"))
        if not reasons:
            self._emit(StageResult(name, "up-to-date"), started)
            return None
        try:
            missing = next((dep for dep in deps if isinstance(dep, str)), None)
            if missing is not None:
                raise MissingFileError(
                    f"{missing}: dependency of stage {stage.name!r} does not exist",
                    hint="create it, add the stage that writes it, or remove it from deps",
                )
            params = self.facts.params(stage, strict=True)
        except ConveyorError as exc:
            return StageResult(name, "failed", [str(r) for r in reasons], error=exc.format_message())
        candidate = LockEntry(
            cmd=stage.command,
            kwargs=dict(stage.kwargs) if stage.call else None,
            env=dict(stage.env),
            wdir=stage.wdir,
            deps=tuple(d for d in deps if isinstance(d, Fact)),
            params=params,
        )
        if (
            entry is not None
            and all(r.kind == "out-missing" for r in reasons)
            and not self.force
            and not stage.always_run
            and self._restore_recorded(stage, entry)
        ):
            # nothing it reads changed: the outputs conveyor.lock records are the answer (a fresh clone)
            result = StageResult(name, "restored", [str(r) for r in reasons], time.time() - started)
            result.outs = {o.path: o.hash for o in entry.outs}
            result.deps = {d.path: d.hash for d in entry.deps}
            self._emit(result, started)
            return None
        if self.use_run_cache and not self.force and not stage.always_run and not _persists(stage):
            restored = self._restore(stage, candidate)
            if restored is not None:
                result = StageResult(name, "restored", [str(r) for r in reasons], time.time() - started)
                result.outs = {o.path: o.hash for o in restored}
                result.deps = {d.path: d.hash for d in candidate.deps}
                self._emit(result, started)
                return None
        return name, candidate, reasons

    def _outs_key(self, stage: Stage) -> list[tuple[str, str, bool]]:
        return [(o.path, o.kind, o.cache) for o in stage.outs]

    def _restore(self, stage: Stage, candidate: LockEntry) -> list[Fact] | None:
        key = fingerprint(candidate, self._outs_key(stage))
        outs = self.run_cache.get(key)
        if outs is None or {o.path for o in outs} != {o.path for o in stage.outs}:
            return None
        from conveyor.pipeline._restore import restore_outputs

        try:
            restored = restore_outputs(self.repo, outs)
            if not restored and self.fetcher is not None:
                self.fetcher(outs)  # computed elsewhere: its outputs may be on the remote
                restored = restore_outputs(self.repo, outs)
            if not restored:
                return None  # some object is gone from the cache (gc, or a fresh clone): run it
        except ConveyorError as exc:  # a damaged object: running the stage makes the outputs anew
            self.terminal.note(f"stage {stage.name!r}: not restored from the run cache ({exc.message}); running it")
            from conveyor.pipeline._restore import drop_corrupt

            drop_corrupt(self.repo, outs)  # so that storing the new outputs writes those objects again
            return None
        candidate.outs = tuple(_with_cache(o, stage) for o in outs)
        self._ignore_outputs(stage)
        self.lock.set(stage.name, candidate)
        self._journal.lock = True
        return outs

    def _restore_recorded(self, stage: Stage, entry: LockEntry) -> bool:
        from conveyor.pipeline._restore import restore_outputs

        outs = list(entry.outs)
        try:
            if restore_outputs(self.repo, outs):
                return True
            if self.fetcher is not None:
                self.fetcher(outs)
                return restore_outputs(self.repo, outs)
        except ConveyorError as exc:
            self.terminal.note(f"stage {stage.name!r}: recorded outputs not restored ({exc.message}); running it")
        return False

    def _on_cluster(self, name: str) -> bool:
        return self.cluster is not None and self.cluster.runs_here(self.dag.stage(name)) is None

    def _prepare(self, name: str, entry: LockEntry) -> _Startable:
        self._open_record()  # before the stage starts: a run killed during it is on record
        stage = self.dag.stage(name)
        if self.cluster is not None and self._on_cluster(name):
            try:
                return self.cluster.prepare(stage, entry, self.run_id, self.cancel)
            except ConveyorError as exc:
                return _NotStarted(exc.format_message())
        for out in stage.outs:
            target = self.ws.root / out.path
            if not out.persist and os.path.lexists(target):
                _fs.remove(target)
            elif out.persist and os.path.lexists(target):
                _make_writable(self.ws, target)  # the stage must not write through links into the cache
            target.parent.mkdir(parents=True, exist_ok=True)
        log = self._logs() / f"{name}.log"
        forkserver = self._forkserver() if stage.call is not None else None
        return StageProcess(stage, self.ws.root, log, self.terminal, self.cancel, self.run_id, forkserver, self._env)

    def _logs(self) -> Path:
        """This run's folder of stage logs."""
        if self._logs_dir is None:
            self._logs_dir = private_dir(self.ws.conveyor_dir, "logs") / (self.run_id or "run")
        return self._logs_dir

    def _forkserver(self) -> ForkServer | None:
        """The run's fork server, started with its first ``call`` stage (None where fork is not available)."""
        if self.forkserver is None and hasattr(os, "fork") and not self._no_forkserver:
            try:
                self.forkserver = ForkServer(str(self.ws.root), self._env)
            except OSError as exc:
                self._no_forkserver = True
                self.terminal.note(f"call stages start an interpreter each (no fork server: {exc.strerror})")
        return self.forkserver

    def _settle(self, name: str, outcome: Outcome) -> tuple[Fact, ...] | None:
        """The outputs of a stage that ended, stored (None: it failed, or was stopped: ``outcome``
        says why). What depends on the stage may start once this is done; :meth:`_complete`
        then records it."""
        stage = self.dag.stage(name)
        if outcome.log is not None and self.cluster is not None:
            from conveyor.pipeline._cluster_executor import show_log

            show_log(self.terminal, name, outcome.log, self._logs() / f"{name}.log")
        if outcome.ok and outcome.remote_outs is not None and self.cluster is not None:
            try:
                self.cluster.bring_outputs(outcome.remote_outs)
            except ConveyorError as exc:
                outcome.ok, outcome.error = False, exc.format_message()
        if outcome.cancelled or not outcome.ok:
            return None
        missing = [o.path for o in stage.outs if not os.path.exists(self.ws.root / o.path)]
        if missing:
            outcome.ok, outcome.error = False, f"it did not write its output {missing[0]}"
            return None
        try:
            return self._store_outputs(stage)
        except ConveyorError as exc:
            outcome.ok, outcome.error = False, exc.format_message()
            return None

    def _complete(
        self,
        name: str,
        entry: LockEntry,
        reasons: list[Reason],
        outcome: Outcome,
        started_at: float,
        outs: tuple[Fact, ...] | None,
    ) -> StageResult:
        """Record a stage :meth:`_settle` settled: its lock entry, run-cache entry and result."""
        stage = self.dag.stage(name)
        log = self.ws.relpath(self._logs() / f"{name}.log")
        result = StageResult(name, "ran", [str(r) for r in reasons], outcome.duration, outcome.attempts, log=log)
        result.worker = outcome.worker
        if outcome.cancelled:
            result.status = "interrupted"
            result.error = f"the run timed out after {self.timeout:g} s" if self.timed_out else "interrupted"
        elif not outcome.ok or outs is None:
            result.status, result.error = "failed", outcome.error
        else:
            try:
                moved = self._inputs_moved(stage, entry)
            except ConveyorError as exc:
                moved = f"its inputs could not be checked ({exc.message})"
            entry.outs = outs
            if moved:
                # the stage may have read either version: record what it was decided on and no
                # outputs (nothing vouches for them), so it shows stale and runs again, and keep
                # this result out of the run cache
                self.terminal.note(f"stage {name!r}: {moved} while it ran; it will run again")
                result.reasons.append(f"{moved} while it ran")
                entry.outs = ()
            elif not _persists(stage):
                self._journal.run_cache.append((fingerprint(entry, self._outs_key(stage)), list(outs)))
            self._ignore_outputs(stage)
            self.lock.set(name, entry)
            self._journal.lock = True
            if self._journal.worth_a_flush(outcome.duration) or _persists(stage) or not self.use_run_cache:
                self._journal.urgent = True  # a kill must not lose it: only quick stages wait
            if not moved:  # outputs made from inputs that changed under them are no lineage
                result.outs = {o.path: o.hash for o in outs}
                result.deps = {d.path: d.hash for d in entry.deps}
        self._emit(result, started_at)
        return result

    def _inputs_moved(self, stage: Stage, entry: LockEntry) -> str | None:
        """What changed among the stage's deps and params since it was decided, if anything."""
        recorded = {d.path: d for d in entry.deps}
        for dep in self.facts.deps(stage, strict=False, fresh=True):
            path = dep if isinstance(dep, str) else dep.path
            before = recorded.get(path)
            if isinstance(dep, str) or before is None or before.hash != dep.hash:
                return f"dependency {path} changed"
        params = self.facts.params(stage, strict=False)
        for file, values in params.items():
            recorded = entry.params.get(file, {})
            if values.keys() != recorded.keys() or any(not same_value(v, recorded[k]) for k, v in values.items()):
                return f"params in {file} changed"
        return None

    def _store_outputs(self, stage: Stage) -> tuple[Fact, ...]:
        facts: list[Fact] = []
        with self.repo.odb.batch(durable=False) as batch:  # made durable by the next _flush
            for out in stage.outs:
                path = self.ws.root / out.path
                before = file_stamp(path)
                # a non-persistent output was removed before the stage ran: it is new
                snap = self.repo.snapshot(path, batch=batch, new_file=not out.persist)
                if snap.digest is None:
                    raise MissingFileError(f"{out.path}: output vanished while it was stored", hint="run it again")
                fact = Fact(out.path, snap.digest, snap.size, snap.kind, snap.files, out.cache, snap.executable)
                facts.append(fact)
                if before is not None and snap.kind == "file" and file_stamp(path) == before:
                    # unchanged while it was hashed: what depends on it is decided on this hash
                    self.facts.remember(Fact(out.path, snap.digest, snap.size, executable=snap.executable), before)
        for fact in facts:
            if fact.kind == "dir":
                self.repo.state.mark_stored(str(self.ws.root / fact.path), fact.hash)
        return tuple(facts)

    def _ignore_outputs(self, stage: Stage) -> None:
        """Cached outputs are git-ignored (the lock has their hashes); the others are git's to track."""
        if self.ws.has_scm:  # written by the next _flush, before the lock that names the outputs
            self._journal.ignores.extend((self.ws.root / out.path, out.cache) for out in stage.outs)


class _Startable(Protocol):
    def run(self) -> Outcome: ...


class _NotStarted:
    """A stage that could not be handed to its executor: it fails with that reason."""

    def __init__(self, error: str) -> None:
        self.error = error

    def run(self) -> Outcome:
        return Outcome(False, 0, 0.0, error=self.error)


class _Journal:
    """What finished stages changed that is not on disk yet (see :meth:`_Runner._flush`).

    Writing the lock, the .gitignore files and a run record after every stage made a pipeline
    of thousands of small stages slow, and slower per stage as it grew (the lock is rewritten
    whole). So a flush waits until it costs at most a tenth of the time since the last one:
    a stage that took ten times a flush, or a stage that cannot be restored from the run
    cache, is flushed at once; quick stages together, every ``MIN_GAP`` seconds or more, and
    whenever no stage finished for ``IDLE`` seconds. A kill loses only quick stages' work,
    which the next run runs again.
    """

    MIN_GAP = 0.02
    IDLE = 0.05

    def __init__(self) -> None:
        self.run_cache: list[tuple[str, list[Fact]]] = []
        self.ignores: list[tuple[Path, bool]] = []
        self.records: list[StageRecord] = []
        self.lock = False
        self.urgent = False
        self._cost = 0.005  # seconds the last flush took (a guess until there was one)
        self._last = time.monotonic()

    @property
    def dirty(self) -> bool:
        return bool(self.lock or self.run_cache or self.ignores or self.records)

    def due(self) -> bool:
        if not self.dirty:
            return False
        return self.urgent or time.monotonic() - self._last >= max(self.MIN_GAP, 10 * self._cost)

    def worth_a_flush(self, duration: float) -> bool:
        """Whether a stage that took ``duration`` seconds is worth flushing for, alone."""
        return duration >= 10 * self._cost

    def clear(self) -> None:
        self.run_cache.clear()
        self.ignores.clear()
        self.records.clear()
        self.lock = self.urgent = False

    def flushed(self, took: float) -> None:
        self._cost = took
        self._last = time.monotonic()


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (and the SIGTERM/SIGHUP the CLI turns into it) until the block is done.

    A KeyboardInterrupt raised inside a database call can leave its connection holding
    SQLite's write lock; the run's closing write then waits out the busy timeout (30 s) on it.
    The record's writes are short, so the interrupt is taken right after them instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in watched}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            raise KeyboardInterrupt


def _with_cache(fact: Fact, stage: Stage) -> Fact:
    cache = next((o.cache for o in stage.outs if o.path == fact.path), True)
    return Fact(fact.path, fact.hash, fact.size, fact.kind, fact.files, cache, fact.executable)


def _persists(stage: Stage) -> bool:
    """A stage with persistent outputs reads its own previous output: its fingerprint cannot say what it made."""
    return any(out.persist for out in stage.outs)


def _make_writable(ws: Workspace, target: Path) -> None:
    from conveyor.versioning._checkout import make_private

    if target.is_dir() and not target.is_symlink():
        for folder, _dirs, files in os.walk(target):
            for name in files:
                make_private(ws, Path(folder) / name)
    else:
        make_private(ws, target)


def _is_absent(value: object) -> bool:
    from conveyor.pipeline._freshness import _ABSENT

    return value is _ABSENT


def logs_dir(ws: Workspace) -> Path:
    return ws.conveyor_dir / "logs"
