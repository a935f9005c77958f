"""``conveyor watch``: deliver again whenever something the pipeline depends on changes.

Every ``interval`` seconds it asks the pipeline what is stale (the same question ``conveyor
status`` answers: code, data, params, a tracked file's content) and what git's HEAD is; a
change in either, or ``every`` seconds passing, starts :func:`deliver`. A delivery that a gate
stops is reported and watching goes on: what it left stale does not trigger it again, the
next change does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, UsageError

if TYPE_CHECKING:
    from conveyor.delivery._deliver import DeliveryReport
    from conveyor.workspace import Workspace


@dataclass(frozen=True)
class Trigger:
    reason: str  # "first look", "HEAD moved to abc123", "stale: train (...)", "schedule"

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason}


def _head(ws: Workspace) -> str | None:
    from conveyor.registry._registry import _head_commit

    return _head_commit(ws)


def _stale(ws: Workspace) -> list[str]:
    from conveyor.pipeline import run

    report = run(dry_run=True, quiet=True, workspace=ws)
    return [f"{s.name} ({'; '.join(s.reasons[:1]) or 'stale'})" for s in report.with_status("would-run")]


def watch(
    *,
    interval: float = 10.0,
    every: float | None = None,
    max_deliveries: int | None = None,
    deliver_now: bool = True,
    on_trigger: Callable[[Trigger], None] | None = None,
    on_delivery: Callable[[DeliveryReport | ConveyorError], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workspace: Workspace | None = None,
    **deliver_options: Any,
) -> int:
    """Watch and deliver until interrupted (or ``max_deliveries`` deliveries were made);
    returns how many deliveries stopped at a gate."""
    from conveyor.delivery._deliver import DeliveryStopped, deliver
    from conveyor.workspace import Workspace

    if interval <= 0:
        raise UsageError(f"--interval {interval} must be positive", hint="for example 10 (seconds)")
    if every is not None and every <= 0:
        raise UsageError(f"--every {every} must be positive", hint="for example 3600 (seconds)")
    ws = workspace or Workspace.find()
    head = _head(ws)
    left_stale: list[str] = []  # what a stopped delivery left stale: not a reason to try again
    last_delivery = time.monotonic()
    deliveries = stopped = 0
    pending: Trigger | None = Trigger("first look") if deliver_now else None
    while True:
        if pending is None:
            now_head = _head(ws)
            stale = _stale(ws)
            if now_head != head:
                pending = Trigger(f"HEAD moved to {(now_head or 'none')[:12]}")
            elif stale and stale != left_stale:
                pending = Trigger("stale: " + ", ".join(stale[:3]) + (" ..." if len(stale) > 3 else ""))
            elif every is not None and time.monotonic() - last_delivery >= every:
                pending = Trigger("schedule")
            head = now_head
        if pending is not None:
            if on_trigger is not None:
                on_trigger(pending)
            pending = None
            deliveries += 1
            last_delivery = time.monotonic()
            try:
                result: DeliveryReport | ConveyorError = deliver(workspace=ws, **deliver_options)
            except DeliveryStopped as exc:
                stopped += 1
                result = exc
            except ConveyorError as exc:  # a bad spec, a locked workspace: reported, then watched again
                stopped += 1
                result = exc
            head = _head(ws)
            left_stale = _stale(ws)
            if on_delivery is not None:
                on_delivery(result)
            if max_deliveries is not None and deliveries >= max_deliveries:
                return stopped
        if should_stop is not None and should_stop():
            return stopped
        time.sleep(interval)
