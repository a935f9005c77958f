"""A real Dask cluster for the tests: one ``dask scheduler`` and two ``dask worker`` processes.

Everything runs from the venv's ``dask`` command on 127.0.0.1: the scheduler on a port the
kernel picks (``--port 0``; the address is read from its ``--scheduler-file``), each worker with
one thread, no nanny (so a killed worker stays dead and its task moves to the other one), no
dashboard, ``--resources "CPU=2"`` and a local directory of its own under the test's temp
folder. Every process runs in a process group of its own and is killed with it, also when a
test fails. Ports and folders are per process, so pytest-xdist workers never collide.

Use it in a test module by importing both fixtures (the functions are named ``fixture_NAME``
so test arguments do not shadow the import)::

    pytest.importorskip("distributed")
    from _dask_cluster import DaskCluster, fixture_dask_cluster, fixture_dask_session  # noqa: F401

    def test_something(dask_cluster: DaskCluster) -> None:
        future = dask_cluster.client.submit(run_stage_job, job, pure=False)
        result = future.result(timeout=60)
        dask_cluster.kill(result.worker)     # SIGKILL that worker's process group

``dask_session`` starts the cluster once per session (per xdist worker), about a second;
``dask_cluster`` hands it to a test after replacing any worker an earlier test killed, so every
test starts with two live workers.

``python tests/_dask_cluster.py`` starts a cluster, prints how long it took, and stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import distributed

DASK_BIN = str(Path(sys.executable).with_name("dask"))
WORKERS = 2
RESOURCES = "CPU=2"
START_TIMEOUT = 60.0


class DaskClusterError(RuntimeError):
    """The cluster did not come up; the message holds the tail of the logs."""


@dataclass
class DaskWorker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    local_dir: Path
    address: str | None = None  # known once it registered with the scheduler

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class DaskCluster:
    """A running scheduler and its workers; :attr:`client` is connected from the test process."""

    root: Path
    scheduler: subprocess.Popen[bytes] | None = None
    address: str = ""  # tcp://127.0.0.1:PORT
    workers: dict[str, DaskWorker] = field(default_factory=dict)  # by name: w0, w1, ...
    client: distributed.Client | None = None
    started_in: float = 0.0  # seconds start() took
    _next: int = 0

    @property
    def dask_address(self) -> str:
        """The address as conveyor takes it: ``dask://127.0.0.1:PORT``."""
        return "dask://" + self.address.split("://", 1)[1]

    # -- starting ------------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, *, workers: int = WORKERS, resources: str = RESOURCES) -> DaskCluster:
        cluster = cls(root)
        started = time.monotonic()
        try:
            cluster._start_scheduler()
            for _ in range(workers):
                cluster._start_worker(resources)
            cluster._connect()
            cluster.wait_for_workers(workers)
        except BaseException:
            cluster.stop()
            raise
        cluster.started_in = time.monotonic() - started
        return cluster

    def _start_scheduler(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        scheduler_file = self.root / "scheduler.json"
        log = self.root / "scheduler.log"
        self.scheduler = _spawn(
            [
                DASK_BIN,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            log,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:  # the file is written whole once the scheduler listens
                self.address = json.loads(scheduler_file.read_text())["address"]
                return
            except (FileNotFoundError, ValueError, KeyError):
                pass
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise DaskClusterError(f"the dask scheduler did not start:\n{_tail(log)}")
            time.sleep(0.02)

    def _start_worker(self, resources: str = RESOURCES) -> DaskWorker:
        name = f"w{self._next}"
        self._next += 1
        local_dir = self.root / name
        local_dir.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        proc = _spawn(
            [
                DASK_BIN,
                "worker",
                self.address,
                "--name",
                name,
                "--host",
                "127.0.0.1",
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--resources",
                resources,
                "--local-directory",
                str(local_dir),
                "--death-timeout",
                "60",  # a worker whose scheduler is gone stops by itself, should teardown miss it
            ],
            log,
        )
        worker = self.workers[name] = DaskWorker(name, proc, log, local_dir)
        return worker

    def _connect(self) -> None:
        import distributed

        self.client = distributed.Client(self.address, timeout=START_TIMEOUT, set_as_default=False)

    def wait_for_workers(self, count: int) -> None:
        """Until ``count`` live workers are registered; learns their addresses."""
        assert self.client is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            names = {info["name"]: addr for addr, info in self._workers_info().items()}
            for worker in self.workers.values():
                if worker.alive and worker.name in names:
                    worker.address = names[worker.name]
            if sum(1 for w in self.workers.values() if w.alive and w.address in names.values()) >= count:
                return
            dead = [w for w in self.workers.values() if w.address is None and not w.alive]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {w.name}:\n{_tail(w.log)}" for w in self.workers.values())
                raise DaskClusterError(f"dask workers did not connect to {self.address}:\n{logs}")
            time.sleep(0.05)

    def _workers_info(self) -> dict[str, Any]:
        assert self.client is not None
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:
            info = self.client.scheduler_info()
        workers: dict[str, Any] = info["workers"]
        return workers

    # -- handles for tests -----------------------------------------------------------------

    def live(self) -> list[DaskWorker]:
        return [w for w in self.workers.values() if w.alive]

    def worker_at(self, address: str) -> DaskWorker:
        """The worker with Dask address (or name) ``address``."""
        for worker in self.workers.values():
            if address in (worker.address, worker.name):
                return worker
        raise KeyError(f"no worker {address!r} in {[(w.name, w.address) for w in self.workers.values()]}")

    def kill(self, address: str) -> DaskWorker:
        """SIGKILL the worker (by Dask address or name) and its process group; returns it once the
        process is gone. The scheduler notices at once: the worker's connections close."""
        worker = self.worker_at(address)
        _kill_group(worker.proc)
        return worker

    def heal(self) -> None:
        """Replace killed workers, so that as many are alive as at the start."""
        dead = [w for w in self.workers.values() if not w.alive]
        for worker in dead:
            del self.workers[worker.name]
            self._start_worker()
        if dead:
            self.wait_for_workers(len(self.workers))

    # -- stopping --------------------------------------------------------------------------

    def stop(self) -> None:
        """Kill every process group (workers first, then the scheduler); idempotent."""
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=5)
        for worker in self.workers.values():
            _kill_group(worker.proc)
        if self.scheduler is not None:
            _kill_group(self.scheduler)


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
        "DASK_DISTRIBUTED__ADMIN__TICK__LIMIT": "5s",  # a blocked event loop is not worth a warning here
    }
    with open(log, "wb") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session", name="dask_session")
def fixture_dask_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """One cluster per session (per xdist worker)."""
    cluster = DaskCluster.start(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(name="dask_cluster")
def fixture_dask_cluster(dask_session: DaskCluster) -> DaskCluster:
    """The session's cluster with every worker alive (killed ones replaced)."""
    dask_session.heal()
    return dask_session


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cluster = DaskCluster.start(Path(tmp))
        try:
            print(f"started {cluster.address} with {len(cluster.workers)} workers in {cluster.started_in:.2f} s")
        finally:
            stopped = time.monotonic()
            cluster.stop()
            print(f"stopped in {time.monotonic() - stopped:.2f} s")
