"""Deployable bundles: ``conveyor build`` packages a registered version with the exact packages it
loads and serves with, an entry point that serves it from the bundle alone, and the recipes to
run it at scale (Dockerfile, Kubernetes manifests, a KServe ``InferenceService``).

Modules: ``_bundle`` (building), ``_lock`` (the pinned packages), ``_wheel`` (conveyor's own
wheel, reproducible), ``_recipes`` (Dockerfile and manifests), ``_archive`` (the reproducible
``.tar.gz``), ``_serve`` (serving a bundle's folder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "Bundle": "_bundle",
    "build_bundle": "_bundle",
    "BundleSource": "_serve",
    "serve_bundle": "_serve",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from conveyor.build._bundle import Bundle as Bundle
    from conveyor.build._bundle import build_bundle as build_bundle
    from conveyor.build._serve import BundleSource as BundleSource
    from conveyor.build._serve import serve_bundle as serve_bundle


__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
