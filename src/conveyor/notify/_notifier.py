"""Delivering notifications: a queue, a daemon thread, retries with backoff, HMAC signatures."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.notify._events import EVENTS

log = logging.getLogger("conveyor.notify")
SIGNATURE_HEADER = "X-Conveyor-Signature-256"
ATTEMPTS = 4  # one try and three retries
BACKOFF = 0.5  # seconds before the first retry; doubled each time
EXIT_WAIT = 3.0  # seconds a process waits at exit for notifications still queued


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_env: str | None = None
    events: tuple[str, ...] = EVENTS
    timeout: float = 5.0

    def wants(self, event: str) -> bool:
        return event in self.events


@dataclass(frozen=True)
class Email:
    """Notifications by mail through an SMTP server (STARTTLS and login when configured)."""

    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    starttls: bool = True
    user_env: str | None = None
    password_env: str | None = None
    events: tuple[str, ...] = EVENTS
    timeout: float = 10.0

    @property
    def url(self) -> str:  # for log lines, as a webhook's
        return f"smtp://{self.host}:{self.port}"

    def wants(self, event: str) -> bool:
        return event in self.events


Target = Webhook | Email


@dataclass
class Notifier:
    """Sends events to webhooks and mailboxes from a background thread; :meth:`send` never blocks."""

    targets: list[Target] = field(default_factory=list)
    workspace: str = ""
    _queue: queue.Queue[tuple[Target, str, bytes] | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _closing: threading.Event = field(default_factory=threading.Event)
    delivered: int = 0
    failed: int = 0

    def send(self, event: str, payload: dict[str, Any]) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        targets = [target for target in self.targets if target.wants(event)]
        if not targets:
            return
        body = json.dumps(
            {
                "event": event,
                "id": uuid.uuid4().hex,
                "at": time.time(),
                "workspace": self.workspace,
                **payload,
            },
            sort_keys=True,
            default=str,
        ).encode()
        for hook in targets:
            self._queue.put((hook, event, body))
        if self._thread is None:
            self._thread = threading.Thread(target=self._deliver_all, name="conveyor-notify", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def flush(self, timeout: float = EXIT_WAIT) -> bool:
        """Wait up to ``timeout`` seconds for the queue to drain; True when it did."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = EXIT_WAIT) -> None:
        """At exit: wait a little for what is queued, then give up on the rest (logged), and
        let the delivery thread end before the interpreter does."""
        if not self.flush(timeout):
            log.warning("%d notification(s) not delivered before exit", self._queue.unfinished_tasks)
        self._closing.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _deliver_all(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._closing.is_set():
                    continue  # exiting: what is left is given up (and was counted in the warning)
                hook, event, body = item
                if self._deliver(hook, event, body):
                    self.delivered += 1
                else:
                    self.failed += 1
            finally:
                self._queue.task_done()

    def _deliver(self, target: Target, event: str, body: bytes) -> bool:
        attempt, problem = 0, ""
        for attempt in range(ATTEMPTS):
            if attempt and self._closing.wait(BACKOFF * 2 ** (attempt - 1)):
                break  # the process is exiting: no more retries
            problem, retry = _post(target, event, body) if isinstance(target, Webhook) else _mail(target, event, body)
            if not problem:
                return True
            if not retry:
                break  # the receiver refuses this one: sending it again will not help
        log.warning("notification %s to %s failed after %d attempts: %s", event, target.url, attempt + 1, problem)
        return False


def _post(hook: Webhook, event: str, body: bytes) -> tuple[str, bool]:
    """(problem, worth retrying) of one POST; no problem is ``""``."""
    import httpx

    headers = {"content-type": "application/json", "x-conveyor-event": event, "user-agent": "conveyor"}
    secret = os.environ.get(hook.secret_env) if hook.secret_env else None
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    try:
        response = httpx.post(hook.url, content=body, headers=headers, timeout=hook.timeout)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}", True
    if response.status_code < 300:
        return "", False
    refused = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
    return f"HTTP {response.status_code}", not refused


def _mail(email: Email, event: str, body: bytes) -> tuple[str, bool]:
    """(problem, worth retrying) of one message through SMTP."""
    import smtplib
    from email.message import EmailMessage

    document = json.loads(body)
    message = EmailMessage()
    message["Subject"] = f"[conveyor] {event}: {_headline(document)}"
    message["From"] = email.sender
    message["To"] = ", ".join(email.to)
    message.set_content(json.dumps(document, indent=2, sort_keys=True) + "\n")
    try:
        with smtplib.SMTP(email.host, email.port, timeout=email.timeout) as smtp:
            if email.starttls:
                smtp.starttls()
            user = os.environ.get(email.user_env) if email.user_env else None
            if user:
                smtp.login(user, os.environ.get(email.password_env or "", ""))
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        return f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", exc.smtp_code < 500
    except (smtplib.SMTPException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}", True
    return "", False


def _headline(document: dict[str, Any]) -> str:
    if "model" in document:
        return f"{document['model']} {document.get('alias')} -> {document.get('to_version')}"
    if "stage" in document:
        return f"stage {document['stage']}: {document.get('error')}"
    return f"run {document.get('run_id')} {document.get('status', '')}".strip()


_notifiers: dict[str, Notifier | None] = {}
_lock = threading.Lock()


def notifier_for(root: Path) -> Notifier | None:
    """The notifier of the workspace at ``root`` (from ``conveyor.yaml``'s ``notify:``), or None
    when it notifies nobody; read once per process."""
    key = str(root)
    with _lock:
        if key not in _notifiers:
            from conveyor.notify._config import load_notify_config

            targets = load_notify_config(root)
            _notifiers[key] = Notifier(targets, workspace=key) if targets else None
        return _notifiers[key]


def emit(root: Path, event: str, **payload: Any) -> None:
    """Notify ``event`` for the workspace at ``root``; a broken ``notify:`` section is logged,
    never raised: a notification must not fail what it reports on."""
    try:
        notifier = notifier_for(root)
    except ConveyorError as exc:
        log.warning("notifications are off: %s", exc.format_message())
        with _lock:
            _notifiers[str(root)] = None
        return
    if notifier is not None:
        notifier.send(event, payload)
