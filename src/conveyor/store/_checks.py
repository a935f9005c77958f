"""Check suite results in the database, with the content hash of every file each looked at.

``conveyor check`` and every ``check:`` stage record what they concluded here; the registry
reads them back by hash: a model version's checks are those run on its artifact (the
``model`` input) or on data in its lineage. Recording happens after the gate has decided and
never changes its verdict.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from conveyor.store import _schema as t
from conveyor.store._db import Database

ROLES = ("data", "train", "test", "model", "champion", "schema")


@dataclass(frozen=True)
class CheckResultRow:
    id: int
    suite: str
    status: str
    passed: bool
    recorded_at: float
    stage: str | None
    run_id: str | None
    summary: dict[str, Any]
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # role -> (path, hash)


def record_check(
    db: Database,
    *,
    suite: str,
    status: str,
    passed: bool,
    inputs: dict[str, tuple[str, str]],
    summary: dict[str, Any] | None = None,
    stage: str | None = None,
    run_id: str | None = None,
    at: float | None = None,
) -> int:
    """Record one suite result and its inputs (role -> (path, content hash)); returns its id."""
    unknown = sorted(set(inputs) - set(ROLES))
    if unknown:
        raise ValueError(f"unknown check input role {unknown[0]!r}")
    with db.transaction("record the check result") as conn:
        result_id = conn.execute(
            t.check_results.insert()
            .values(
                suite=suite,
                stage=stage,
                run_id=run_id,
                status=status,
                passed=passed,
                recorded_at=time.time() if at is None else at,
                summary=json.dumps(summary or {}, sort_keys=True, default=str),
            )
            .returning(t.check_results.c.id)
        ).scalar_one()
        if inputs:
            conn.execute(
                t.check_inputs.insert(),
                [{"result_id": result_id, "role": r, "path": p, "hash": h} for r, (p, h) in inputs.items()],
            )
    return int(result_id)


def checks_on(db: Database, hashes: set[str], *, roles: tuple[str, ...] = ROLES) -> list[CheckResultRow]:
    """Every recorded result one of whose inputs in ``roles`` has one of ``hashes``, oldest first."""
    if not hashes:
        return []
    results, inputs = t.check_results, t.check_inputs
    hit = sa.select(inputs.c.result_id).where(inputs.c.hash.in_(sorted(hashes)) & inputs.c.role.in_(roles))
    return _results(db, sa.select(results).where(results.c.id.in_(hit)).order_by(results.c.recorded_at, results.c.id))


def recent_checks(db: Database, *, limit: int = 50, offset: int = 0, run_id: str | None = None) -> list[CheckResultRow]:
    """The latest recorded results (of run ``run_id``), newest first."""
    results = t.check_results
    query = sa.select(results)
    if run_id is not None:
        query = query.where(results.c.run_id == run_id)
    return _results(db, query.order_by(results.c.recorded_at.desc(), results.c.id.desc()).limit(limit).offset(offset))


def _results(db: Database, query: sa.Select[Any]) -> list[CheckResultRow]:
    inputs = t.check_inputs
    with db.transaction("read check results", write=False) as conn:
        rows = conn.execute(query).all()
        ids = [row.id for row in rows]
        found: dict[int, dict[str, tuple[str, str]]] = {i: {} for i in ids}
        if ids:
            for result_id, role, path, digest in conn.execute(
                sa.select(inputs.c.result_id, inputs.c.role, inputs.c.path, inputs.c.hash).where(
                    inputs.c.result_id.in_(ids)
                )
            ).all():
                found[result_id][role] = (path, digest)
    return [
        CheckResultRow(
            id=row.id,
            suite=row.suite,
            status=row.status,
            passed=bool(row.passed),
            recorded_at=row.recorded_at,
            stage=row.stage,
            run_id=row.run_id,
            summary=json.loads(row.summary),
            inputs=found[row.id],
        )
        for row in rows
    ]
