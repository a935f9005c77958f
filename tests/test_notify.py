"""Notifications: a real HTTP receiver on loopback checks every signature; runs, gates and
alias moves send their events; a receiver that fails is retried, one that is down never fails
a run."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sklearn import datasets
from sklearn.linear_model import LogisticRegression

from conftest import Project
from conveyor.notify import SIGNATURE_HEADER, sign, verify
from conveyor.registry import Registry
from conveyor.workspace import Workspace
from remote_fixtures import port_outside_ephemeral_range

SECRET = "webhook-secret-0123456789"


@dataclass
class Receiver:
    url: str
    received: list[dict[str, object]] = field(default_factory=list)
    signatures_ok: list[bool] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many requests first
    seen: int = 0

    def events(self) -> list[str]:
        return [str(r["event"]) for r in self.received]


@pytest.fixture(name="receiver")
def fixture_receiver() -> Iterator[Receiver]:
    port = port_outside_ephemeral_range()
    box = Receiver(f"http://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            box.seen += 1
            if box.seen <= box.fail_first:
                self.send_response(500)
                self.end_headers()
                return
            box.signatures_ok.append(verify(SECRET, body, self.headers.get(SIGNATURE_HEADER)))
            box.received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


def pipeline(url: str, events: str = "") -> str:
    return f"""\
stages:
  train:
    cmd: {sys.executable} -c "open('out.txt', 'w').write('x')"
    outs: [out.txt]
  broken:
    cmd: {sys.executable} -c "raise SystemExit(3)"
notify:
  webhooks:
    - url: {url}
      secret_env: HOOK_SECRET{events}
"""


def test_a_run_and_a_promotion_send_signed_events(project: Project, receiver: Receiver) -> None:
    project.write("conveyor.yaml", pipeline(receiver.url))
    run = project.run("run", "-j", "1", env={"HOOK_SECRET": SECRET})
    assert run.code == 1, run  # the broken stage failed the run; the process waited for its notifications
    assert receiver.events() == ["run.started", "run.failed"]
    assert all(receiver.signatures_ok)
    failed = receiver.received[1]
    assert failed["status"] == "failed" and failed["failed"] == [{"stage": "broken", "error": "exit code 3"}]
    assert failed["run_id"] == receiver.received[0]["run_id"] and failed["workspace"] == str(project.root)
    model = LogisticRegression(max_iter=500).fit(*datasets.load_iris(return_X_y=True))
    with Registry.open(Workspace.find(project.root)) as registry:
        registry.register("iris", model=model)
    promoted = project.run("model", "promote", "iris", "1", "--to", "production", env={"HOOK_SECRET": SECRET})
    assert promoted.code == 0, promoted
    assert receiver.events()[-1] == "model.promoted"
    move = receiver.received[-1]
    assert (move["model"], move["alias"], move["to_version"], move["action"]) == ("iris", "production", 1, "promote")


def test_events_are_filtered_retried_and_a_wrong_secret_fails_verification(
    project: Project, receiver: Receiver
) -> None:
    project.write("conveyor.yaml", pipeline(receiver.url, "\n      events: [run.failed]"))
    receiver.fail_first = 2  # two 500s, then it takes the delivery
    run = project.run("run", "-j", "1", env={"HOOK_SECRET": SECRET})
    assert run.code == 1
    assert receiver.events() == ["run.failed"] and receiver.seen == 3 and all(receiver.signatures_ok)
    body = json.dumps(receiver.received[0]).encode()
    assert not verify("another-secret", body, sign(SECRET, body))


def test_a_receiver_that_is_down_never_fails_the_run(project: Project) -> None:
    url = f"http://127.0.0.1:{port_outside_ephemeral_range()}/nobody"
    project.write(
        "conveyor.yaml", pipeline(url).replace("  broken:\n", "  other:\n").replace("raise SystemExit(3)", "pass")
    )
    run = project.run("run", "-j", "1")
    assert run.code == 0, run
    assert "notification run.started to" in run.err and "failed after 4 attempts" in run.err
    assert "notification(s) not delivered before exit" in run.err  # it waited 3 s at most, then went


def test_a_broken_notify_section_is_one_line_with_its_place(project: Project) -> None:
    project.write("conveyor.yaml", pipeline("https://example.com/x", "\n      events: [run.faild]"))
    run = project.run("run")
    assert run.code == 2
    assert (
        "conveyor.yaml" in run.err and "unknown event 'run.faild'" in run.err and "did you mean 'run.failed'" in run.err
    )
    assert "Traceback" not in run.err


def test_events_arrive_by_mail_through_a_real_smtp_server(project: Project) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[object] = []

        def handle_message(self, message: object) -> None:
            self.messages.append(message)

    inbox = Inbox()
    port = port_outside_ephemeral_range()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        project.write(
            "conveyor.yaml",
            f"""\
stages:
  broken:
    cmd: {sys.executable} -c "raise SystemExit(3)"
notify:
  email:
    host: 127.0.0.1
    port: {port}
    starttls: false
    from: conveyor@example.com
    to: [team@example.com, lead@example.com]
    events: [run.failed]
""",
        )
        run = project.run("run")
        assert run.code == 1, run
        assert len(inbox.messages) == 1
        mail = inbox.messages[0]
        assert mail["Subject"].startswith("[conveyor] run.failed: run ")  # type: ignore[index]
        assert mail["To"] == "team@example.com, lead@example.com"  # type: ignore[index]
        body = json.loads(mail.get_payload(decode=True).decode())  # type: ignore[attr-defined]
        assert body["event"] == "run.failed" and body["failed"] == [{"stage": "broken", "error": "exit code 3"}]
    finally:
        controller.stop()


def test_a_bad_email_section_is_one_line_with_its_place(project: Project) -> None:
    project.write(
        "conveyor.yaml", "stages:\n  s:\n    cmd: echo\nnotify:\n  email:\n    host: smtp.example.com\n    to: [x]\n"
    )
    run = project.run("run")
    assert run.code == 2 and "conveyor.yaml:5:" in run.err and "'from' is needed" in run.err, run
