"""The model registry: versions of named models, aliases that point at them, and the
append-only history of every alias move.

Artifacts live in the workspace's content-addressed cache (and its remotes), as data does;
the database (:mod:`conveyor.store`) holds what is known about them. Version numbers are
allocated inside the inserting transaction under a unique constraint, so two processes
registering at once never share a number (a loser retries); an alias moves in the same
transaction as its audit record, with the model's row locked on PostgreSQL (SQLite lets one
writer in at a time), so the history is never out of step with the alias.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor._suggest import did_you_mean
from conveyor.errors import CorruptObjectError, ObjectMissingError, PathError, UsageError
from conveyor.registry import _flavors
from conveyor.registry._policy import Policy, Verdict
from conveyor.registry._records import AliasMove, BundleRecord, CheckRecord, Lineage, ModelInfo, ModelVersion
from conveyor.registry._signature import Signature
from conveyor.store import _schema as t
from conveyor.store._db import ConflictError, Database

if TYPE_CHECKING:
    from conveyor.store import RunEnvironment, RunRecord
    from conveyor.workspace import Workspace

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_REGISTER_ATTEMPTS = 8


class PromotionRefused(UsageError):
    """A promotion the alias's policy does not allow (``--force --reason`` overrides it)."""

    exit_code = 1


