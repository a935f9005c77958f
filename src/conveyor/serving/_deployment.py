"""What one server process serves, and the thread that keeps it in step with the registry.

A :class:`Deployment` holds two slots: the *primary* (the version the followed alias names)
and the *candidate* (the version the rollout alias, ``canary`` by default, names while it is on
trial). A background thread polls the registry's aliases; when one moves it loads and warms
the new version off the request path and swaps it in with one assignment, so requests in
flight finish on the version they started with. A version that fails to load or to warm up is
never swapped in: the primary keeps serving, and a failed candidate's alias is aborted with the
reason, in the registry's audit history.

The registry is read, never needed, to answer: when its database is unreachable the loaded
versions keep serving and the status says the registry is down until it answers again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.serving._protocol import InferRequest, ProtocolError
from conveyor.serving._rollout import RolloutSettings, Window, WindowVerdict
from conveyor.serving._slot import Loaded, ModelSlot, ModelSource

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.registry import Registry
    from conveyor.serving._metrics import Metrics

log = logging.getLogger("conveyor.serve")
ACTOR = "conveyor-serve"
_RECENT_FRAMES = 8  # live requests kept to warm the next version up with
_SHADOW_IN_FLIGHT = 64  # shadow copies queued at most; more are dropped, never waited for


@dataclass(frozen=True)
class Event:
    at: float
    kind: str  # swapped, load-failed, rollout-started, promoted, aborted, registry-down, registry-up, ...
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "message": self.message}


class Deployment:
    """The versions a server answers with (primary, candidate) and how it follows the registry."""

    def __init__(
        self,
        name: str,
        *,
        alias: str | None,
        open_registry: Callable[[], ModelSource],
        settings: RolloutSettings | None = None,
        poll: float = 0.5,
        metrics: Metrics | None = None,
        environment: str = "refuse",
    ) -> None:
        self.name = name
        self.alias = alias  # None: a pinned version, never swapped
        self.settings = settings or RolloutSettings()
        self.poll = poll
        self.metrics = metrics
        self.primary = ModelSlot(environment)
        self.candidate = ModelSlot(environment)
        self.window: Window | None = None
        self.registry_error: str | None = None
        self.events: deque[Event] = deque(maxlen=50)
        self._open_registry = open_registry
        self._registry: ModelSource | None = None
        self._recent: deque[pd.DataFrame] = deque(maxlen=_RECENT_FRAMES)
        self._seen = 0
        # role -> (version, alias move) that failed to load or was aborted: not tried again until
        # the alias moves again (a new stamp), or /admin/reload
        self._failed: dict[str, tuple[int, float]] = {}
        self._stamps: dict[str, tuple[int, float]] = {}
        self._verdicts: deque[tuple[Loaded, WindowVerdict]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.RLock()  # one registry action at a time (the thread, admin requests)
        self._thread: threading.Thread | None = None
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._shadow_slots = threading.BoundedSemaphore(_SHADOW_IN_FLIGHT)
        self.shadow_dropped = 0

    # -- life cycle ------------------------------------------------------------------------------

    def start(self, *, first: str | None = None) -> None:
        """Load the first version now (``first``, a ref; else the followed alias's), then follow
        the registry in the background when following an alias."""
        with self._lock:
            loaded = self.primary.load(self._source(), first or f"{self.name}@{self.alias}")
            self._swap("primary", loaded, note="loaded")
            if self.alias is not None:
                registry = self._connect()
                self._stamps = registry.alias_stamps(self.name)
                self._sync_candidate(registry, {a: v for a, (v, _) in self._stamps.items()})
        if self.alias is not None:
            self._thread = threading.Thread(target=self._follow, name="conveyor-follow", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._shadow_pool is not None:
            self._shadow_pool.shutdown(wait=False, cancel_futures=True)
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception:  # the follower must outlive anything one poll runs into
                log.exception("following the registry failed; trying again in %.1f s", self.poll)

    # -- following the registry --------------------------------------------------------------------

    def sync(self) -> None:
        """One poll: act on verdicts, then load whatever the aliases point at now."""
        with self._lock:
            try:
                registry = self._connect()
                self._stamps = registry.alias_stamps(self.name)
            except Exception as exc:
                self._registry_down(exc)
                return
            if self.registry_error is not None:
                self._event("registry-up", "the registry answers again")
                self.registry_error = None
            while self._verdicts:
                candidate, verdict = self._verdicts.popleft()
                self._conclude(registry, candidate, verdict)
                self._stamps = registry.alias_stamps(self.name)
            aliases = {alias: version for alias, (version, _) in self._stamps.items()}
            assert self.alias is not None
            wanted = aliases.get(self.alias)
            current = self.primary.current
            moved = wanted is not None and (current is None or wanted != current.number)
            if moved and wanted is not None and self._failed.get("primary") != self._stamps.get(self.alias):
                on_trial = self.candidate.current
                if on_trial is not None and on_trial.number == wanted:
                    self._swap("primary", on_trial, note=f"'{self.alias}' moved to its candidate")
                else:
                    self._load("primary", registry, wanted)
            self._sync_candidate(registry, aliases)

    def _sync_candidate(self, registry: Registry, aliases: dict[str, int]) -> None:
        wanted = aliases.get(self.settings.candidate_alias)
        primary = self.primary.current
        on_trial = self.candidate.current
        if wanted is None or (primary is not None and wanted == primary.number):
            if on_trial is not None:
                self._end_trial()
                self._event("rollout-ended", f"{on_trial.version.ref} is no longer on trial")
            return
        if on_trial is not None and on_trial.number == wanted:
            return
        if self._failed.get("candidate") == self._stamps.get(self.settings.candidate_alias):
            return
        loaded = self._load("candidate", registry, wanted)
        if loaded is None:
            failed = f"{self.name}:{wanted}"
            self._abort(registry, wanted, f"{failed} could not be loaded: {self.candidate.last_error}")
            return
        self.window = Window(self.settings)
        self._event(
            "rollout-started",
            f"{loaded.version.ref} on trial as {self.settings.mode}"
            + (f" ({self.settings.share:.0%} of requests)" if self.settings.mode == "canary" else "")
            + f", judged after {self.settings.window} requests",
        )

    def _load(self, role: str, registry: Registry, number: int) -> Loaded | None:
        slot = self.primary if role == "primary" else self.candidate
        ref = f"{self.name}:{number}"
        started = time.perf_counter()
        try:
            loaded = slot.load(registry, ref, recent=self._recent_frame())
        except ConveyorError as exc:
            alias = self.alias if role == "primary" else self.settings.candidate_alias
            self._failed[role] = self._stamps.get(alias or "", (number, 0.0))
            self._event("load-failed", f"{ref} ({role}) was not swapped in: {exc.format_message()}")
            if self.metrics is not None:
                self.metrics.load_failures.labels(self.name, role).inc()
            return None
        self._failed.pop(role, None)
        self._swap(role, loaded, note=f"loaded and warmed up in {time.perf_counter() - started:.2f} s")
        return loaded

    def _swap(self, role: str, loaded: Loaded | None, *, note: str) -> None:
        slot = self.primary if role == "primary" else self.candidate
        before = slot.swap(loaded)
        if loaded is not None:
            was = f" (was {before.version.ref})" if before is not None and before is not loaded else ""
            self._event("swapped", f"{role} now serves {loaded.version.ref}{was}: {note}")
        if self.metrics is not None:
            self.metrics.swaps.labels(self.name, role).inc()
        self._gauge(role, loaded)

    def _end_trial(self) -> None:
        """No candidate on trial any more: every request goes to the primary."""
        self.candidate.swap(None)
        self.window = None
        self._gauge("candidate", None)

    def _gauge(self, role: str, loaded: Loaded | None) -> None:
        if self.metrics is not None:
            self.metrics.served_version.labels(self.name, role).set(0 if loaded is None else loaded.number)

    def _registry_down(self, exc: Exception) -> None:
        message = exc.format_message() if isinstance(exc, ConveyorError) else f"{type(exc).__name__}: {exc}"
        message = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        if self.registry_error is None:
            self._event("registry-down", f"the registry cannot be read ({message}); serving what is loaded")
        self.registry_error = message
        if self._registry is not None:
            try:
                self._registry.close()
            except Exception:
                pass
            self._registry = None

    def _source(self) -> ModelSource:
        if self._registry is None:
            self._registry = self._open_registry()
        return self._registry

    def _connect(self) -> Registry:
        """The registry, for what follows or moves aliases (a bundle's source has none)."""
        from conveyor.registry import Registry

        source = self._source()
        if not isinstance(source, Registry):
            raise ProtocolError("this server serves a bundle's one version: there is no registry to change", 409)
        return source

    # -- the rollout --------------------------------------------------------------------------------

    def route(self) -> tuple[Loaded, str]:
        """The version that answers the next request and its role (``primary`` or ``candidate``)."""
        primary = self.primary.current
        if primary is None:
            raise ProtocolError(
                "no model is loaded yet" + (f": {self.primary.last_error}" if self.primary.last_error else ""), 503
            )
        candidate, window = self.candidate.current, self.window
        if (
            candidate is not None
            and window is not None
            and window.verdict is None
            and self.settings.mode == "canary"
            and random.random() < self.settings.share
        ):
            return candidate, "candidate"
        return primary, "primary"

    def version(self, number: int) -> tuple[Loaded, str] | None:
        """The loaded version ``number`` (primary or candidate), for version-addressed requests."""
        for role, slot in (("primary", self.primary), ("candidate", self.candidate)):
            loaded = slot.current
            if loaded is not None and loaded.number == number:
                return loaded, role
        return None

    def remember(self, request: InferRequest) -> None:
        """Keep a few recent inputs to warm the next version up with (one request in 16 once
        there are enough: the request path stays cheap)."""
        self._seen += 1
        if len(self._recent) < _RECENT_FRAMES or self._seen % 16 == 0:
            self._recent.append(request.frame.head(32))

    def _recent_frame(self) -> pd.DataFrame | None:
        if not self._recent:
            return None
        import pandas as pd

        try:
            return pd.concat(list(self._recent), ignore_index=True).head(256)
        except Exception:  # frames of different columns (a changed signature): warm with one
            return self._recent[-1]

    def observe(self, loaded: Loaded, *, ok: bool, latency: float, rows: int = 0, disagreeing: int = 0) -> None:
        """Count a request the candidate answered (or shadowed) toward its window."""
        window = self.window
        if window is None or self.candidate.current is not loaded:
            return
        verdict = window.record(ok=ok, latency=latency, rows=rows, disagreeing=disagreeing)
        if verdict is not None:
            self._verdicts.append((loaded, verdict))
            self._wake.set()  # the follower acts on it now, off the request path

    def shadow(self, request: InferRequest, labels: np.ndarray) -> None:
        """Send a copy of a request the primary answered to the shadow candidate, in the
        background; when too many copies are queued this one is dropped, never waited for."""
        candidate, window = self.candidate.current, self.window
        if candidate is None or window is None or window.verdict is not None or self.settings.mode != "shadow":
            return
        if not self._shadow_slots.acquire(blocking=False):
            self.shadow_dropped += 1
            return
        if self._shadow_pool is None:
            self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conveyor-shadow")
        self._shadow_pool.submit(self._shadow_one, candidate, request, labels)

    def _shadow_one(self, candidate: Loaded, request: InferRequest, labels: np.ndarray) -> None:
        import numpy as np

        try:
            started = time.perf_counter()
            try:
                theirs, _ = candidate.predict_request(request)
            except ProtocolError as exc:
                ok = exc.status < 422
                self.observe(candidate, ok=ok, latency=time.perf_counter() - started)
                return
            latency = time.perf_counter() - started
            differ = int(np.count_nonzero(np.asarray(theirs).astype(str) != np.asarray(labels).astype(str)))
            if self.metrics is not None and differ:
                self.metrics.disagreements.labels(self.name, str(candidate.number)).inc(differ)
            self.observe(candidate, ok=True, latency=latency, rows=len(labels), disagreeing=differ)
        except Exception:
            log.exception("shadow prediction failed")
        finally:
            self._shadow_slots.release()

    def _conclude(self, registry: Registry, candidate: Loaded, verdict: WindowVerdict) -> None:
        if self.candidate.current is not candidate:
            return
        primary = self.primary.current
        if not verdict.passed:
            self._abort(
                registry, candidate.number, f"automatic rollback of {candidate.version.ref}: {verdict.summary()}"
            )
            return
        self._event("rollout-passed", f"{candidate.version.ref} met its objectives: {verdict.summary()}")
        if self.settings.auto_promote and self.alias is not None:
            self._promote(registry, candidate, f"{self.settings.mode} passed: {verdict.summary()}", primary)

    def _promote(self, registry: Registry, candidate: Loaded, reason: str, primary: Loaded | None) -> None:
        assert self.alias is not None
        if registry.aliases(self.name).get(self.settings.candidate_alias) != candidate.number:
            self._event("rollout-ended", f"{candidate.version.ref} left trial before its promotion")
            self._end_trial()
            return
        try:
            registry.promote(
                candidate.version.ref,
                to=self.alias,
                reason=reason,
                actor=ACTOR,
                expect_current=None if primary is None else primary.number,
            )
        except ConveyorError as exc:
            self._abort(registry, candidate.number, f"{candidate.version.ref} was not promoted: {exc.message}")
            return
        self._event("promoted", f"{candidate.version.ref} is now '{self.alias}': {reason}")
        if self.metrics is not None:
            self.metrics.rollouts.labels(self.name, "promoted").inc()
        try:
            registry.remove_alias(
                self.name,
                alias=self.settings.candidate_alias,
                reason=f"promoted to '{self.alias}'",
                actor=ACTOR,
            )
        except ConveyorError:
            pass  # another worker removed it first
        self._swap("primary", candidate, note=f"promoted from '{self.settings.candidate_alias}'")
        self._end_trial()

    def _abort(self, registry: Registry, number: int, reason: str, *, actor: str = ACTOR) -> None:
        alias = self.settings.candidate_alias
        self._failed["candidate"] = self._stamps.get(alias, (number, 0.0))
        try:
            registry.abort(self.name, alias=alias, reason=reason, actor=actor, expect_current=number)
        except ConveyorError as exc:
            # another worker concluded first (or someone moved the alias): not this one's rollback
            self._event("rollout-ended", f"{self.name}:{number} is no longer on trial ({exc.message})")
        else:
            self._event("aborted", reason)
            if self.metrics is not None:
                self.metrics.rollouts.labels(self.name, "rolled_back").inc()
        if self.candidate.current is not None and self.candidate.current.number == number:
            self._end_trial()

    # -- by hand (admin endpoints) ---------------------------------------------------------------

    def promote_now(self, *, actor: str, reason: str) -> str:
        """Promote the candidate on trial now, without waiting for its window."""
        with self._lock:
            candidate = self.candidate.current
            if candidate is None or self.alias is None:
                raise ProtocolError("no candidate is on trial: nothing to promote", 409)
            registry = self._connect()
            registry.promote(candidate.version.ref, to=self.alias, reason=reason or "promoted by hand", actor=actor)
            registry.remove_alias(self.name, alias=self.settings.candidate_alias, reason="promoted", actor=actor)
            self._swap("primary", candidate, note=f"promoted by {actor}")
            self._end_trial()
            if self.metrics is not None:
                self.metrics.rollouts.labels(self.name, "promoted").inc()
            self._event("promoted", f"{candidate.version.ref} is now '{self.alias}' ({actor}: {reason})")
            return candidate.version.ref

    def rollback_now(self, *, actor: str, reason: str) -> str:
        """Abort the candidate on trial; with none, move the followed alias back one version."""
        with self._lock:
            registry = self._connect()
            candidate = self.candidate.current
            if candidate is not None:
                self._abort(
                    registry, candidate.number, f"rolled back by {actor}: {reason or 'no reason given'}", actor=actor
                )
                return f"{candidate.version.ref} taken off trial"
            if self.alias is None:
                raise ProtocolError("this server serves a pinned version: there is no alias to roll back", 409)
            move = registry.rollback(self.name, alias=self.alias, reason=reason or "rolled back by hand", actor=actor)
            self._wake.set()
            return f"'{self.alias}' moved back from {self.name}:{move.from_version} to {self.name}:{move.to_version}"

    def wake(self) -> None:
        self._wake.set()

    def forget_failures(self) -> None:
        """Try versions that failed to load again (after ``conveyor pull``, say)."""
        self._failed.clear()

    # -- reporting ----------------------------------------------------------------------------------

    def _event(self, kind: str, message: str) -> None:
        self.events.append(Event(time.time(), kind, message))
        level = logging.WARNING if kind in ("load-failed", "aborted", "registry-down") else logging.INFO
        log.log(level, "%s: %s", kind, message)

    def status(self) -> dict[str, Any]:
        primary, candidate, window = self.primary.current, self.candidate.current, self.window
        return {
            "model": self.name,
            "alias": self.alias,
            "primary": None if primary is None else primary.version.ref,
            "primary_error": self.primary.last_error,
            "candidate": None if candidate is None else candidate.version.ref,
            "candidate_alias": self.settings.candidate_alias,
            "rollout": self.settings.to_json(),
            "window": None if window is None else window.snapshot(),
            "shadow_dropped": self.shadow_dropped,
            "registry": "ok" if self.registry_error is None else f"unreachable: {self.registry_error}",
            "events": [e.to_json() for e in self.events],
        }
