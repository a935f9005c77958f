"""The events conveyor notifies about."""

from __future__ import annotations

EVENTS = (
    "run.started",  # a run began doing something (the first stage ran or was restored)
    "run.succeeded",
    "run.failed",  # a stage failed, or the run was interrupted
    "gate.failed",  # a check stage failed
    "model.promoted",  # an alias moved forward (by hand, by deliver, by a server's canary)
    "model.rolled_back",  # an alias moved back, or a rollout was aborted
)
