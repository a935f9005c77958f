"""``conveyor build``: the version that was tested, packaged with everything it needs to serve.

A bundle is a folder and the same folder as a ``.tar.gz``::

    iris-3/
      bundle.json          the version: artifact hash, signature, lineage, checks, environment
      model/model.skops    the artifact, verified against its hash
      requirements.lock    the pinned packages (the training run's versions) and conveyor's wheel
      wheels/conveyor-*.whl
      serve.py             serves the model from this folder alone
      Dockerfile, .dockerignore, k8s/*.yaml, kserve/inferenceservice.yaml, README.md

Nothing in it depends on when or where it was built, so building the same version again gives
the same archive, byte for byte; its SHA-256 is recorded on the version in the registry. The
bundle is written beside its destination and moved into place whole: an interrupted build
leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conveyor.build import _lock, _recipes
from conveyor.build._archive import write_archive
from conveyor.build._wheel import build_wheel
from conveyor.errors import ObjectMissingError, UsageError
from conveyor.registry import ModelVersion, Registry
from conveyor.workspace import Workspace

FORMAT = 1
MANIFEST = "bundle.json"
LOCK = "requirements.lock"
ENTRY_POINT = "serve.py"

_SERVE_PY = '''\
"""Serve this bundle's model over HTTP from this folder alone (no registry, no workspace).

    python serve.py [--host 127.0.0.1] [--port 8080] [--allow-env-mismatch]
"""

import sys
from pathlib import Path

from conveyor.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "--bundle", str(Path(__file__).resolve().parent), *sys.argv[1:]]))
'''


@dataclass(frozen=True, slots=True)
class Bundle:
    """A built bundle: where its folder and archive are, and the archive's SHA-256."""

    ref: str
    folder: Path
    archive: Path
    sha256: str
    size: int
    pins: list[_lock.Pin] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "folder": str(self.folder),
            "archive": str(self.archive),
            "sha256": self.sha256,
            "size": self.size,
            "packages": {p.name: p.version for p in self.pins},
            "files": self.files,
        }


def build_bundle(
    ref: str,
    output: str | os.PathLike[str] | None = None,
    *,
    image: str | None = None,
    base_image: str | None = None,
    current_environment: bool = False,
    workspace: Workspace | None = None,
) -> Bundle:
    """Build the bundle of version ``ref`` (``NAME@ALIAS`` or ``NAME:N``) into ``output`` (default
    ``bundles/NAME-N`` in the workspace) and ``output.tar.gz``.

    The packages are pinned to the versions the version's training run had; a version without a
    recorded environment is refused unless ``current_environment`` pins this environment's.
    ``image`` names the container image in the manifests (default ``NAME:vN``); ``base_image``
    the Dockerfile's base (default the training run's Python, ``python:X.Y.Z-slim``).
    """
    ws = workspace or Workspace.find()
    with Registry.open(ws) as registry:
        version = registry.get(ref)
        folder = Path(output) if output is not None else ws.root / "bundles" / f"{version.model}-{version.version}"
        folder = folder.absolute()
        archive = folder.parent / f"{folder.name}.tar.gz"
        for existing in (folder, archive):
            if existing == archive and not folder.exists() and _interrupted(registry, version, archive):
                continue  # left by a build of this version killed before its folder was in place
            if existing.exists() or existing.is_symlink():
                raise UsageError(
                    f"{_shown(ws, existing)} already exists: a bundle is never written over another",
                    hint="remove it, or choose another folder with -o",
                )
        trained, python, platform_text = _environment(registry, version, current_environment)
        artifact = _artifact(ws, registry, version)
        target = _lock.target_environment(python, platform_text)
        pins = _lock.pins(version, trained, target=target, project=str(ws.root))
        wheel_name, wheel = build_wheel()
        facts = _recipes.Facts(
            model=version.model,
            version=version.version,
            artifact_hash=version.artifact_hash,
            python=python,
            image=image or _recipes.default_image(version.model, version.version),
            base_image=base_image or _recipes.default_base_image(python),
        )
        texts = {
            MANIFEST: _manifest(version, pins, wheel_name, wheel, facts, trained, current_environment),
            LOCK: _lock.render(pins, ref=version.ref, wheel=wheel_name),
            ENTRY_POINT: _SERVE_PY,
            **_recipes.manifests(facts),
        }
        _make_parent(ws, folder.parent)
        _sweep(folder)
        staging = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
        packed = folder.parent / f".{folder.name}.{os.getpid()}.tmp.tar.gz"
        moved: list[Path] = []
        try:
            staging.mkdir(mode=0o755)
            (staging / "model").mkdir()
            shutil.copyfile(artifact, staging / "model" / version.artifact_name)
            (staging / "wheels").mkdir()
            (staging / "wheels" / wheel_name).write_bytes(wheel)
            for name, text in texts.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            written = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]
            files = sorted([*written, "README.md"])
            (staging / "README.md").write_text(_recipes.readme(facts, files), encoding="utf-8")
            for path in staging.rglob("*"):
                path.chmod(0o755 if path.is_dir() or path.name == ENTRY_POINT else 0o644)
            staging.chmod(0o755)
            sha256 = write_archive(staging, packed, top=f"{facts.app}-{version.version}", mtime=int(version.created_at))
            size = packed.stat().st_size
            # Recorded first, then moved into place, archive before folder: a build killed at any
            # point leaves no bundle folder, or a complete one whose archive the registry knows.
            registry.record_bundle(
                version, sha256=sha256, size=size, options={"image": facts.image, "base_image": facts.base_image}
            )
            os.replace(packed, archive)
            moved.append(archive)
            os.replace(staging, folder)
            moved.append(folder)
        except BaseException:
            if folder not in moved:
                for path in moved:
                    path.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            packed.unlink(missing_ok=True)
    return Bundle(version.ref, folder, archive, sha256, size, pins, files)


