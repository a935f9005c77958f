"""The ``notify:`` section of ``conveyor.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.notify._events import EVENTS

if TYPE_CHECKING:
    from conveyor.notify._notifier import Webhook

_FIELDS = ("webhooks",)
_WEBHOOK_FIELDS = ("url", "secret_env", "events", "timeout")


def load_notify_config(root: Path) -> list[Webhook]:
    """The webhooks of the workspace at ``root`` (none without a ``notify:`` section)."""
    from conveyor.notify._notifier import Webhook
    from conveyor.pipeline._spec import PIPELINE_FILE
    from conveyor.pipeline._yaml import SpecError, load

    try:
        text = (root / PIPELINE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    if "notify" not in text:  # most workspaces: no need to parse the YAML again
        return []
    doc = load(text, PIPELINE_FILE)
    top = doc.value if isinstance(doc.value, dict) else {}
    section = top.get("notify")
    if section is None:
        return []

    def fail(where: tuple[str | int, ...], message: str, hint: str, *, key: bool = False) -> ConveyorError:
        return SpecError(f"{doc.mark(where, key=key)}: {message}", hint=hint)

    if not isinstance(section, dict):
        raise fail(("notify",), "'notify' must be a mapping", "notify: {webhooks: [{url: https://...}]}")
    for name in section:
        if name not in _FIELDS:
            raise fail(("notify", name), f"unknown field '{name}'", "notify takes webhooks", key=True)
    hooks = section.get("webhooks") or []
    if not isinstance(hooks, list):
        raise fail(("notify", "webhooks"), "'webhooks' must be a list", "webhooks: [{url: https://...}]")
    found = []
    for i, hook in enumerate(hooks):
        where: tuple[str | int, ...] = ("notify", "webhooks", i)
        if not isinstance(hook, dict):
            raise fail(where, "a webhook must be a mapping", "- {url: https://..., secret_env: NAME}")
        for name in hook:
            if name not in _WEBHOOK_FIELDS:
                raise fail((*where, name), f"unknown field '{name}'", f"a webhook takes {', '.join(_WEBHOOK_FIELDS)}")
        url = hook.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise fail((*where, "url"), "'url' must be an http:// or https:// URL", "url: https://hooks.example.com/x")
        events = _events(hook.get("events"), (*where, "events"), fail)
        secret_env = hook.get("secret_env")
        if secret_env is not None and not (isinstance(secret_env, str) and secret_env):
            raise fail((*where, "secret_env"), "'secret_env' must name an environment variable", "secret_env: HOOK_KEY")
        timeout = hook.get("timeout", 5.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise fail((*where, "timeout"), "'timeout' must be a positive number of seconds", "timeout: 5")
        found.append(Webhook(url, secret_env, events, float(timeout)))
    return found


def _events(value: Any, where: tuple[str | int, ...], fail: Any) -> tuple[str, ...]:
    if value is None:
        return EVENTS
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        raise fail(where, "'events' must be a list of event names", f"choose from {', '.join(EVENTS)}")
    for event in value:
        if event not in EVENTS:
            from conveyor._suggest import did_you_mean

            hint = did_you_mean(event, EVENTS) or f"choose from {', '.join(EVENTS)}"
            raise fail(where, f"unknown event '{event}'", hint)
    return tuple(value)
