"""What the registry returns: typed, immutable records (also as JSON for ``--json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conveyor.registry._signature import Signature


@dataclass(frozen=True)
class CheckRecord:
    """One check suite run that concerns a version: on its artifact, or on data in its lineage."""

    suite: str
    status: str  # the suite's worst status: pass, warn, fail, error
    passed: bool
    recorded_at: float
    stage: str | None = None  # the check stage of conveyor.yaml that ran it
    run_id: str | None = None
    on: str = "model"  # what it looked at: "model" (this artifact) or "data" (data in its lineage)
    summary: dict[str, Any] = field(default_factory=dict)
    champion: str | None = None  # the artifact hash it was compared with (champion/challenger suites)


@dataclass(frozen=True)
class Lineage:
    """What produced an artifact: the stage of a run, the hashes of its deps, its params and metrics."""

    stage: str | None = None
    deps: dict[str, str] = field(default_factory=dict)  # path -> content hash, the producing stage's
    upstream: dict[str, str] = field(default_factory=dict)  # path -> hash, every dep further up the run
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lineage:
        return cls(
            stage=data.get("stage"),
            deps=dict(data.get("deps") or {}),
            upstream=dict(data.get("upstream") or {}),
            params=dict(data.get("params") or {}),
            metrics=dict(data.get("metrics") or {}),
        )


@dataclass(frozen=True)
class ModelVersion:
    """Version N of a model: its artifact (by content hash), how to load it, and where it came from."""

    model: str
    version: int
    artifact_hash: str
    artifact_size: int
    artifact_name: str  # the file name it was registered under (model.skops, model.pkl, ...)
    flavor: str  # sklearn, xgboost, lightgbm, pytorch, onnx, python
    format: str  # skops, joblib, pickle, onnx, torchscript, xgboost-json, xgboost-ubj, lightgbm-text
    loader: dict[str, Any]
    signature: Signature | None
    description: str
    created_at: float
    created_by: str
    run_id: str | None
    git_commit: str | None
    source: str
    lineage: Lineage
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    checks: tuple[CheckRecord, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["signature"] = None if self.signature is None else self.signature.to_json()
        data["aliases"] = list(self.aliases)
        data["checks"] = [asdict(c) for c in self.checks]
        return data


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its versions' count, the latest, its aliases, tags and description."""

    name: str
    description: str
    created_at: float
    created_by: str
    versions: int
    latest: int | None
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AliasMove:
    """One append-only audit record: an alias moved (or was removed) by someone, for a reason."""

    model: str
    alias: str
    action: str  # promote, rollback, remove, abort (a rollout that failed)
    from_version: int | None
    to_version: int | None
    at: float
    actor: str
    reason: str = ""
    forced: bool = False
    policy: dict[str, Any] = field(default_factory=dict)  # what the policy required and what was missing

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BundleRecord:
    """A deployable bundle built from a version: its archive's SHA-256, size, when and by whom."""

    model: str
    version: int
    sha256: str
    size: int
    built_at: float
    built_by: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