def check_name(name: str, what: str = "model name") -> str:
    if not _NAME.match(name or ""):
        raise UsageError(
            f"bad {what} {name!r}", hint="use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )
    return name


def parse_ref(text: str) -> tuple[str, int | None, str | None]:
    """``NAME``, ``NAME:VERSION``, ``NAME:latest`` or ``NAME@ALIAS`` -> (name, version, alias)."""
    text = text.strip()
    if "@" in text:
        name, alias = text.split("@", 1)
        return check_name(name), None, check_name(alias, "alias")
    if ":" in text:
        name, version = text.rsplit(":", 1)
        if version == "latest":
            return check_name(name), None, None
        if not re.fullmatch(r"[0-9]{1,9}", version) or int(version) < 1:
            raise UsageError(f"bad model version '{version}' in '{text}'", hint="versions are numbers from 1: NAME:3")
        return check_name(name), int(version), None
    return check_name(text), None, None


def current_actor() -> str:
    """Who is acting: ``CONVEYOR_USER``, else the user name and host."""
    import getpass
    import socket

    explicit = os.environ.get("CONVEYOR_USER", "").strip()
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Registry:
    """The registry of a workspace (artifacts in its cache) in its database.

    Open it with :meth:`open` and use it as a context manager. Without a workspace (a
    database alone) everything but registering and loading artifacts works.
    """

    def __init__(self, db: Database, *, workspace: Workspace | None = None, policy: Policy | None = None) -> None:
        self.db = db
        self.ws = workspace
        self.policy = policy if policy is not None else Policy()
        self._owned = False

    @classmethod
    def open(cls, workspace: Workspace | None = None, *, create: bool = True) -> Registry:
        """The registry of ``workspace`` (found from the current folder when not given), with the
        promotion policy of its ``conveyor.yaml``."""
        from conveyor.registry._policy import load_policy
        from conveyor.workspace import Workspace

        ws = workspace or Workspace.find()
        db = Database.open(ws, create=create)
        try:
            registry = cls(db, workspace=ws, policy=load_policy(ws.root))
        except BaseException:
            db.close()
            raise
        registry._owned = True
        return registry

    def close(self) -> None:
        if self._owned:
            self.db.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registering -------------------------------------------------------------------------

    def register(
        self,
        name: str,
        path: str | os.PathLike[str] | None = None,
        *,
        run: str | None = None,
        out: str | None = None,
        model: Any = None,
        signature: Signature | None = None,
        flavor: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Create the next version of model ``name`` from a model file (``path``), a run's
        output (``run`` and ``out``), or an object (``model``: saved as skops for scikit-learn,
        joblib otherwise). The artifact goes into the cache; its lineage comes from the run that
        produced it (given, or found by its hash among the recorded runs)."""
        check_name(name)
        ws = self._workspace("register a model")
        for key in tags or {}:
            check_name(key, "tag name")
        given = sum(x is not None for x in (path, out, model))
        if given != 1:
            raise UsageError(
                "register needs one of: a model file, a run's output (--from-run RUN --out PATH), a model object",
                hint="conveyor model register NAME PATH",
            )
        if run is not None and out is None and path is None:
            raise UsageError("--from-run needs --out PATH: the run's output to register", hint="--out model.pkl")
        from conveyor.store import RunStore

        runs = RunStore(self.db)
        with ws.lock():
            if model is not None:
                artifact, name_in_store, detected = self._save_object(ws, model)
            elif out is not None:
                if run is None:
                    raise UsageError(
                        "--out names an output of a run: give the run with --from-run", hint="--from-run latest"
                    )
                artifact, name_in_store, detected = self._from_run_output(ws, runs, run, out, flavor)
            else:
                assert path is not None
                artifact, name_in_store, detected = self._store_file(ws, Path(path), flavor)
            digest, size = artifact
            record, lineage = self._lineage(runs, digest, run)
            if run is not None and lineage.stage is None:
                assert record is not None
                raise UsageError(
                    f"run {record.id} did not produce this file: no stage of it wrote {digest[:12]}",
                    hint="leave out --from-run: the run that made the file is found by its hash",
                )
            commit = record.commit if record is not None else _head_commit(ws)
            source = out if out is not None else _source_of(ws, Path(path)) if path is not None else "(object)"
            actor = current_actor()
            for attempt in range(_REGISTER_ATTEMPTS):
                try:
                    version = self._insert_version(
                        name,
                        digest=digest,
                        size=size,
                        file_name=name_in_store,
                        detected=detected,
                        signature=signature,
                        description=description,
                        actor=actor,
                        run_id=record.id if record is not None else None,
                        commit=commit,
                        source=source,
                        lineage=lineage,
                        tags=tags or {},
                    )
                    break
                except ConflictError:
                    if attempt == _REGISTER_ATTEMPTS - 1:
                        raise
                    time.sleep(0.01 * (attempt + 1))
        return self.get(f"{name}:{version}")

    def _workspace(self, action: str) -> Workspace:
        if self.ws is None:
            raise UsageError(f"cannot {action} without a workspace: artifacts live in its cache", hint="run it in one")
        return self.ws

    def _store_file(
        self, ws: Workspace, path: Path, flavor: str | None
    ) -> tuple[tuple[str, int], str, _flavors.Detected]:
        if not path.exists():
            from conveyor.errors import MissingFileError

            raise MissingFileError(f"{path}: no such model file", hint="check the path")
        if not path.is_file():
            raise PathError(f"{path}: not a file", hint="register the model's file (a folder is not supported yet)")
        detected = _flavors.detect(path, flavor=flavor)
        from conveyor.versioning._repo import Repo

        with Repo(ws) as repo, repo.odb.batch() as batch:
            digest, size = batch.add_file(str(path))
        return (digest, size), path.name, detected

    def _from_run_output(
        self, ws: Workspace, runs: Any, run: str, out: str, flavor: str | None
    ) -> tuple[tuple[str, int], str, _flavors.Detected]:
        record = runs.get_run(run)
        found = {p: h for stage in record.stages for p, h in stage.outs.items()}
        if out not in found:
            hint = did_you_mean(out, list(found)) or f"its outputs are {', '.join(sorted(found)) or 'none'}"
            raise UsageError(f"run {record.id} has no output '{out}'", hint=hint)
        digest = found[out]
        path = self._object(ws, digest, out)
        return (digest, os.path.getsize(path)), Path(out).name, _flavors.detect(path, flavor=flavor, name=out)

    def _save_object(self, ws: Workspace, model: Any) -> tuple[tuple[str, int], str, _flavors.Detected]:
        import tempfile

        from conveyor.versioning._repo import Repo

        module = type(model).__module__.split(".", 1)[0]
        file_name = "model.skops" if module == "sklearn" else "model.joblib"
        with tempfile.TemporaryDirectory(dir=ws.conveyor_dir) as folder:
            path = Path(folder) / file_name
            detected = _flavors.save(model, path)
            with Repo(ws) as repo, repo.odb.batch() as batch:
                digest, size = batch.add_file(str(path))
        return (digest, size), file_name, detected

    def _lineage(self, runs: Any, digest: str, run: str | None) -> tuple[RunRecord | None, Lineage]:
        if run is not None:
            record = runs.get_run(run)
        else:
            producing = runs.runs_producing(digest)
            if not producing:
                return None, Lineage()
            record = runs.get_run(producing[0][0])
        return record, lineage_of(runs, record, digest)

    def _insert_version(
        self,
        name: str,
        *,
        digest: str,
        size: int,
        file_name: str,
        detected: _flavors.Detected,
        signature: Signature | None,
        description: str,
        actor: str,
        run_id: str | None,
        commit: str | None,
        source: str,
        lineage: Lineage,
        tags: dict[str, str],
    ) -> int:
        versions = t.model_versions
        now = time.time()
        with self.db.transaction(f"register a version of model '{name}'") as conn:
            model_id = self._ensure_model(conn, name, actor, now)
            number = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(versions.c.version), 0) + 1).where(
                    versions.c.model_id == model_id
                )
            ).scalar_one()
            version_id = conn.execute(
                versions.insert()
                .values(
                    model_id=model_id,
                    version=number,
                    artifact_hash=digest,
                    artifact_size=size,
                    artifact_name=file_name,
                    flavor=detected.flavor,
                    format=detected.format,
                    loader=json.dumps(detected.loader, sort_keys=True),
                    signature=None if signature is None else json.dumps(signature.to_json(), sort_keys=True),
                    description=description,
                    created_at=now,
                    created_by=actor,
                    run_id=run_id,
                    git_commit=commit,
                    source=source,
                    lineage=json.dumps(lineage.to_json(), sort_keys=True, default=str),
                )
                .returning(versions.c.id)
            ).scalar_one()
            if tags:
                conn.execute(
                    t.version_tags.insert(), [{"version_id": version_id, "key": k, "value": v} for k, v in tags.items()]
                )
        return int(number)

    def _ensure_model(self, conn: sa.Connection, name: str, actor: str, now: float) -> int:
        conn.execute(
            self.db.upsert(t.models)
            .values(name=name, created_at=now, created_by=actor)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return int(conn.execute(sa.select(t.models.c.id).where(t.models.c.name == name)).scalar_one())

    # -- reading -----------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """Every registered model, by name."""
        with self.db.transaction("read the registry", write=False) as conn:
            rows = conn.execute(sa.select(t.models).order_by(t.models.c.name)).all()
            return [self._model_info(conn, row) for row in rows]

    def aliases(self, name: str) -> dict[str, int]:
        """The aliases of model ``name`` and the versions they point at (one cheap query: what a
        server polls to follow its alias)."""
        return {alias: version for alias, (version, _at) in self.alias_stamps(name).items()}

    def alias_stamps(self, name: str) -> dict[str, tuple[int, float]]:
        """:meth:`aliases` with when each alias last moved: a server tells a version put back on
        an alias (worth another try) from the same move it already tried."""
        with self.db.transaction("read the registry", write=False) as conn:
            rows = conn.execute(
                sa.select(t.aliases.c.alias, t.aliases.c.version, t.aliases.c.updated_at)
                .join(t.models, t.models.c.id == t.aliases.c.model_id)
                .where(t.models.c.name == name)
            ).all()
        return {alias: (int(version), float(at)) for alias, version, at in rows}

    def model(self, name: str) -> ModelInfo:
        with self.db.transaction("read the registry", write=False) as conn:
            return self._model_info(conn, self._model_row(conn, name))

    def _model_row(self, conn: sa.Connection, name: str, *, lock: bool = False) -> Any:
        query = sa.select(t.models).where(t.models.c.name == check_name(name))
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            names = [r[0] for r in conn.execute(sa.select(t.models.c.name)).all()]
            hint = did_you_mean(name, names) or (
                "'conveyor model list' shows the registered models" if names else "no model is registered yet"
            )
            raise UsageError(f"no model '{name}' in the registry", hint=hint)
        return row

    def _model_info(self, conn: sa.Connection, row: Any) -> ModelInfo:
        versions = t.model_versions
        count, latest = conn.execute(
            sa.select(sa.func.count(), sa.func.max(versions.c.version)).where(versions.c.model_id == row.id)
        ).one()
        aliases = dict(
            conn.execute(
                sa.select(t.aliases.c.alias, t.aliases.c.version)
                .where(t.aliases.c.model_id == row.id)
                .order_by(t.aliases.c.alias)
            ).all()
        )
        tags = dict(
            conn.execute(
                sa.select(t.model_tags.c.key, t.model_tags.c.value)
                .where(t.model_tags.c.model_id == row.id)
                .order_by(t.model_tags.c.key)
            ).all()
        )
        return ModelInfo(row.name, row.description, row.created_at, row.created_by, int(count), latest, aliases, tags)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of model ``name``, oldest first."""
        with self.db.transaction("read the registry", write=False) as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(
                sa.select(t.model_versions)
                .where(t.model_versions.c.model_id == model.id)
                .order_by(t.model_versions.c.version)
            ).all()
            # three queries for the whole list, not three a version: tags, aliases, then checks
            tags: dict[int, dict[str, str]] = {}
            for version_id, key, value in conn.execute(
                sa.select(t.version_tags.c.version_id, t.version_tags.c.key, t.version_tags.c.value)
                .join(t.model_versions, t.model_versions.c.id == t.version_tags.c.version_id)
                .where(t.model_versions.c.model_id == model.id)
                .order_by(t.version_tags.c.key)
            ).all():
                tags.setdefault(version_id, {})[key] = value
            aliases: dict[int, list[str]] = {}
            for alias, number in conn.execute(
                sa.select(t.aliases.c.alias, t.aliases.c.version)
                .where(t.aliases.c.model_id == model.id)
                .order_by(t.aliases.c.alias)
            ).all():
                aliases.setdefault(number, []).append(alias)
            found = [
                self._version(conn, model, row, tags.get(row.id, {}), tuple(aliases.get(row.version, ())))
                for row in rows
            ]
        from dataclasses import replace

        checks = self._checks_for(found)
        return [replace(v, checks=tuple(checks[v.version])) for v in found]

    def get(self, ref: str) -> ModelVersion:
        """The version ``ref`` names: ``NAME:N``, ``NAME@ALIAS``, or ``NAME`` / ``NAME:latest``."""
        name, number, alias = parse_ref(ref)
        with self.db.transaction("read the registry", write=False) as conn:
            model = self._model_row(conn, name)
            versions = t.model_versions
            if alias is not None:
                number = conn.execute(
                    sa.select(t.aliases.c.version).where(
                        (t.aliases.c.model_id == model.id) & (t.aliases.c.alias == alias)
                    )
                ).scalar()
                if number is None:
                    known = [
                        a for (a,) in conn.execute(sa.select(t.aliases.c.alias).where(t.aliases.c.model_id == model.id))
                    ]
                    hint = did_you_mean(alias, known) or (
                        f"its aliases are {', '.join(sorted(known))}"
                        if known
                        else f"promote a version: conveyor model promote {name} N --to {alias}"
                    )
                    raise UsageError(f"model '{name}' has no alias '{alias}'", hint=hint)
            query = sa.select(versions).where(versions.c.model_id == model.id)
            if number is None:
                row = conn.execute(query.order_by(versions.c.version.desc()).limit(1)).first()
                if row is None:
                    raise UsageError(f"model '{name}' has no versions", hint="register one")
            else:
                row = conn.execute(query.where(versions.c.version == number)).first()
                if row is None:
                    latest = conn.execute(
                        sa.select(sa.func.max(versions.c.version)).where(versions.c.model_id == model.id)
                    ).scalar()
                    raise UsageError(
                        f"model '{name}' has no version {number}",
                        hint=f"its versions are 1 to {latest}" if latest else "it has no versions yet",
                    )
            version = self._version(conn, model, row)
        return self._with_checks(version)

    def _version(
        self,
        conn: sa.Connection,
        model: Any,
        row: Any,
        tags: dict[str, str] | None = None,
        aliases: tuple[str, ...] | None = None,
    ) -> ModelVersion:
        """The record of a version row; its tags and aliases looked up unless given."""
        if tags is None:
            tags = dict(
                conn.execute(
                    sa.select(t.version_tags.c.key, t.version_tags.c.value)
                    .where(t.version_tags.c.version_id == row.id)
                    .order_by(t.version_tags.c.key)
                ).all()
            )
        if aliases is None:
            aliases = tuple(
                a
                for (a,) in conn.execute(
                    sa.select(t.aliases.c.alias)
                    .where((t.aliases.c.model_id == model.id) & (t.aliases.c.version == row.version))
                    .order_by(t.aliases.c.alias)
                ).all()
            )
        return ModelVersion(
            model=model.name,
            version=row.version,
            artifact_hash=row.artifact_hash,
            artifact_size=row.artifact_size,
            artifact_name=row.artifact_name,
            flavor=row.flavor,
            format=row.format,
            loader=json.loads(row.loader),
            signature=None if row.signature is None else Signature.from_json(json.loads(row.signature)),
            description=row.description,
            created_at=row.created_at,
            created_by=row.created_by,
            run_id=row.run_id,
            git_commit=row.git_commit,
            source=row.source,
            lineage=Lineage.from_json(json.loads(row.lineage)),
            tags=tags,
            aliases=aliases,
        )

    def _with_checks(self, version: ModelVersion) -> ModelVersion:
        from dataclasses import replace

        return replace(version, checks=tuple(self.checks_of(version)))

    def checks_of(self, version: ModelVersion) -> list[CheckRecord]:
        """The check results that concern ``version``: run on its artifact (as the model), or
        data-only suites run on data in its lineage. Oldest first."""
        return self._checks_for([version])[version.version]

    def _checks_for(self, versions: list[ModelVersion]) -> dict[int, list[CheckRecord]]:
        """:meth:`checks_of` for several versions of one model, in two queries."""
        from conveyor.store._checks import checks_on

        found: dict[int, list[CheckRecord]] = {v.version: [] for v in versions}
        by_artifact: dict[str, list[int]] = {}
        for v in versions:
            by_artifact.setdefault(v.artifact_hash, []).append(v.version)
        for row in checks_on(self.db, set(by_artifact), roles=("model",)):
            for number in by_artifact.get(row.inputs.get("model", ("", ""))[1], ()):
                found[number].append(self._check_record(row, "model"))
        raw = {v.version: set(v.lineage.deps.values()) | set(v.lineage.upstream.values()) for v in versions}
        folders = self._folder_files(set().union(*raw.values()) if raw else set())
        lineages = {number: hashes.union(*(folders.get(h, ()) for h in hashes)) for number, hashes in raw.items()}
        every = set().union(*lineages.values()) if lineages else set()
        for row in checks_on(self.db, every, roles=("data", "train", "test")):
            if "model" in row.inputs or "champion" in row.inputs or row.summary.get("needs_model"):
                continue
            looked_at = [digest for role, (_path, digest) in row.inputs.items() if role in ("data", "train", "test")]
            # a data suite concerns a version when all it looked at is in the lineage (a train set
            # checked against some other test set says nothing of this model)
            for number, data in lineages.items():
                if all(d in data for d in looked_at):
                    found[number].append(self._check_record(row, "data"))
        return {number: sorted(records, key=lambda c: c.recorded_at) for number, records in found.items()}

    def _folder_files(self, hashes: set[str]) -> dict[str, set[str]]:
        """For each of ``hashes`` that is a folder's manifest, the hashes of its files: a check
        of data/train.csv concerns a model made from the folder data/."""
        if self.ws is None or not hashes:
            return {}
        from conveyor.errors import ConveyorError
        from conveyor.versioning._repo import Repo

        header = b"conveyor-manifest "  # a folder's manifest starts so (versioning/_manifest.py)
        found: dict[str, set[str]] = {}
        with Repo(self.ws) as repo:
            for digest in hashes:
                try:
                    with open(repo.odb.path(digest), "rb") as handle:
                        if not handle.read(len(header)).startswith(header):
                            continue
                    manifest = repo.try_manifest(digest)
                except (OSError, ConveyorError):
                    continue
                if manifest is not None:
                    found[digest] = {entry.digest for entry in manifest.entries.values()}
        return found

    @staticmethod
    def _check_record(row: Any, on: str) -> CheckRecord:
        champion = row.inputs.get("champion", (None, None))[1]
        return CheckRecord(
            row.suite, row.status, row.passed, row.recorded_at, row.stage, row.run_id, on, row.summary, champion
        )

    # -- aliases -----------------------------------------------------------------------------

    def judge(self, version: ModelVersion, alias: str) -> Verdict:
        """What the promotion policy says of moving ``alias`` to ``version``: a comparison with a
        champion counts only when that champion is what ``alias`` serves now."""
        return self.policy.judge(alias, version.checks, champion=self._alias_artifact(version.model, alias))

    def _alias_artifact(self, name: str, alias: str) -> str | None:
        """The artifact hash ``alias`` points at now (None: it points nowhere yet)."""
        versions, aliases = t.model_versions, t.aliases
        with self.db.transaction("read the registry", write=False) as conn:
            model = self._model_row(conn, name)
            return conn.execute(
                sa.select(versions.c.artifact_hash)
                .join(aliases, (aliases.c.model_id == versions.c.model_id) & (aliases.c.version == versions.c.version))
                .where((aliases.c.model_id == model.id) & (aliases.c.alias == alias))
            ).scalar()

    def promote(
        self,
        ref: str,
        *,
        to: str,
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
        expect_current: int | None = None,
    ) -> AliasMove:
        """Point alias ``to`` at the version ``ref`` names, if the policy allows it (or
        ``force`` with a ``reason``); the move and its audit record land together.
        ``expect_current``: refuse (:class:`ConflictError`) unless ``to`` still points there."""
        check_name(to, "alias")
        version = self.get(ref)
        verdict = self.judge(version, to)
        if not verdict.allowed and not force:
            raise PromotionRefused(
                f"{version.ref} cannot become '{to}': {verdict.explain()}",
                hint='run the missing checks on it, or override: --force --reason "..." (the history keeps both)',
            )
        if force and not reason.strip():
            raise UsageError("--force needs --reason: the audit history records why", hint='--reason "hotfix for ..."')
        policy = {**verdict.to_json(), "overridden": bool(force and not verdict.allowed)}
        judged_against = self.get(f"{version.model}@{to}").version if verdict.champion_checked else None
        if expect_current is not None:
            judged_against = expect_current
        return self._move(
            version.model,
            to,
            version.version,
            "promote",
            reason=reason,
            forced=force,
            policy=policy,
            actor=actor,
            expect_current=judged_against,
        )

    def rollback(self, name: str, *, alias: str, reason: str = "", actor: str | None = None) -> AliasMove:
        """Move ``alias`` back to the version it pointed at before its current one."""
        check_name(alias, "alias")
        return self._move(name, alias, None, "rollback", reason=reason, actor=actor)

    def remove_alias(self, name: str, *, alias: str, reason: str = "", actor: str | None = None) -> AliasMove:
        check_name(alias, "alias")
        return self._move(name, alias, None, "remove", reason=reason, actor=actor)

    def abort(
        self, name: str, *, alias: str, reason: str, actor: str | None = None, expect_current: int | None = None
    ) -> AliasMove:
        """Take ``alias`` (a canary or shadow candidate) off its version because the rollout
        failed: removed like :meth:`remove_alias`, recorded as ``abort`` with the reason."""
        check_name(alias, "alias")
        return self._move(name, alias, None, "abort", reason=reason, actor=actor, expect_current=expect_current)

    def _move(
        self,
        name: str,
        alias: str,
        target: int | None,
        action: str,
        *,
        reason: str,
        forced: bool = False,
        policy: dict[str, Any] | None = None,
        actor: str | None = None,
        expect_current: int | None = None,
    ) -> AliasMove:
        who = actor or current_actor()
        aliases, events = t.aliases, t.alias_events
        with self.db.transaction(f"move alias '{alias}' of model '{name}'") as conn:
            model = self._model_row(conn, name, lock=True)  # one mover per model at a time (PostgreSQL)
            now = time.time()  # once the lock is held: a mover that waited is not dated before the one it waited for
            this = (aliases.c.model_id == model.id) & (aliases.c.alias == alias)
            current = conn.execute(sa.select(aliases.c.version).where(this)).scalar()
            if expect_current is not None and current != expect_current:
                raise ConflictError(
                    f"'{alias}' moved to {name}:{current} while the promotion was judged against "
                    f"{name}:{expect_current}",
                    hint="run the promotion again: it is judged against the champion now in place",
                )
            if action == "rollback":
                target = self._previous(conn, model, alias, current)
            elif action in ("remove", "abort") and current is None:
                raise UsageError(f"model '{name}' has no alias '{alias}'", hint="nothing to remove")
            if action == "promote" and target == current:
                raise UsageError(
                    f"'{alias}' already points at {name}:{target}", hint="promote another version, or nothing to do"
                )
            if target is None:
                conn.execute(aliases.delete().where(this))
            elif current is None:
                conn.execute(aliases.insert().values(model_id=model.id, alias=alias, version=target, updated_at=now))
            else:
                conn.execute(aliases.update().where(this).values(version=target, updated_at=now))
            conn.execute(
                events.insert().values(
                    model_id=model.id,
                    alias=alias,
                    action=action,
                    from_version=current,
                    to_version=target,
                    at=now,
                    actor=who,
                    reason=reason,
                    forced=forced,
                    policy=json.dumps(policy or {}, sort_keys=True),
                )
            )
        move = AliasMove(name, alias, action, current, target, now, who, reason, forced, policy or {})
        if self.ws is not None and action != "remove":
            from conveyor.notify import emit

            event = "model.promoted" if action == "promote" else "model.rolled_back"
            emit(self.ws.root, event, **move.to_json())
        return move

    def _previous(self, conn: sa.Connection, model: Any, alias: str, current: int | None) -> int:
        """The version ``alias`` pointed at before its current one: its moves replayed as a
        stack (a promotion pushes, a rollback pops), so rolling back twice goes back twice."""
        events = t.alias_events
        stack: list[int] = []
        for action, to_version in conn.execute(
            sa.select(events.c.action, events.c.to_version)
            .where((events.c.model_id == model.id) & (events.c.alias == alias))
            .order_by(events.c.id)
        ).all():
            if action == "promote" and to_version is not None:
                stack.append(to_version)
            elif action == "rollback" and stack:
                stack.pop()
            elif action in ("remove", "abort"):
                stack.clear()
        if current is None or len(stack) < 2:
            raise UsageError(
                f"model '{model.name}': '{alias}' has no earlier version to roll back to",
                hint=f"promote a version instead: conveyor model promote {model.name} VERSION --to {alias}",
            )
        return stack[-2]

    def history(self, name: str, *, alias: str | None = None) -> list[AliasMove]:
        """Every alias move of model ``name`` (of one ``alias``), oldest first."""
        events = t.alias_events
        with self.db.transaction("read the registry", write=False) as conn:
            model = self._model_row(conn, name)
            query = sa.select(events).where(events.c.model_id == model.id)
            if alias is not None:
                query = query.where(events.c.alias == check_name(alias, "alias"))
            rows = conn.execute(query.order_by(events.c.id)).all()  # the order the moves were made in
        return [
            AliasMove(
                name,
                row.alias,
                row.action,
                row.from_version,
                row.to_version,
                row.at,
                row.actor,
                row.reason,
                bool(row.forced),
                json.loads(row.policy),
            )
            for row in rows
        ]

    def alias_at(self, name: str, alias: str, when: float) -> int | None:
        """The version ``alias`` pointed at, at time ``when`` (Unix seconds); None: none then."""
        version: int | None = None
        for move in self.history(name, alias=alias):
            if move.at > when:
                break
            version = move.to_version
        return version

    # -- tags and descriptions ---------------------------------------------------------------

    def set_tag(self, ref: str, key: str, value: str | None) -> None:
        """Set (``value`` None: delete) tag ``key`` on a model (``NAME``) or a version (``NAME:N``)."""
        check_name(key, "tag name")
        name, number, alias = parse_ref(ref)
        whole_model = number is None and alias is None and ":" not in ref
        with self.db.transaction("tag") as conn:
            model = self._model_row(conn, name)
            if whole_model:
                table, owner, owner_id = t.model_tags, t.model_tags.c.model_id, model.id
            else:
                table, owner, owner_id = t.version_tags, t.version_tags.c.version_id, self._version_id(conn, ref)
            conn.execute(table.delete().where((owner == owner_id) & (table.c.key == key)))
            if value is not None:
                conn.execute(table.insert().values({owner.name: owner_id, "key": key, "value": value}))

    def describe(self, ref: str, text: str) -> None:
        """Set the description of a model (``NAME``) or a version (``NAME:N``, ``NAME@ALIAS``)."""
        name, number, alias = parse_ref(ref)
        with self.db.transaction("describe") as conn:
            model = self._model_row(conn, name)
            if number is None and alias is None and ":" not in ref:
                conn.execute(t.models.update().where(t.models.c.id == model.id).values(description=text))
            else:
                version_id = self._version_id(conn, ref)
                conn.execute(
                    t.model_versions.update().where(t.model_versions.c.id == version_id).values(description=text)
                )

    def _version_id(self, conn: sa.Connection, ref: str) -> int:
        version = self.get(ref)
        versions = t.model_versions
        model = self._model_row(conn, version.model)
        return int(
            conn.execute(
                sa.select(versions.c.id).where(
                    (versions.c.model_id == model.id) & (versions.c.version == version.version)
                )
            ).scalar_one()
        )

    # -- artifacts ---------------------------------------------------------------------------

    def artifact_path(self, ref: str | ModelVersion) -> Path:
        """The cached artifact of a version, its content verified against the recorded hash."""
        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        ws = self._workspace("load a model")
        return self._object(ws, version.artifact_hash, f"{version.ref} ({version.artifact_name})")

    @staticmethod
    def _object(ws: Workspace, digest: str, label: str) -> Path:
        from conveyor.versioning._hashing import hash_file
        from conveyor.versioning._repo import Repo

        with Repo(ws) as repo:
            path = Path(repo.odb.path(digest))
        if not path.exists():
            raise ObjectMissingError(
                f"{label}: artifact {digest[:12]} is not in the cache",
                hint="fetch it from the remote: conveyor pull (or conveyor fetch)",
            )
        actual, _size = hash_file(path)
        if actual != digest:
            raise CorruptObjectError(
                f"{label}: the cached artifact does not match its recorded hash {digest[:12]} (it is {actual[:12]})",
                hint="remove the damaged object with 'conveyor verify --repair' and fetch it again",
            )
        return path

    def load(self, ref: str | ModelVersion, *, environment: str = "warn") -> Any:
        """The model object of a version: the artifact verified against its hash, then loaded
        as its flavor says (pickles are safe to load here because their hash is pinned).

        ``environment``: what to do when a package the model loads with (scikit-learn, NumPy,
        ...) differs here from its training run's at a level known to break loading: ``refuse``
        (:class:`~conveyor.errors.EnvironmentMismatchError`), ``warn`` (a log warning) or ``off``.
        """
        from conveyor.registry import _compat

        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        if _compat.check_mode(environment) != "off":
            trained = self.environment_of(version)
            if trained is not None:
                _compat.enforce(
                    version, trained.packages, mode=environment, source=f"its run {version.run_id}'s environment"
                )
        path = self.artifact_path(version)
        detected = _flavors.Detected(version.flavor, version.format, version.loader)
        return _flavors.load(path, detected, pinned=True)

    def environment_of(self, ref: str | ModelVersion) -> RunEnvironment | None:
        """The environment (Python, platform, installed distributions) the run that produced
        version ``ref`` ran in; None when the version has no run or its packages were not kept."""
        from conveyor.store import RunStore

        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        if version.run_id is None:
            return None
        try:
            return RunStore(self.db).environment_of(version.run_id)
        except UsageError:  # the run's record was deleted
            return None

    # -- bundles -----------------------------------------------------------------------------

    def record_bundle(
        self, ref: str | ModelVersion, *, sha256: str, size: int, options: dict[str, Any] | None = None
    ) -> BundleRecord:
        """Remember that a bundle whose archive hashes to ``sha256`` was built from ``ref`` (a
        rebuild of the same bytes updates when and by whom)."""
        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        actor, now = current_actor(), time.time()
        bundles = t.model_bundles
        with self.db.transaction("record the bundle") as conn:
            model = self._model_row(conn, version.model)
            version_id = conn.execute(
                sa.select(t.model_versions.c.id).where(
                    (t.model_versions.c.model_id == model.id) & (t.model_versions.c.version == version.version)
                )
            ).scalar_one()
            values = {"size": size, "built_at": now, "built_by": actor, "options": json.dumps(options or {})}
            statement = self.db.upsert(bundles).values(version_id=version_id, sha256=sha256, **values)
            conn.execute(statement.on_conflict_do_update(index_elements=["version_id", "sha256"], set_=values))
        return BundleRecord(version.model, version.version, sha256, size, now, actor, dict(options or {}))

    def bundles(self, ref: str | ModelVersion) -> list[BundleRecord]:
        """The bundles built from version ``ref``, newest first."""
        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        return [b for b in self._bundles() if (b.model, b.version) == (version.model, version.version)]

    def find_bundle(self, sha256: str) -> BundleRecord:
        """The bundle whose archive's SHA-256 is ``sha256`` (or starts with it: 12 characters or more)."""
        wanted = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{12,64}", wanted):
            raise UsageError(
                f"'{sha256}' is not a bundle's SHA-256", hint="give its 64 hex digits, or at least the first 12"
            )
        found = [b for b in self._bundles(prefix=wanted)]
        if not found:
            raise UsageError(f"no bundle {wanted[:12]} was built from this registry", hint="conveyor build NAME@ALIAS")
        if len({b.sha256 for b in found}) > 1:
            raise UsageError(f"'{wanted}' names more than one bundle", hint="give more of its digits")
        return found[0]

    def _bundles(self, prefix: str | None = None) -> list[BundleRecord]:
        bundles, versions = t.model_bundles, t.model_versions
        query = (
            sa.select(t.models.c.name, versions.c.version, bundles)
            .join(versions, versions.c.id == bundles.c.version_id)
            .join(t.models, t.models.c.id == versions.c.model_id)
            .order_by(bundles.c.built_at.desc())
        )
        if prefix is not None:
            query = query.where(bundles.c.sha256.like(prefix + "%"))
        with self.db.transaction("read the registry", write=False) as conn:
            rows = conn.execute(query).all()
        return [
            BundleRecord(
                row.name, row.version, row.sha256, row.size, row.built_at, row.built_by, json.loads(row.options)
            )
            for row in rows
        ]

    def artifact_hashes(self) -> Iterator[tuple[str, str]]:
        """(hash, label) of every registered artifact: roots for gc and push."""
        versions = t.model_versions
        with self.db.transaction("read the registry", write=False) as conn:
            rows = conn.execute(
                sa.select(t.models.c.name, versions.c.version, versions.c.artifact_hash).join(
                    t.models, t.models.c.id == versions.c.model_id
                )
            ).all()
        for name, number, digest in rows:
            yield digest, f"model {name}:{number}"


def _source_of(ws: Workspace, path: Path) -> str:
    """Where a registered file came from: relative to the workspace when inside it."""
    resolved = Path(os.path.normpath(path.absolute()))
    try:
        return ws.relpath(resolved)
    except ValueError:
        return str(resolved)


def _head_commit(ws: Workspace) -> str | None:
    from conveyor.store import git_state

    return git_state(ws.root)[0] if ws.has_scm else None


def lineage_of(runs: Any, record: RunRecord, digest: str) -> Lineage:
    """What produced ``digest`` in run ``record``: the stage, its deps, and every dep further
    upstream (through this run's stages, or the run that last produced an upstream file)."""
    producer = next((s for s in record.stages if digest in s.outs.values()), None)
    if producer is None:
        return Lineage(params=dict(record.params), metrics=dict(record.metrics))
    by_output = {h: s for s in record.stages for h in s.outs.values() if s.deps}
    upstream: dict[str, str] = {}
    frontier = list(producer.deps.items())
    seen: set[tuple[str, str]] = set()
    while frontier and len(seen) < 10_000:
        path, dep_hash = frontier.pop()
        if (path, dep_hash) in seen:
            continue
        seen.add((path, dep_hash))
        if path not in producer.deps:
            upstream[path] = dep_hash
        stage = by_output.get(dep_hash)
        if stage is None:
            made = runs.runs_producing(dep_hash)
            if made:
                earlier = runs.get_run(made[0][0])
                stage = next((s for s in earlier.stages if s.name == made[0][1]), None)
        if stage is not None:
            frontier.extend(stage.deps.items())
    return Lineage(
        stage=producer.name,
        deps=dict(producer.deps),
        upstream=upstream,
        params=dict(record.params),
        metrics=dict(record.metrics),
    )


def _registry_roots(ws: Workspace) -> list[tuple[str, str]]:
    """(hash, label) of the artifacts of every registered version, for gc and push; nothing
    when the workspace has no database yet."""
    db = Database.open(ws, create=False)
    try:
        return list(Registry(db, workspace=ws).artifact_hashes())
    finally:
        db.close()
