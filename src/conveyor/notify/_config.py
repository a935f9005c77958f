"""The ``notify:`` section of ``conveyor.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.notify._events import EVENTS

if TYPE_CHECKING:
    from conveyor.notify._notifier import Target

_FIELDS = ("webhooks", "email")
_EMAIL_FIELDS = ("host", "port", "from", "to", "starttls", "user_env", "password_env", "events", "timeout")
_WEBHOOK_FIELDS = ("url", "secret_env", "events", "timeout")


def load_notify_config(root: Path) -> list[Target]:
    """The webhooks and mailboxes of the workspace at ``root`` (none without a ``notify:`` section)."""
    from conveyor.notify._notifier import Email, Webhook
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
            raise fail(("notify", name), f"unknown field '{name}'", "notify takes webhooks and email", key=True)
    hooks = section.get("webhooks") or []
    if not isinstance(hooks, list):
        raise fail(("notify", "webhooks"), "'webhooks' must be a list", "webhooks: [{url: https://...}]")
    found: list[Target] = []
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
    mail = section.get("email")
    if mail is not None:
        where = ("notify", "email")
        if not isinstance(mail, dict):
            raise fail(where, "'email' must be a mapping", "email: {host: smtp.example.com, from: ..., to: [...]}")
        for name in mail:
            if name not in _EMAIL_FIELDS:
                raise fail(
                    (*where, name), f"unknown field '{name}'", f"email takes {', '.join(_EMAIL_FIELDS)}", key=True
                )
        for name in ("host", "from"):
            if not isinstance(mail.get(name), str) or not mail[name]:
                raise fail(
                    (*where, name) if name in mail else where,
                    f"'{name}' is needed",
                    f"{name}: {'smtp.example.com' if name == 'host' else 'conveyor@example.com'}",
                    key=name not in mail,
                )
        to = mail.get("to")
        to = [to] if isinstance(to, str) else to
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise fail((*where, "to"), "'to' must be one or more addresses", "to: [team@example.com]")
        port = mail.get("port", 587)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise fail((*where, "port"), "'port' must be a port number", "port: 587")
        starttls = mail.get("starttls", True)
        if not isinstance(starttls, bool):
            raise fail((*where, "starttls"), "'starttls' must be true or false", "starttls: true")
        for name in ("user_env", "password_env"):
            if mail.get(name) is not None and not isinstance(mail[name], str):
                raise fail((*where, name), f"'{name}' must name an environment variable", f"{name}: SMTP_USER")
        timeout = mail.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise fail((*where, "timeout"), "'timeout' must be a positive number of seconds", "timeout: 10")
        found.append(
            Email(
                host=mail["host"],
                sender=mail["from"],
                to=tuple(to),
                port=port,
                starttls=starttls,
                user_env=mail.get("user_env"),
                password_env=mail.get("password_env"),
                events=_events(mail.get("events"), (*where, "events"), fail),
                timeout=float(timeout),
            )
        )
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