def _make_parent(ws: Workspace, parent: Path) -> None:
    """Make the folder bundles go into; one made inside the workspace ignores its content in git
    (bundles are rebuilt from the registry, which records their hashes)."""
    if parent.is_dir():
        return
    parent.mkdir(parents=True)
    if parent.resolve().is_relative_to(ws.root.resolve()):
        (parent / ".gitignore").write_text("# bundles built by conveyor build: never committed\n*\n", encoding="utf-8")


def _interrupted(registry: Registry, version: ModelVersion, archive: Path) -> bool:
    if not archive.is_file() or archive.is_symlink():
        return False
    return sha256_of(archive) in {b.sha256 for b in registry.bundles(version)}


def sha256_of(path: Path) -> str:
    import hashlib

    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sweep(folder: Path) -> None:
    """Remove what builds of ``folder`` killed mid-way left (their process is gone)."""
    for leftover in folder.parent.glob(f".{folder.name}.*.tmp*"):
        pid = leftover.name[len(folder.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _shown(ws: Workspace, path: Path) -> str:
    try:
        return ws.relpath(path)
    except ValueError:
        return str(path)


def _environment(registry: Registry, version: ModelVersion, current: bool) -> tuple[dict[str, str], str, str]:
    """The packages to pin (name -> version), the Python to base the image on, the platform."""
    import platform

    from conveyor.registry._compat import installed_packages

    if current:
        return installed_packages(), platform.python_version(), platform.platform()
    recorded = registry.environment_of(version)
    if recorded is None:
        if version.run_id is None:
            why = "it was not produced by a conveyor run"
        elif not _run_exists(registry, version.run_id):
            why = f"the record of its run {version.run_id} was deleted"
        else:
            why = f"its run {version.run_id} has no recorded package list (a conveyor before 0003 ran it)"
        raise UsageError(
            f"{version.ref} has no recorded environment: {why}",
            hint="register it from a 'conveyor run' output (runs record their packages), or pin this "
            "environment's packages with --current-env",
        )
    return recorded.packages, recorded.python or platform.python_version(), recorded.platform


def _run_exists(registry: Registry, run_id: str) -> bool:
    from conveyor.store import RunStore

    try:
        RunStore(registry.db).get_run(run_id)
    except UsageError:
        return False
    return True


def _artifact(ws: Workspace, registry: Registry, version: ModelVersion) -> Path:
    """The version's artifact, verified; fetched from the default remote when not in the cache."""
    try:
        return registry.artifact_path(version)
    except ObjectMissingError:
        pass
    from conveyor.remote._config import remotes

    if not remotes(ws):
        raise ObjectMissingError(
            f"{version.ref}: artifact {version.artifact_hash[:12]} is not in the cache and no remote is configured",
            hint="build where it was registered, or add the remote that has it ('conveyor remote add') and build again",
        )
    from conveyor.remote._transfer import Root, fetch_into
    from conveyor.versioning._repo import Repo

    with ws.lock(), Repo(ws) as repo:
        result = fetch_into(repo, None, remote=None, roots=[Root(version.artifact_hash, "file", version.ref)])
    try:
        return registry.artifact_path(version)
    except ObjectMissingError:
        raise ObjectMissingError(
            f"{version.ref}: artifact {version.artifact_hash[:12]} is in neither the cache "
            f"nor remote '{result.remote}'",
            hint="push it from the workspace that registered it ('conveyor push'), then build again",
        ) from None


def _manifest(
    version: ModelVersion,
    pins: list[_lock.Pin],
    wheel_name: str,
    wheel: bytes,
    facts: _recipes.Facts,
    trained: dict[str, str],
    current_environment: bool,
) -> str:
    import hashlib

    from conveyor import __version__

    data = {
        "bundle_format": FORMAT,
        "model": {
            "name": version.model,
            "version": version.version,
            "flavor": version.flavor,
            "format": version.format,
            "loader": version.loader,
            "artifact": {
                "path": f"model/{version.artifact_name}",
                "hash": version.artifact_hash,
                "algorithm": "blake3",
                "size": version.artifact_size,
            },
            "signature": None if version.signature is None else version.signature.to_json(),
            "registered_at": version.created_at,
            "registered_by": version.created_by,
        },
        "lineage": {
            "run": version.run_id,
            "commit": version.git_commit,
            "source": version.source,
            **version.lineage.to_json(),
        },
        # what was checked before it was registered: later results (and tags, descriptions) would
        # change the bytes of a rebuild; the registry has them
        "checks_at_registration": [asdict(c) for c in version.checks if c.recorded_at <= version.created_at],
        "environment": {
            "pinned_from": "the build environment (--current-env)" if current_environment else "the training run",
            "python": facts.python,
            "conveyor_trained_with": trained.get("conveyor"),
            "packages": {p.name: p.version for p in pins},
            "conveyor_wheel": {"file": f"wheels/{wheel_name}", "sha256": hashlib.sha256(wheel).hexdigest()},
        },
        "serving": {"port": _recipes.PORT, "image": facts.image, "base_image": facts.base_image},
        "built_with": f"conveyor {__version__}",
    }
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
