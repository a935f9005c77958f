"""Whether this environment can load a model the way the one it was trained in did.

A scikit-learn estimator pickled (or saved with skops) under one minor version is not supported
under another: it may fail to load, or load and predict differently. The packages that decide
this for each flavor and format are compared between the versions a model was trained with (its
run's recorded environment, or a bundle's lock) and the installed ones, at the level of the
version each package promises compatibility for.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from conveyor.errors import EnvironmentMismatchError, UsageError

if TYPE_CHECKING:
    from conveyor.registry._records import ModelVersion

log = logging.getLogger("conveyor.registry")

MODES = ("refuse", "warn", "off")

# How much of a version must match to load a model: 1 = the major version, 2 = major.minor.
_PARTS = {
    "scikit-learn": 2,  # estimators are persisted and loaded only within a minor version
    "skops": 2,  # its file format moves with minor versions
    "numpy": 1,  # 2.0 moved numpy.core to numpy._core: older pickles of arrays break
    "pandas": 1,
    "scipy": 1,
    "joblib": 1,
    "xgboost": 1,
    "lightgbm": 1,
    "torch": 1,
}

# The distributions each flavor's models are loaded with, beyond those a pickle names.
_FLAVOR_PACKAGES = {
    "sklearn": ("scikit-learn", "numpy", "scipy"),
    "xgboost": ("xgboost", "numpy"),
    "lightgbm": ("lightgbm", "numpy"),
    "pytorch": ("torch",),
    "onnx": ("onnxruntime",),
    "python": (),
}
_FORMAT_PACKAGES = {"skops": ("skops",), "joblib": ("joblib",)}
# Top-level modules a pickle may name -> the distribution that provides them.
_MODULE_PACKAGES = {"sklearn": "scikit-learn", "torch": "torch", "numpy": "numpy", "pandas": "pandas", "scipy": "scipy"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def model_packages(version: ModelVersion) -> list[str]:
    """The distributions loading ``version`` depends on (normalised names, sorted)."""
    names = set(_FLAVOR_PACKAGES.get(version.flavor, ())) | set(_FORMAT_PACKAGES.get(version.format, ()))
    for module in version.loader.get("modules", []) or []:
        top = str(module).split(".", 1)[0]
        names.add(_MODULE_PACKAGES.get(top, top))
    return sorted(normalise(n) for n in names)


@dataclass(frozen=True)
class Mismatch:
    package: str
    trained: str
    installed: str | None  # None: not installed here

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.package} {self.trained} (not installed here)"
        return f"{self.package} {self.trained} (this environment has {self.installed})"


def _release(version: str, parts: int) -> tuple[str, ...]:
    numbers = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version)
    return tuple((numbers.group(1) if numbers else version).split(".")[:parts])


def mismatches(version: ModelVersion, trained: dict[str, str], installed: dict[str, str]) -> list[Mismatch]:
    """The packages ``version`` loads with whose installed version differs from the one it was
    trained with at the level that breaks loading. A package the training run did not have is
    not compared (nothing is known about it)."""
    found = []
    for package in model_packages(version):
        was = trained.get(package)
        if was is None:
            continue
        now = installed.get(package)
        if now is None:
            found.append(Mismatch(package, was, None))
        elif _release(was, _PARTS.get(package, 2)) != _release(now, _PARTS.get(package, 2)):
            found.append(Mismatch(package, was, now))
    return found


def installed_packages() -> dict[str, str]:
    """Normalised name -> version of every distribution installed here."""
    from conveyor.store import installed_distributions

    found = {}
    for line in installed_distributions():
        name, _, number = line.partition("==")
        found[name] = number
    return found


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UsageError(f"unknown environment check '{mode}'", hint=f"choose one of {', '.join(MODES)}")
    return mode


def enforce(version: ModelVersion, trained: dict[str, str] | None, *, mode: str, source: str) -> list[Mismatch]:
    """Refuse (``mode="refuse"``) or warn about loading ``version`` here when a package it loads
    with differs from the one it was trained with. ``source`` says where ``trained`` came from."""
    check_mode(mode)
    if mode == "off" or not trained:
        return []
    found = mismatches(version, trained, installed_packages())
    if not found:
        return found
    listed = "; ".join(m.describe() for m in found)
    message = f"{version.ref} was trained with {listed}, per {source}"
    pins = " ".join(f"{m.package}=={m.trained}" for m in found)
    if mode == "refuse":
        raise EnvironmentMismatchError(
            message + ": another version can fail to load it or change its predictions",
            hint=f"install {pins} (a bundle's requirements.lock pins them), or allow it with --allow-env-mismatch",
        )
    log.warning("%s: serving it anyway (--allow-env-mismatch)", message)
    return found
