"""``conveyor run --executor dask://HOST:PORT``: the client side of running stages on a Dask cluster.

The runner stays in charge: it decides what is stale, keeps the lock, the run record and the
progress, exactly as for a local run. For a stage it sends to the cluster, :class:`Cluster`
stores the stage's inputs (deps and params files) in the local cache and pushes them to the
shared remote, and :class:`ClusterStage` submits a :class:`~conveyor.pipeline._cluster.StageJob`
and waits for it from a runner thread. When the job is done, the runner fetches the outputs it
names from the remote and puts them in the workspace (:meth:`Cluster.bring_outputs`), then
records them as it records a local stage's.

Some stages run on the client all the same (:meth:`Cluster.runs_here`): a check stage (it
records its result in this workspace's run store and may read its registry), a stage with a
persistent output (it reads its own previous output), and a stage that reads a path outside
the workspace (no worker has it).
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.pipeline._executor import Outcome, Terminal
from conveyor.pipeline._lock import Fact, LockEntry

if TYPE_CHECKING:
    from conveyor.pipeline._spec import Stage
    from conveyor.versioning._repo import Repo

CHECK_CALL = "conveyor.checks._stage:run"


class Cluster:
    """A connection to a Dask scheduler, and the remote its workers share with this workspace."""

    def __init__(self, repo: Repo, address: str, remote: str | None) -> None:
        from conveyor.pipeline._cluster import connect, job_remote
        from conveyor.remote._config import get_remote

        self.repo = repo
        self.remote_name = get_remote(repo.ws, remote).name  # no remote: its one-line error, before connecting
        self.remote = job_remote(repo.ws, remote)
        self.client = connect(address)
        self.address = address

    def workers(self) -> int:
        """How many stages the cluster runs at once: the threads of its workers (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))  # type: ignore[no-untyped-call]

    def runs_here(self, stage: Stage) -> str | None:
        """Why ``stage`` runs on the client, or None when it goes to the cluster."""
        if stage.call == CHECK_CALL:
            return "a check stage records its result in this workspace"
        if any(out.persist for out in stage.outs):
            return "it reads its own persistent output"
        if any(Path(dep).is_absolute() for dep in stage.deps):
            return "it reads a path outside the workspace"
        return None

    def prepare(self, stage: Stage, entry: LockEntry, run_id: str | None, cancel: threading.Event) -> ClusterStage:
        """Push what ``stage`` reads to the remote; the job that runs it on the cluster."""
        from conveyor.pipeline._cluster import StageJob, dask_resources, unplaceable
        from conveyor.remote._transfer import Root, push_roots

        inputs = list(entry.deps) + self._params_files(stage)
        inputs = self._stored(inputs)
        result = push_roots(self.repo, [Root(f.hash, f.kind, f.path) for f in inputs], remote=self.remote_name)
        if result.missing:
            from conveyor.errors import ConveyorError

            raise ConveyorError(
                f"stage {stage.name!r}: {len(result.missing)} of its input objects are not in the cache",
                hint="run 'conveyor status' and add or fetch its inputs",
            )
        resources = dask_resources(stage)
        if resources:
            why = unplaceable(self.client, resources)
            if why is not None:
                from conveyor.errors import UsageError

                raise UsageError(f"stage {stage.name!r}: {why}", hint="declare the resources on the workers")
        job = StageJob.for_stage(stage, inputs, self.remote, run_id)
        return ClusterStage(self.client, job, resources, cancel)

    def bring_outputs(self, outs: tuple[Fact, ...]) -> None:
        """Fetch the outputs a worker pushed and put them in the workspace."""
        from conveyor.errors import ConveyorError
        from conveyor.pipeline._restore import restore_outputs
        from conveyor.remote._transfer import Root, fetch_into

        result = fetch_into(
            self.repo, None, remote=self.remote_name, roots=[Root(o.hash, o.kind, o.path) for o in outs]
        )
        if result.missing or not restore_outputs(self.repo, list(outs)):
            raise ConveyorError(
                f"the outputs the worker pushed are not on the remote {self.remote_name!r}",
                hint="check that the workers and this workspace use the same remote",
            )

    def close(self) -> None:
        try:
            self.client.close()  # type: ignore[no-untyped-call]
        except Exception:  # closing a client whose scheduler went away: nothing left to release
            pass

    def _params_files(self, stage: Stage) -> list[Fact]:
        files = sorted({ref.file for ref in stage.params})
        facts = []
        for rel in files:
            snap = self.repo.snapshot(self.repo.ws.root / rel)
            if snap.digest is not None:
                facts.append(Fact(rel, snap.digest, snap.size, snap.kind, snap.files, True, snap.executable))
        return facts

    def _stored(self, facts: list[Fact]) -> list[Fact]:
        """``facts`` with every object in the local cache (code files tracked by git are not, yet)."""
        missing = [f for f in facts if f.kind != "dir" and not self.repo.odb.exists(f.hash)]
        folders = [f for f in facts if f.kind == "dir"]
        if not missing and not folders:
            return facts
        with self.repo.odb.batch() as batch:
            for fact in missing + folders:
                self.repo.snapshot(self.repo.ws.root / fact.path, batch=batch, need_manifest=True, skip_pointers=True)
        return facts


class ClusterStage:
    """One stage submitted to the cluster; ``run`` (in a runner thread) waits for its result."""

    def __init__(self, client: Any, job: Any, resources: dict[str, float], cancel: threading.Event) -> None:
        self.client = client
        self.job = job
        self.resources = resources
        self.cancel = cancel
        self.log: bytes = b""
        self.worker: str | None = None

    def run(self) -> Outcome:
        from conveyor.pipeline._cluster import run_stage_job

        key = f"conveyor-{self.job.name}-{uuid.uuid4().hex[:12]}"
        future = self.client.submit(run_stage_job, self.job, key=key, pure=False, resources=self.resources or None)
        while True:
            try:
                result = future.result(timeout=0.1)
                break
            except TimeoutError:
                if self.cancel.is_set():
                    self.client.cancel(future)  # the worker stops the command
                    return Outcome(False, 1, 0.0, cancelled=True, error="interrupted")
            except Exception as exc:  # the task itself failed in Dask: KilledWorker after every retry
                return Outcome(False, 1, 0.0, error=f"on the cluster: {type(exc).__name__}: {exc}")
        self.log = result.log
        self.worker = result.worker
        outcome = Outcome(
            result.ok,
            max(result.attempts, 1),
            result.duration,
            result.returncode,
            timed_out=result.timed_out,
            error=result.error,
        )
        outcome.remote_outs = tuple(result.outs)
        outcome.worker = result.worker
        outcome.log = result.log
        return outcome


def show_log(terminal: Terminal, stage: str, log: bytes, path: Path) -> None:
    """Write a worker's log of ``stage`` to its log file here, and its lines to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(log)
    for line in log.decode("utf-8", errors="replace").splitlines():
        terminal.line(stage, line + "\n", err=False)
