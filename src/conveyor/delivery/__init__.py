"""Continuous delivery: ``deliver`` (pull → run → gates → register → staging → canary →
production), ``watch`` (deliver again on change), ``monitor`` (live drift → retrain) and the
hand controls of a rollout (``deploy_status``, ``deploy_promote``, ``deploy_rollback``).

>>> from conveyor.delivery import deliver
>>> report = deliver()          # reads conveyor.yaml's deploy: section
>>> report.outcome
'released'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._lazy import lazy_exports

_EXPORTS = {
    "deliver": "_deliver",
    "DeliveryReport": "_deliver",
    "DeliveryStopped": "_deliver",
    "Step": "_deliver",
    "watch": "_watch",
    "Trigger": "_watch",
    "monitor": "_monitor",
    "MonitorReport": "_monitor",
    "DriftAlarm": "_monitor",
    "deploy_status": "_deploy",
    "deploy_promote": "_deploy",
    "deploy_rollback": "_deploy",
    "ServerClient": "_deploy",
    "ServerError": "_deploy",
    "DeployConfig": "_config",
    "MonitorConfig": "_config",
    "BundleConfig": "_config",
    "load_deploy_config": "_config",
    "delivery_stats": "_dora",
    "DeliveryStats": "_dora",
    "ModelStats": "_dora",
    "Figures": "_dora",
    "Bucket": "_dora",
    "Release": "_dora",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from conveyor.delivery._config import BundleConfig as BundleConfig
    from conveyor.delivery._config import DeployConfig as DeployConfig
    from conveyor.delivery._config import MonitorConfig as MonitorConfig
    from conveyor.delivery._config import load_deploy_config as load_deploy_config
    from conveyor.delivery._deliver import DeliveryReport as DeliveryReport
    from conveyor.delivery._deliver import DeliveryStopped as DeliveryStopped
    from conveyor.delivery._deliver import Step as Step
    from conveyor.delivery._deliver import deliver as deliver
    from conveyor.delivery._deploy import ServerClient as ServerClient
    from conveyor.delivery._deploy import ServerError as ServerError
    from conveyor.delivery._deploy import deploy_promote as deploy_promote
    from conveyor.delivery._deploy import deploy_rollback as deploy_rollback
    from conveyor.delivery._deploy import deploy_status as deploy_status
    from conveyor.delivery._dora import Bucket as Bucket
    from conveyor.delivery._dora import DeliveryStats as DeliveryStats
    from conveyor.delivery._dora import Figures as Figures
    from conveyor.delivery._dora import ModelStats as ModelStats
    from conveyor.delivery._dora import Release as Release
    from conveyor.delivery._dora import delivery_stats as delivery_stats
    from conveyor.delivery._monitor import DriftAlarm as DriftAlarm
    from conveyor.delivery._monitor import MonitorReport as MonitorReport
    from conveyor.delivery._monitor import monitor as monitor
    from conveyor.delivery._watch import Trigger as Trigger
    from conveyor.delivery._watch import watch as watch

__getattr__ = lazy_exports(__name__, {name: f"{__name__}.{module}" for name, module in _EXPORTS.items()})
