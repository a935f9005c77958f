"""Checks meet the registry: models named by registry reference, pickles loaded only when
pinned or trusted, and every suite result recorded with the hashes of what it looked at.

Used by ``conveyor check`` and by ``check:`` stages (both shells over :mod:`conveyor.checks`,
which itself knows nothing of workspaces or databases).

A model file is *pinned* when its content hash is one the workspace already vouches for: a
registered version's artifact, an output recorded in ``conveyor.lock`` (the project's own
code made it), or a file tracked with ``conveyor add``. A pickle that is none of these runs
code nobody vouched for, so loading it needs ``--trust``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, ModelError

if TYPE_CHECKING:
    from conveyor.checks import SuiteResult
    from conveyor.workspace import Workspace

_REGISTRY_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(@[A-Za-z0-9][A-Za-z0-9_.\-]*|:([0-9]+|latest))\Z")


def is_registry_ref(text: str) -> bool:
    """``NAME@ALIAS`` or ``NAME:N`` / ``NAME:latest`` (and not a file that exists)."""
    return bool(_REGISTRY_REF.match(text)) and not os.path.exists(text)


class ModelInputs:
    """Resolves the models of one check run and remembers the files (and hashes) it looked at."""

    def __init__(self, ws: Workspace | None, *, trust: bool = False) -> None:
        self.ws = ws
        self.trust = trust
        self.files: dict[str, tuple[str, str]] = {}  # role -> (path or reference, content hash)
        self.signatures: dict[str, Any] = {}  # role -> the Signature of a registered version
        self._pinned: set[str] | None = None

    def model(self, spec: Any, role: str) -> Any:
        """What ``run_suite`` takes for ``spec``: a loaded model for a registry reference or a
        model file, ``spec`` itself otherwise (an object, ``module:function``)."""
        if spec is None or not isinstance(spec, (str, os.PathLike)):
            return spec
        text = os.fspath(spec)
        if is_registry_ref(text):
            return self._from_registry(text, role)
        path = Path(text)
        if not path.is_file():
            return spec  # module:function, or a missing file the checks report themselves
        from conveyor.checks import Model
        from conveyor.registry import _flavors
        from conveyor.versioning._hashing import hash_file

        digest, _size = hash_file(path)
        self.files[role] = (text, digest)
        detected = _flavors.detect(path)
        pinned = digest in self.pinned()
        if detected.format in _flavors.PICKLE_FORMATS and not (pinned or self.trust):
            raise ModelError(
                f"{text}: a {detected.format} file runs code when loaded, and nothing vouches for it "
                "(it is not a registered version, a pipeline output or a tracked file)",
                hint="register it ('conveyor model register'), track it ('conveyor add'), or pass --trust",
            )
        return Model(_flavors.load(path, detected, pinned=pinned, trust=self.trust), name=text)

    def _from_registry(self, ref: str, role: str) -> Any:
        from conveyor.checks import Model
        from conveyor.registry._registry import Registry

        if self.ws is None:
            raise ModelError(f"{ref}: a registry reference needs a workspace", hint="run it inside one")
        with Registry.open(self.ws) as registry:
            version = registry.get(ref)
            loaded = registry.load(version)
        self.files[role] = (version.ref, version.artifact_hash)
        if version.signature is not None:
            self.signatures[role] = version.signature
        return Model(loaded, name=version.ref)

    def datasets(self, specs: dict[str, Any], **options: Any) -> dict[str, Any]:
        """The data inputs, read and checked against the signature of every registered model
        among the inputs (a column missing or of the wrong type is one clear error, before any
        check runs). Without such a signature, the inputs as given."""
        if not self.signatures:
            return specs
        from conveyor.checks import Dataset, read_table

        found: dict[str, Any] = {}
        for role, spec in specs.items():
            if not isinstance(spec, (str, os.PathLike)):
                found[role] = spec
                continue
            frame = read_table(spec)
            for model_role, signature in self.signatures.items():
                signature.validate(frame, what=f"{os.fspath(spec)} (for the {model_role} {self.files[model_role][0]})")
            found[role] = Dataset(frame, name=os.fspath(spec), **options)
        return found

    def pinned(self) -> set[str]:
        if self._pinned is None:
            self._pinned = pinned_hashes(self.ws) if self.ws is not None else set()
        return self._pinned

    def data(self, role: str, spec: Any) -> None:
        """Remember a data input given as a file (its hash is what links it to lineages)."""
        if isinstance(spec, (str, os.PathLike)) and Path(spec).is_file():
            from conveyor.versioning._hashing import hash_file

            self.files[role] = (os.fspath(spec), hash_file(spec)[0])


def pinned_hashes(ws: Workspace) -> set[str]:
    """Content hashes the workspace vouches for: registered artifacts, lock outputs, tracked files."""
    from conveyor.pipeline._lock import LOCK_FILE, Lock
    from conveyor.versioning._repo import Repo

    found = {out.hash for entry in Lock.read(ws.root / LOCK_FILE).entries.values() for out in entry.outs}
    with Repo(ws) as repo:
        found.update(item.pointer.digest for item in repo.tracked())
    from conveyor.registry._roots import registry_roots

    found.update(digest for digest, _label in registry_roots(ws))
    return found


def record_result(
    ws: Workspace | None,
    result: SuiteResult,
    files: dict[str, tuple[str, str]],
    *,
    passed: bool | None = None,
    stage: str | None = None,
    run_id: str | None = None,
) -> bool:
    """Record a suite's verdict and its inputs' hashes in the workspace's database. Never
    fails the caller: the gate has already decided; a recording problem is printed."""
    if ws is None:
        return False
    from conveyor.checks._registry import CHECKS
    from conveyor.store._checks import record_check
    from conveyor.store._db import Database

    summary = {
        # a suite with model checks that was given no model file says nothing of any model or its data
        "needs_model": any("model" in CHECKS[r.check].needs for r in result.results if r.check in CHECKS),
        "counts": result.counts(),
        "problems": [r.check for r in result.results if r.status in ("fail", "error", "warn")],
    }
    try:
        with Database.open(ws) as db:
            record_check(
                db,
                suite=result.suite,
                status=result.status,
                passed=result.passed if passed is None else passed,
                inputs=files,
                summary=summary,
                stage=stage,
                run_id=run_id,
            )
    except ConveyorError as exc:
        print(f"note: the check result was not recorded: {exc.format_message()}", file=sys.stderr)
        return False
    return True
