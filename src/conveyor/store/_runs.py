"""The run store: a record of every ``conveyor run`` in the workspace's database.

A run is recorded as it happens: :meth:`RunStore.start_run` when it starts,
:meth:`RunStore.record_stage` as each stage finishes (with the hashes of its deps and
outputs: the lineage of what it produced), :meth:`RunStore.finish_run` at the end. Each call
is one transaction, so a process killed at any moment leaves the records of every stage
that finished and never half a stage.

A run whose process died before ``finish_run`` would stay ``running`` forever. The store
records the pid, the host and (on Linux) the process's start time and boot id; whenever
the store is opened or runs are listed, a ``running`` run of this host whose process is
gone, or whose pid now belongs to another process, is marked ``interrupted``.

Values of params and metrics are JSON text, numeric metrics also a number (for queries).
The database and its migrations are :mod:`conveyor.store._db`'s.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.errors import StorageError, UsageError, WorkspaceLockedError
from conveyor.store import _schema as t
from conveyor.store._records import (
    RUN_STATUSES,
    STAGE_STATUSES,
    RunEnvironment,
    RunRecord,
    StageRecord,
    environment_info,
    environment_packages,
)

if TYPE_CHECKING:
    from conveyor.store._db import Database
    from conveyor.workspace import Workspace

_IN_LIST_LIMIT = 500  # ids passed as values to an IN: well under every backend's limit of bound parameters

# -- values ----------------------------------------------------------------------------------


def _to_json(value: Any) -> str:
    # Values are meant to be JSON-able; anything else (a date from YAML, a set) is kept as
    # text rather than failing a run over its record.
    return json.dumps(value, sort_keys=True, default=_fallback)


def _key(text: str) -> str:
    # PostgreSQL's text cannot hold NUL; the same replacement on every database keeps them alike.
    return text.replace("\x00", "\ufffd")


def _fallback(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a double
        return None
    return None if math.isnan(number) else number


# -- the store -------------------------------------------------------------------------------


class RunStore:
    """The run records of a workspace, in its database (:class:`~conveyor.store._db.Database`).

    Calls may come from any thread. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, database: Database | str | Path, *, create: bool = True) -> None:
        """Open the run records of ``database`` (a :class:`Database`, which stays the
        caller's to close, or a URL or SQLite path, opened here and closed with the store).

        With ``create=False`` a missing SQLite file is not created: the store reads as empty
        (for commands that only look).
        """
        from conveyor.store._db import Database

        self._owned = not isinstance(database, Database)
        self.db = database if isinstance(database, Database) else Database(database, create=create)
        self.path = self.db.label
        self._dead: set[str] = set()  # running runs found dead, in case recording that failed
        try:
            self._reap()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, workspace: Workspace, *, create: bool = True) -> RunStore:
        """The run store of ``workspace`` (its database: see :func:`~conveyor.store._db.workspace_url`)."""
        from conveyor.store._db import Database

        db = Database.open(workspace, create=create)
        try:
            store = cls(db)
        except BaseException:
            db.close()
            raise
        store._owned = True
        return store

    def close(self) -> None:
        if self._owned:
            self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def start_run(self, run: RunRecord) -> None:
        """Record a new run (normally ``status="running"``), owned by this process."""
        _check_status(run.status, RUN_STATUSES, "run")
        for stage in run.stages:
            _check_status(stage.status, STAGE_STATUSES, f"stage {stage.name!r}")
        pid = os.getpid()
        with self.db.transaction("record the run") as conn:
            if conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run.id)).first():
                raise UsageError(f"run {run.id} is already recorded", hint="make a new id with new_run_id()")
            conn.execute(
                t.runs.insert().values(
                    id=run.id,
                    started_at=run.started_at,
                    ended_at=run.ended_at,
                    status=run.status,
                    git_commit=run.commit,
                    dirty=int(run.dirty),
                    targets=json.dumps(list(run.targets)),
                    command=run.command,
                    environment=json.dumps(dict(run.environment), sort_keys=True),
                    host=_host(),
                    pid=pid,
                    process_start=_process_start(pid),
                )
            )
            if run.params:
                conn.execute(
                    t.run_params.insert(),
                    [{"run_id": run.id, "key": _key(k), "value": _to_json(v)} for k, v in run.params.items()],
                )
            self._put_metrics(conn, run.id, run.metrics)
            for stage in run.stages:
                self._put_stage(conn, run.id, stage)
            self._put_environment(conn, run.environment)

    def _put_environment(self, conn: sa.Connection, environment: dict[str, str]) -> None:
        """Store the package list a run's environment fingerprints, once per distinct list. Only
        this process's own list is known: a record made elsewhere keeps its fingerprint alone."""
        fingerprint = environment.get("packages")
        if not fingerprint:
            return
        current = environment_info()
        if fingerprint != current["packages"]:
            return
        table = t.environments
        if conn.execute(sa.select(table.c.packages_hash).where(table.c.packages_hash == fingerprint)).first():
            return
        conn.execute(
            self.db.upsert(table)
            .values(
                packages_hash=fingerprint,
                packages=json.dumps(environment_packages()),
                python=current["python"],
                platform=current["platform"],
                recorded_at=time.time(),
            )
            .on_conflict_do_nothing(index_elements=["packages_hash"])
        )

    def environment_of(self, run_id: str) -> RunEnvironment | None:
        """The Python, platform and installed distributions run ``run_id`` ran with, or None when
        its package list was not recorded (a run from before conveyor kept them, or a record
        made by hand)."""
        with self.db.transaction("read the run store", write=False) as conn:
            row = conn.execute(sa.select(t.runs.c.environment).where(t.runs.c.id == run_id)).first()
            if row is None:
                raise _unknown(run_id)
            environment = json.loads(row[0] or "{}")
            fingerprint = environment.get("packages")
            if not fingerprint:
                return None
            table = t.environments
            found = conn.execute(sa.select(table.c.packages).where(table.c.packages_hash == fingerprint)).first()
        if found is None:
            return None
        packages = {}
        for line in json.loads(found[0]):
            name, _, version = str(line).partition("==")
            packages[name] = version
        return RunEnvironment(
            python=str(environment.get("python", "")),
            platform=str(environment.get("platform", "")),
            conveyor=str(environment.get("conveyor", "")),
            packages=packages,
        )

    def record_stage(self, run_id: str, stage: StageRecord) -> None:
        """Record a stage that finished (again: a stage of the same name is replaced)."""
        _check_status(stage.status, STAGE_STATUSES, f"stage {stage.name!r}")
        with self.db.transaction("record the stage") as conn:
            self._require(conn, run_id)
            self._put_stage(conn, run_id, stage)

    def record_stages(self, run_id: str, stages: list[StageRecord]) -> None:
        """:meth:`record_stage` for many stages, in one transaction with one statement per table
        (a run of thousands of stages records them in batches)."""
        if not stages:
            return
        for stage in stages:
            _check_status(stage.status, STAGE_STATUSES, f"stage {stage.name!r}")
        latest = {stage.name: stage for stage in stages}  # a stage recorded twice in the batch: the last
        table = t.run_stages
        with self.db.transaction("record the stages") as conn:
            self._require(conn, run_id)
            known = set(conn.execute(sa.select(table.c.name).where(table.c.run_id == run_id)).scalars())
            again = [stage for name, stage in latest.items() if name in known]
            for stage in again:
                self._put_stage(conn, run_id, stage)  # keeps its place in the run
            new = [stage for name, stage in latest.items() if name not in known]
            if not new:
                return
            seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(table.c.seq) + 1, 0)).where(table.c.run_id == run_id)
            ).scalar_one()
            conn.execute(
                table.insert(),
                [
                    {
                        "run_id": run_id,
                        "name": stage.name,
                        "seq": seq + i,
                        "status": stage.status,
                        "started_at": stage.started_at,
                        "duration": stage.duration,
                        "attempts": stage.attempts,
                        "error": stage.error,
                    }
                    for i, stage in enumerate(new)
                ],
            )
            for files_table, attr in ((t.run_outs, "outs"), (t.run_deps, "deps")):
                rows = [
                    {"run_id": run_id, "stage": stage.name, "path": p, "hash": h}
                    for stage in new
                    for p, h in getattr(stage, attr).items()
                ]
                if rows:
                    conn.execute(files_table.insert(), rows)

    def finish_run(self, run_id: str, *, status: str, ended_at: float, metrics: dict[str, Any]) -> None:
        """Record the end of a run, its final status and its metrics (replacing any before)."""
        _check_status(status, RUN_STATUSES[1:], "run")
        with self.db.transaction("record the end of the run") as conn:
            self._require(conn, run_id)
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(status=status, ended_at=ended_at))
            conn.execute(t.run_metrics.delete().where(t.run_metrics.c.run_id == run_id))
            self._put_metrics(conn, run_id, metrics)

    @staticmethod
    def _require(conn: sa.Connection, run_id: str) -> None:
        if not conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first():
            raise UsageError(f"no run {run_id} in the run store", hint="record it with start_run() first")

    @staticmethod
    def _put_metrics(conn: sa.Connection, run_id: str, metrics: dict[str, Any]) -> None:
        if metrics:
            rows = [
                {"run_id": run_id, "key": _key(k), "value": _to_json(v), "number": _number(v)}
                for k, v in metrics.items()
            ]
            conn.execute(t.run_metrics.insert(), rows)

    @staticmethod
    def _put_stage(conn: sa.Connection, run_id: str, stage: StageRecord) -> None:
        stages = t.run_stages
        values = {
            "status": stage.status,
            "started_at": stage.started_at,
            "duration": stage.duration,
            "attempts": stage.attempts,
            "error": stage.error,
        }
        this = (stages.c.run_id == run_id) & (stages.c.name == stage.name)
        if conn.execute(sa.select(stages.c.seq).where(this)).first() is not None:
            conn.execute(stages.update().where(this).values(**values))  # keeps its place in the run
            for table in (t.run_outs, t.run_deps):
                conn.execute(table.delete().where((table.c.run_id == run_id) & (table.c.stage == stage.name)))
        else:
            seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(stages.c.seq) + 1, 0)).where(stages.c.run_id == run_id)
            ).scalar_one()
            conn.execute(stages.insert().values(run_id=run_id, name=stage.name, seq=seq, **values))
        for table, files in ((t.run_outs, stage.outs), (t.run_deps, stage.deps)):
            if files:
                rows = [{"run_id": run_id, "stage": stage.name, "path": p, "hash": h} for p, h in files.items()]
                conn.execute(table.insert(), rows)

    # -- runs whose process died -------------------------------------------------------------

    def _reap(self) -> None:
        """Mark ``running`` runs of this host whose process is gone as ``interrupted``."""
        runs, stages = t.runs, t.run_stages
        with self.db.transaction("read the run store", write=False) as conn:
            rows = conn.execute(
                sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.process_start).where(runs.c.status == "running")
            ).all()
        dead = [run_id for run_id, host, pid, start in rows if not _alive(host, pid, start)]
        if not dead:
            return
        self._dead.update(dead)
        try:
            with self.db.transaction("mark interrupted runs") as conn:
                for run_id in dead:
                    running = (runs.c.id == run_id) & (runs.c.status == "running")
                    started = conn.execute(sa.select(runs.c.started_at).where(running)).scalar()
                    if started is None:
                        continue  # finished or marked meanwhile
                    last = conn.execute(
                        sa.select(sa.func.max(stages.c.started_at + stages.c.duration)).where(stages.c.run_id == run_id)
                    ).scalar()
                    # The run ended, at the latest, when its last stage did.
                    ended = started if last is None else max(started, last)
                    conn.execute(runs.update().where(running).values(status="interrupted", ended_at=ended))
        except (StorageError, WorkspaceLockedError):
            pass  # a read-only or busy store: they show as interrupted; the next writer records it

    # -- reading -----------------------------------------------------------------------------

    def list_runs(self, *, limit: int | None = 20, offset: int = 0, status: str | None = None) -> list[RunRecord]:
        """Runs, newest first, with their stages, params and metrics; ``limit=None``: all."""
        if status is not None:
            _check_status(status, RUN_STATUSES, "run")
        self._reap()
        chosen = sa.select(t.runs.c.id).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc())
        if status is not None:
            chosen = chosen.where(t.runs.c.status == status)
        return self._load(chosen.limit(limit).offset(offset))

    def query_runs(
        self,
        *,
        status: str | None = None,
        search: str | None = None,
        sort: str = "started",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[RunRecord], int]:
        """One page of runs and how many match: ``status``; ``search``, a prefix of the id or
        commit or a part of the command; sorted by ``started``, ``duration``, ``status``,
        ``metric:KEY`` or ``param:KEY`` (runs without that key last), then newest first."""
        if status is not None:
            _check_status(status, RUN_STATUSES, "run")
        self._reap()
        runs = t.runs
        chosen = sa.select(runs.c.id)
        if status is not None:
            chosen = chosen.where(runs.c.status == status)
        if search:
            like = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            chosen = chosen.where(
                runs.c.id.like(f"{like}%", escape="\\")
                | runs.c.git_commit.like(f"{like}%", escape="\\")
                | runs.c.command.like(f"%{like}%", escape="\\")
            )
        count = sa.select(sa.func.count()).select_from(chosen.subquery())
        key: sa.ColumnElement[Any]
        if sort == "started":
            key = runs.c.started_at
        elif sort == "duration":
            key = runs.c.ended_at - runs.c.started_at
        elif sort == "status":
            key = runs.c.status
        elif sort.startswith(("metric:", "param:")) and sort.split(":", 1)[1]:
            kind, name = sort.split(":", 1)
            table = t.run_metrics if kind == "metric" else t.run_params
            chosen = chosen.outerjoin(table, (table.c.run_id == runs.c.id) & (table.c.key == name))
            key = table.c.number if kind == "metric" else table.c.value
        else:
            raise UsageError(
                f"runs: cannot sort by '{sort}'", hint="sort by started, duration, status, metric:KEY or param:KEY"
            )
        ordered = key.desc().nulls_last() if descending else key.asc().nulls_last()
        chosen = chosen.order_by(ordered, runs.c.started_at.desc(), runs.c.id.desc())
        with self.db.transaction("read the run store", write=False) as conn:
            total = int(conn.execute(count).scalar_one())
        return self._load(chosen.limit(limit).offset(offset)), total

    def metric_keys(self) -> list[str]:
        """Every metric key a run recorded a number for, sorted."""
        # Jump from key to key along the (key, number) index: one index search per key, where a DISTINCT
        # reads the whole index (every metric of every run).
        metrics, later = t.run_metrics, t.run_metrics.alias("later")
        keys = (
            sa.select(sa.func.min(metrics.c.key).label("key"))
            .where(metrics.c.number.is_not(None))
            .cte("metric_keys", recursive=True)
        )
        following = (
            sa.select(sa.func.min(later.c.key))
            .where((later.c.key > keys.c.key) & later.c.number.is_not(None))
            .scalar_subquery()
        )
        keys = keys.union_all(sa.select(following).where(keys.c.key.is_not(None)))
        query = sa.select(keys.c.key).where(keys.c.key.is_not(None))
        with self.db.transaction("read the run store", write=False) as conn:
            return sorted(str(row[0]) for row in conn.execute(query).all())

    def metric_series(self, key: str, *, limit: int = 2000) -> list[tuple[str, float, str | None, float]]:
        """(run id, start time, commit, value) of the latest ``limit`` runs that recorded metric
        ``key`` as a number, oldest first (one indexed query)."""
        runs, metrics = t.runs, t.run_metrics
        # Newest runs first along the started_at index, each run's value looked up by its primary key, until
        # ``limit`` have one. (A join lets SQLite start from every run with the key, then sort them all.)
        number = (
            sa.select(metrics.c.number)
            .where((metrics.c.run_id == runs.c.id) & (metrics.c.key == key))
            .scalar_subquery()
        )
        query = (
            sa.select(runs.c.id, runs.c.started_at, runs.c.git_commit, number)
            .where(number.is_not(None))
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
            .limit(limit)
        )
        with self.db.transaction("read the run store", write=False) as conn:
            rows = conn.execute(query).all()
        return [(str(a), float(b), None if c is None else str(c), float(d)) for a, b, c, d in reversed(rows)]

    def count_runs(self, *, status: str | None = None) -> int:
        """How many runs are recorded (with ``status``, if given)."""
        query = sa.select(sa.func.count()).select_from(t.runs)
        if status is not None:
            query = query.where(t.runs.c.status == status)
        with self.db.transaction("read the run store", write=False) as conn:
            return int(conn.execute(query).scalar_one())

    def get_run(self, ref: str) -> RunRecord:
        """The run named by ``ref``: ``latest``, or a unique prefix of its id."""
        self._reap()
        run_id = self.resolve(ref)
        runs = self._load(sa.select(t.runs.c.id).where(t.runs.c.id == run_id))
        if not runs:  # deleted between the two reads
            raise _unknown(ref)
        return runs[0]

    def runs_producing(self, digest: str) -> list[tuple[str, str, str]]:
        """(run id, stage, path) of each recorded output with content hash ``digest``, newest run first."""
        outs, runs = t.run_outs, t.runs
        query = (
            sa.select(outs.c.run_id, outs.c.stage, outs.c.path)
            .join(runs, runs.c.id == outs.c.run_id)
            .where(outs.c.hash == digest)
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        )
        with self.db.transaction("read the run store", write=False) as conn:
            return [(str(a), str(b), str(c)) for a, b, c in conn.execute(query).all()]

    def resolve(self, ref: str) -> str:
        """The full id of the run ``ref`` names (``latest`` or a unique id prefix)."""
        ref = ref.strip()
        runs = t.runs
        with self.db.transaction("read the run store", write=False) as conn:
            if ref == "latest":
                newest = sa.select(runs.c.id).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(1)
                row = conn.execute(newest).first()
                if row is None:
                    raise UsageError("no runs recorded yet", hint="'conveyor run' records one")
                return str(row[0])
            if not ref:
                raise UsageError("empty run id", hint="'conveyor runs list' shows the recorded runs")
            # Ids sharing a prefix are neighbours in id order: the first two at or after the
            # prefix tell unique from ambiguous, through the primary key index.
            rows = conn.execute(sa.select(runs.c.id).where(runs.c.id >= ref).order_by(runs.c.id).limit(3)).all()
        matches = [str(row[0]) for row in rows if str(row[0]).startswith(ref)]
        if not matches:
            raise _unknown(ref)
        if len(matches) > 1:
            more = ", ..." if len(matches) > 2 else ""
            raise UsageError(
                f"run '{ref}' is ambiguous: it starts {matches[0]}, {matches[1]}{more}",
                hint="give more of the id; 'conveyor runs list' shows the recorded runs",
            )
        return matches[0]

    def _load(self, chosen: sa.Select[Any]) -> list[RunRecord]:
        """The runs whose ids ``chosen`` selects, in its order, complete."""
        runs = t.runs
        with self.db.transaction("read the run store", write=False) as conn:
            order = [str(row[0]) for row in conn.execute(chosen).all()]
            if not order:
                return []
            # A page of ids goes into the IN of each table below as values: re-running a sorted, joined
            # ``chosen`` once per table costs a sort of every run each time. Longer lists use it as a subquery.
            ids: Any = order if len(order) <= _IN_LIST_LIMIT else sa.select(chosen.subquery().c.id)
            rows = conn.execute(
                sa.select(
                    runs.c.id,
                    runs.c.started_at,
                    runs.c.ended_at,
                    runs.c.status,
                    runs.c.git_commit,
                    runs.c.dirty,
                    runs.c.targets,
                    runs.c.command,
                    runs.c.environment,
                ).where(runs.c.id.in_(ids))
            ).all()

            def of(table: sa.Table, *columns: str, order_by: str) -> list[Any]:
                query = sa.select(table.c.run_id, *(table.c[c] for c in columns)).where(table.c.run_id.in_(ids))
                return list(conn.execute(query.order_by(table.c.run_id, table.c[order_by])).all())

            params = of(t.run_params, "key", "value", order_by="key")
            metrics = of(t.run_metrics, "key", "value", order_by="key")
            stages = of(t.run_stages, "name", "status", "started_at", "duration", "attempts", "error", order_by="seq")
            outs = of(t.run_outs, "stage", "path", "hash", order_by="path")
            deps = of(t.run_deps, "stage", "path", "hash", order_by="path")
        found: dict[str, RunRecord] = {}
        for run_id, started, ended, status, commit, dirty, targets, command, environment in rows:
            found[run_id] = RunRecord(
                id=run_id,
                started_at=started,
                ended_at=ended,
                status="interrupted" if status == "running" and run_id in self._dead else status,
                commit=commit,
                dirty=bool(dirty),
                targets=json.loads(targets),
                command=command,
                environment=json.loads(environment),
            )
        for run_id, key, value in params:
            found[run_id].params[key] = json.loads(value)
        for run_id, key, value in metrics:
            found[run_id].metrics[key] = json.loads(value)
        by_name: dict[tuple[str, str], StageRecord] = {}
        for run_id, name, status, started, duration, attempts, error in stages:
            stage = StageRecord(name, status, started, duration, attempts, {}, error)
            found[run_id].stages.append(stage)
            by_name[run_id, name] = stage
        for run_id, stage_name, path, digest in outs:
            by_name[run_id, stage_name].outs[path] = digest
        for run_id, stage_name, path, digest in deps:
            by_name[run_id, stage_name].deps[path] = digest
        return [found[run_id] for run_id in order if run_id in found]


