"""Promotion policy: what an alias requires of a version, declared in ``conveyor.yaml``.

.. code-block:: yaml

    registry:
      aliases:
        production:
          requires: [data_integrity, model_evaluation, champion_challenger]

A requirement names a check suite (or the ``check:`` stage that runs it); it is met when the
latest recorded result of that suite on this version (on its artifact, or on data in its
lineage) passed. Aliases not listed require nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.registry._records import CheckRecord

_ALIAS_FIELDS = ("requires",)


@dataclass(frozen=True)
class Verdict:
    """What a policy said of one promotion."""

    alias: str
    required: tuple[str, ...]
    missing: tuple[str, ...]  # never run on this version (or not against the champion in place)
    failed: tuple[str, ...]  # the latest result did not pass
    champion_checked: bool = False  # a requirement was met by a comparison with the alias's current version

    @property
    def allowed(self) -> bool:
        return not self.missing and not self.failed

    def to_json(self) -> dict[str, Any]:
        return {"required": list(self.required), "missing": list(self.missing), "failed": list(self.failed)}

    def explain(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"no result of {', '.join(self.missing)}")
        if self.failed:
            parts.append(f"{', '.join(self.failed)} did not pass")
        return "; ".join(parts)


@dataclass(frozen=True)
class Policy:
    requires: dict[str, tuple[str, ...]] = field(default_factory=dict)  # alias -> suite or stage names
    source: str = ""

    def judge(self, alias: str, checks: tuple[CheckRecord, ...], *, champion: str | None = None) -> Verdict:
        """``champion``: the artifact hash ``alias`` serves now. A champion/challenger result
        against any other model says nothing of this promotion and is left out."""
        required = self.requires.get(alias, ())
        latest: dict[str, CheckRecord] = {}
        relevant = [c for c in checks if c.champion is None or champion is None or c.champion == champion]
        for check in sorted(relevant, key=lambda c: c.recorded_at):
            latest[check.suite] = check
            if check.stage:
                latest[check.stage] = check
        missing = tuple(name for name in required if name not in latest)
        # a suite whose every check was skipped tested nothing: it does not meet a requirement
        failed = tuple(
            name
            for name in required
            if name in latest and (not latest[name].passed or latest[name].status == "skipped")
        )
        against = any(name in latest and latest[name].champion is not None for name in required)
        return Verdict(alias, required, missing, failed, champion_checked=against and champion is not None)


def load_policy(root: Path) -> Policy:
    """The policy of the workspace at ``root`` (``conveyor.yaml``'s ``registry:``; none without one)."""
    from conveyor.pipeline._spec import PIPELINE_FILE
    from conveyor.pipeline._yaml import SpecError, load

    path = root / PIPELINE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Policy()
    doc = load(text, PIPELINE_FILE)
    top = doc.value if isinstance(doc.value, dict) else {}
    section = top.get("registry")
    if section is None:
        return Policy(source=PIPELINE_FILE)

    def fail(where: tuple[str | int, ...], message: str, hint: str, *, key: bool = False) -> ConveyorError:
        return SpecError(f"{doc.mark(where, key=key)}: {message}", hint=hint)

    if not isinstance(section, dict) or set(section) - {"aliases"}:
        raise fail(("registry",), "'registry' takes 'aliases'", "registry: {aliases: {production: {requires: [...]}}}")
    aliases = section.get("aliases") or {}
    if not isinstance(aliases, dict):
        raise fail(("registry", "aliases"), "'aliases' must map alias names to rules", "aliases: {production: {...}}")
    requires: dict[str, tuple[str, ...]] = {}
    for alias, rule in aliases.items():
        where = ("registry", "aliases", alias)
        if not isinstance(rule, dict):
            raise fail(where, f"alias '{alias}' must be a mapping", "production: {requires: [model_evaluation]}")
        unknown = [k for k in rule if k not in _ALIAS_FIELDS]
        if unknown:
            from conveyor._suggest import did_you_mean

            hint = did_you_mean(unknown[0], _ALIAS_FIELDS) or "an alias takes 'requires'"
            raise fail((*where, unknown[0]), f"unknown field '{unknown[0]}'", hint, key=True)
        names = rule.get("requires", [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise fail(
                (*where, "requires"), "'requires' must be a list of check suite names", "requires: [model_evaluation]"
            )
        requires[str(alias)] = tuple(names)
    return Policy(requires, PIPELINE_FILE)
