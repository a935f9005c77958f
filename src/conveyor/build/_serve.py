"""Serving a bundle from its folder alone: no registry, no workspace, one pinned version.

:class:`BundleSource` is what the server's :class:`~conveyor.serving._deployment.Deployment`
reads versions from instead of the registry: the version ``bundle.json`` describes, its artifact
verified against the recorded hash, and the packages of ``requirements.lock`` as the
environment the installed ones are compared with before loading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conveyor.build._bundle import FORMAT, LOCK, MANIFEST
from conveyor.errors import CorruptFileError, MissingFileError, UsageError
from conveyor.registry import CheckRecord, Lineage, ModelVersion, Signature


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: no such bundle folder", hint="give the folder 'conveyor build' wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingFileError(
            f"{folder}: not a bundle (no {MANIFEST})", hint="give the folder 'conveyor build' wrote"
        ) from None
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{path}: unreadable ({exc})", hint="build the bundle again") from None
    if not isinstance(data, dict) or data.get("bundle_format") != FORMAT:
        raise CorruptFileError(
            f"{path}: bundle format {data.get('bundle_format') if isinstance(data, dict) else '?'} is not {FORMAT}",
            hint="build it again with this conveyor, or serve it with the conveyor its lock pins",
        )
    return data


def version_of(data: dict[str, Any], path: Path | None = None) -> ModelVersion:
    """The version a ``bundle.json`` describes; a field missing or of the wrong type is a
    :class:`CorruptFileError` naming it."""
    try:
        return _version_of(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        where = f"{path}: " if path is not None else ""
        raise CorruptFileError(
            f"{where}not a valid bundle manifest ({type(exc).__name__}: {exc})", hint="build the bundle again"
        ) from None


def _version_of(data: dict[str, Any]) -> ModelVersion:
    model, lineage = data["model"], dict(data.get("lineage") or {})
    artifact = model["artifact"]
    return ModelVersion(
        model=str(model["name"]),
        version=int(model["version"]),
        artifact_hash=str(artifact["hash"]),
        artifact_size=int(artifact["size"]),
        artifact_name=Path(str(artifact["path"])).name,
        flavor=str(model["flavor"]),
        format=str(model["format"]),
        loader=dict(model.get("loader") or {}),
        signature=None if model.get("signature") is None else Signature.from_json(model["signature"]),
        description=str(model.get("description") or ""),
        created_at=float(model.get("registered_at") or 0.0),
        created_by=str(model.get("registered_by") or ""),
        run_id=lineage.pop("run", None),
        git_commit=lineage.pop("commit", None),
        source=str(lineage.pop("source", "") or ""),
        lineage=Lineage.from_json(lineage),
        checks=tuple(CheckRecord(**check) for check in data.get("checks_at_registration") or []),
    )


class BundleSource:
    """The one version of a bundle, for a server (it has the registry's ``get``/``load``)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).absolute()
        self.manifest = _read_manifest(self.folder)
        self.version = version_of(self.manifest, self.folder / MANIFEST)

    def get(self, ref: str) -> ModelVersion:
        from conveyor.registry import parse_ref

        name, number, alias = parse_ref(ref)
        if name != self.version.model or (number is not None and number != self.version.version) or alias:
            raise UsageError(f"this bundle holds {self.version.ref}, not {ref}", hint=f"ask for {self.version.ref}")
        return self.version

    def pinned(self) -> dict[str, str]:
        from conveyor.build._lock import parse

        try:
            return parse((self.folder / LOCK).read_text(encoding="utf-8"))
        except OSError:
            return dict(self.manifest.get("environment", {}).get("packages") or {})

    def artifact_path(self) -> Path:
        from conveyor.errors import CorruptObjectError
        from conveyor.versioning._hashing import hash_file

        relative = f"model/{self.version.artifact_name}"
        if str(self.manifest["model"]["artifact"]["path"]) != relative or self.version.artifact_name in ("", ".", ".."):
            raise CorruptFileError(
                f"{self.folder / MANIFEST}: the artifact must be {relative} inside the bundle",
                hint="build the bundle again",
            )
        path = self.folder / relative
        if not path.is_file() or path.is_symlink():
            raise MissingFileError(f"{self.version.ref}: the bundle has no {path.name}", hint="build the bundle again")
        actual, _size = hash_file(path)
        if actual != self.version.artifact_hash:
            raise CorruptObjectError(
                f"{self.version.ref}: {path.name} does not match its recorded hash "
                f"{self.version.artifact_hash[:12]} (it is {actual[:12]})",
                hint="the bundle was changed after it was built: build it again",
            )
        return path

    def load(self, ref: str | ModelVersion, *, environment: str = "warn") -> Any:
        from conveyor.registry import _compat, _flavors

        version = ref if isinstance(ref, ModelVersion) else self.get(ref)
        _compat.enforce(version, self.pinned(), mode=environment, source="the bundle's requirements.lock")
        path = self.artifact_path()
        return _flavors.load(path, _flavors.Detected(version.flavor, version.format, version.loader), pinned=True)

    def close(self) -> None:
        pass


def serve_bundle(
    folder: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    max_body: int | None = None,
    access_log: str | None = "-",
    admin_token: str | None = None,
    predict_token: str | None = None,
    environment: str = "refuse",
    on_ready: Any = None,
) -> None:
    """Serve the model of the bundle in ``folder`` until interrupted: one process, one version
    (scale with replicas). The version is loaded, verified and warmed up before the port opens."""
    from conveyor.registry._compat import check_mode
    from conveyor.serving._app import (
        ADMIN_TOKEN_ENV,
        DEFAULT_MAX_BODY,
        PREDICT_TOKEN_ENV,
        _configure_logging,
        create_app,
    )
    from conveyor.serving._deployment import Deployment
    from conveyor.serving._metrics import Metrics

    try:
        import uvicorn
    except ImportError:
        raise UsageError("serving needs Starlette and uvicorn", hint="pip install 'conveyor[serve]'") from None
    check_mode(environment)
    source = BundleSource(folder)
    metrics = Metrics()
    deployment = Deployment(
        source.version.model, alias=None, open_registry=lambda: source, metrics=metrics, environment=environment
    )
    deployment.start(first=source.version.ref)
    _configure_logging(access_log)
    app = create_app(
        deployment,
        max_body=max_body or DEFAULT_MAX_BODY,
        metrics=metrics,
        admin_token=admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None,
        predict_token=predict_token or os.environ.get(PREDICT_TOKEN_ENV) or None,
        on_shutdown=deployment.stop,
    )
    if on_ready is not None:
        on_ready()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