def _check_status(status: str, allowed: Sequence[str], what: str) -> None:
    if status not in allowed:
        raise UsageError(f"{what}: unknown status '{status}'", hint=f"use one of {', '.join(allowed)}")


def _unknown(ref: str) -> UsageError:
    return UsageError(f"no run '{ref}'", hint="'conveyor runs list' shows the recorded runs")


# -- is the process of a run still there? ----------------------------------------------------

_PROC = Path("/proc")


@dataclass(frozen=True)
class _Here:
    host: str
    boot_id: str | None


_here: _Here | None = None


def _host_info() -> _Here:
    global _here
    if _here is None:
        import socket

        try:
            boot_id: str | None = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            boot_id = None
        _here = _Here(socket.gethostname(), boot_id)
    return _here


def _host() -> str:
    return _host_info().host


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks after boot) of ``pid`` from /proc, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ", comm may hold spaces
    return fields[0], fields[19]


def _process_start(pid: int) -> str | None:
    """What tells this process from a later one with the same pid: boot id and start time."""
    stat = _proc_stat(pid)
    boot_id = _host_info().boot_id
    if stat is None or boot_id is None:
        return None
    return f"{boot_id}:{stat[1]}"


def _alive(host: str, pid: int | None, process_start: str | None) -> bool:
    """Whether a run's process may still be running; runs of other hosts are given the benefit."""
    if host != _host() or pid is None:
        return True
    if process_start is not None and _host_info().boot_id is not None:
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or dead and waiting to be reaped
            return False
        return f"{_host_info().boot_id}:{stat[1]}" == process_start  # else the pid was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return True
    return True
