"""The model registry: versions of named models with their lineage, aliases with an audit
history, a promotion policy, and safe loading.

>>> from conveyor.registry import Registry
>>> with Registry.open() as registry:
...     version = registry.register("iris", "model.skops")
...     registry.promote("iris:1", to="production", reason="first release")
...     model = registry.load("iris@production")

Names load on first use, so ``import conveyor.registry`` costs nothing until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "Registry": "_registry",
    "PromotionRefused": "_registry",
    "parse_ref": "_registry",
    "current_actor": "_registry",
    "registry_roots": "_roots",
    "ModelVersion": "_records",
    "ModelInfo": "_records",
    "AliasMove": "_records",
    "BundleRecord": "_records",
    "CheckRecord": "_records",
    "Lineage": "_records",
    "Signature": "_signature",
    "ColumnSpec": "_signature",
    "Policy": "_policy",
    "Verdict": "_policy",
    "load_policy": "_policy",
    "FLAVORS": "_flavors",
    "FORMATS": "_flavors",
    "detect": "_flavors",
    "save": "_flavors",
}

__all__ = sorted(_EXPORTS)


if TYPE_CHECKING:
    from conveyor.registry._flavors import FLAVORS as FLAVORS
    from conveyor.registry._flavors import FORMATS as FORMATS
    from conveyor.registry._flavors import detect as detect
    from conveyor.registry._flavors import save as save
    from conveyor.registry._policy import Policy as Policy
    from conveyor.registry._policy import Verdict as Verdict
    from conveyor.registry._policy import load_policy as load_policy
    from conveyor.registry._records import AliasMove as AliasMove
    from conveyor.registry._records import BundleRecord as BundleRecord
    from conveyor.registry._records import CheckRecord as CheckRecord
    from conveyor.registry._records import Lineage as Lineage
    from conveyor.registry._records import ModelInfo as ModelInfo
    from conveyor.registry._records import ModelVersion as ModelVersion
    from conveyor.registry._registry import PromotionRefused as PromotionRefused
    from conveyor.registry._registry import Registry as Registry
    from conveyor.registry._registry import current_actor as current_actor
    from conveyor.registry._registry import parse_ref as parse_ref
    from conveyor.registry._roots import registry_roots as registry_roots
    from conveyor.registry._signature import ColumnSpec as ColumnSpec
    from conveyor.registry._signature import Signature as Signature


__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
