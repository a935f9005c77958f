"""``conveyor deploy status|promote|rollback``: a rollout driven by hand.

With a server's URL the action goes through its admin API (the server then acts at once and
answers with its live window); without one it goes straight to the registry, which every
server following the model reads within a poll. Either way the move lands in the registry's
audit history.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, UsageError

if TYPE_CHECKING:
    from conveyor.workspace import Workspace

TOKEN_ENV = "CONVEYOR_SERVE_ADMIN_TOKEN"


class ServerError(ConveyorError):
    """A model server did not answer, or refused."""

    exit_code = 69  # EX_UNAVAILABLE


@dataclass(frozen=True)
class ServerClient:
    """The admin side of a running ``conveyor serve``."""

    url: str
    token: str | None = None
    timeout: float = 10.0

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(
                method, self.url.rstrip("/") + path, json=body, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise ServerError(
                f"the model server at {self.url} did not answer: {type(exc).__name__}: {exc}",
                hint="start it with 'conveyor serve NAME@ALIAS', or pass the right --url",
            ) from None
        try:
            document = response.json()
        except ValueError:
            document = {"error": response.text[:200]}
        if response.status_code >= 400:
            hint = f"set {TOKEN_ENV} to the server's admin token" if response.status_code in (401, 403) else None
            raise ServerError(f"{self.url}{path}: {document.get('error', response.status_code)}", hint=hint)
        return dict(document)

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/admin/status")

    def promote(self, reason: str = "") -> dict[str, Any]:
        return self._call("POST", "/admin/promote", {"reason": reason, "actor": _actor()})

    def rollback(self, reason: str = "") -> dict[str, Any]:
        return self._call("POST", "/admin/rollback", {"reason": reason, "actor": _actor()})

    def reload(self) -> dict[str, Any]:
        return self._call("POST", "/admin/reload")


def _actor() -> str:
    from conveyor.registry import current_actor

    return current_actor()


def client_for(url: str | None, *, workspace: Workspace, token: str | None = None) -> ServerClient | None:
    """A client of the server at ``url`` (else ``deploy: server:``), or None when neither is set."""
    if url is None:
        from conveyor.delivery._config import load_deploy_config

        url = load_deploy_config(workspace.root).server
    if url is None:
        return None
    return ServerClient(url, token or os.environ.get(TOKEN_ENV) or None)


def deploy_status(name: str, *, url: str | None = None, workspace: Workspace | None = None) -> dict[str, Any]:
    """The model's aliases and recent moves, and the live state of its server when there is one."""
    from conveyor.delivery._config import load_deploy_config
    from conveyor.registry import Registry
    from conveyor.workspace import Workspace

    ws = workspace or Workspace.find()
    config = load_deploy_config(ws.root)
    with Registry.open(ws, create=False) as registry:
        aliases = (
            registry.aliases(name) if name in {m.name for m in registry.models()} else registry.model(name).aliases
        )
        history = registry.history(name)[-10:]
    status: dict[str, Any] = {
        "model": name,
        "aliases": aliases,
        "serving": aliases.get(config.alias),
        "candidate": aliases.get(config.rollout.candidate_alias),
        "history": [move.to_json() for move in history],
        "server": None,
    }
    client = client_for(url, workspace=ws)
    if client is not None:
        try:
            status["server"] = {"url": client.url, **client.status()}
        except ServerError as exc:
            if url is not None:
                raise
            status["server"] = {"url": client.url, "error": exc.message}
    return status


def deploy_promote(name: str, *, url: str | None = None, reason: str = "", workspace: Workspace | None = None) -> str:
    """Promote the candidate on trial (the ``canary`` alias) now, without waiting for its window."""
    from conveyor.delivery._config import load_deploy_config
    from conveyor.registry import Registry
    from conveyor.workspace import Workspace

    ws = workspace or Workspace.find()
    client = client_for(url, workspace=ws) if url else None
    if client is not None:
        return str(client.promote(reason)["done"])
    config = load_deploy_config(ws.root)
    candidate_alias = config.rollout.candidate_alias
    with Registry.open(ws, create=False) as registry:
        candidate = registry.aliases(name).get(candidate_alias)
        if candidate is None:
            raise UsageError(
                f"model '{name}' has no candidate on trial (no '{candidate_alias}' alias)",
                hint=f"put one on trial: conveyor model promote {name} N --to {candidate_alias}",
            )
        registry.promote(f"{name}:{candidate}", to=config.alias, reason=reason or "promoted by hand")
        registry.remove_alias(name, alias=candidate_alias, reason=f"promoted to '{config.alias}'")
    return f"{name}:{candidate} is now '{config.alias}'"


def deploy_rollback(name: str, *, url: str | None = None, reason: str = "", workspace: Workspace | None = None) -> str:
    """Take the candidate off trial; with none on trial, move the serving alias back one version."""
    from conveyor.delivery._config import load_deploy_config
    from conveyor.registry import Registry
    from conveyor.workspace import Workspace

    ws = workspace or Workspace.find()
    client = client_for(url, workspace=ws) if url else None
    if client is not None:
        return str(client.rollback(reason)["done"])
    config = load_deploy_config(ws.root)
    candidate_alias = config.rollout.candidate_alias
    with Registry.open(ws, create=False) as registry:
        candidate = registry.aliases(name).get(candidate_alias)
        if candidate is not None:
            registry.abort(name, alias=candidate_alias, reason=f"rolled back by hand: {reason or 'no reason given'}")
            return f"{name}:{candidate} taken off trial"
        move = registry.rollback(name, alias=config.alias, reason=reason or "rolled back by hand")
    return f"'{config.alias}' moved back from {name}:{move.from_version} to {name}:{move.to_version}"
