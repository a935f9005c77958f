"""Notifications: events of runs, gates and the registry, sent to webhooks (HTTP POST of a
JSON body signed with HMAC-SHA256) in the background.

.. code-block:: yaml

    notify:
      webhooks:
        - url: https://hooks.example.com/conveyor
          secret_env: CONVEYOR_WEBHOOK_SECRET   # the HMAC key, from the environment
          events: [run.failed, gate.failed, model.promoted, model.rolled_back]   # default: all

A notification never blocks or fails what sent it: it is queued, delivered by a daemon
thread with retries and backoff, and a delivery that still fails is logged. A process waits
for its queue at exit for a few seconds at most.
"""

from __future__ import annotations

from conveyor.notify._events import EVENTS
from conveyor.notify._notifier import SIGNATURE_HEADER, Notifier, emit, notifier_for, sign, verify

__all__ = ["EVENTS", "SIGNATURE_HEADER", "Notifier", "emit", "notifier_for", "sign", "verify"]
