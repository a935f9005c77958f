"""The model registry: ``conveyor model register|list|show|promote|rollback|history|tag|describe``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from conveyor.registry import AliasMove, BundleRecord, ModelVersion, Registry


def register(cli: click.Group) -> None:
    cli.add_command(model_group)


@click.group("model")
def model_group() -> None:
    """Register model versions, move aliases (production, staging, ...) and read their history."""


def _open(*, create: bool = True) -> Registry:
    """The registry of the workspace here; reading commands pass ``create=False`` (a mistyped
    database path must not quietly become a new, empty database)."""
    from conveyor.registry import Registry

    return Registry.open(create=create)


@model_group.command("register")
@click.argument("name")
@click.argument("path", required=False)
@click.option("--from-run", "run", metavar="RUN", help="The run that produced it (an id, a prefix, or 'latest').")
@click.option("--out", metavar="PATH", help="With --from-run: the run's output to register.")
@click.option(
    "--signature-from", metavar="DATA", help="Infer the input/output signature from this CSV or Parquet file."
)
@click.option("--label", help="With --signature-from: the label column (the model's output).")
@click.option("--flavor", help="The model's library, when it cannot be told from the file.")
@click.option("-d", "--description", default="", help="What this version is.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag on the version (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the new version as JSON.")
def register_cmd(
    name: str,
    path: str | None,
    run: str | None,
    out: str | None,
    signature_from: str | None,
    label: str | None,
    flavor: str | None,
    description: str,
    tags: tuple[str, ...],
    as_json: bool,
) -> None:
    """Register PATH (or a run's output) as the next version of model NAME.

    The artifact is stored in the cache (and pushed with 'conveyor push'); its lineage (run,
    commit, the hashes of what produced it, params, metrics) comes from the run that made it.
    """
    from conveyor.registry import Signature

    signature = None
    if signature_from is not None:
        signature = Signature.from_file(signature_from, label=label)
    elif label is not None:
        raise click.UsageError("--label goes with --signature-from DATA")
    with _open() as registry:
        version = registry.register(
            name,
            path,
            run=run,
            out=out,
            signature=signature,
            flavor=flavor,
            description=description,
            tags=_pairs(tags),
        )
    if as_json:
        click.echo(json.dumps(version.to_json(), indent=2))
        return
    made = f", from run {version.run_id} (stage {version.lineage.stage})" if version.run_id else ""
    click.echo(
        f"registered {version.ref}: {version.artifact_name}, {version.flavor} ({version.format}), "
        f"{_size(version.artifact_size)}{made}"
    )


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--tag {item!r}: expected KEY=VALUE")
        found[key] = value
    return found


def _size(n: int) -> str:
    from conveyor.cli._render import human_size

    return human_size(n)


@model_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the models as JSON.")
def list_cmd(as_json: bool) -> None:
    """List the registered models: versions, the latest one, aliases."""
    from conveyor.store._report import format_table, format_time

    with _open(create=False) as registry:
        models = registry.models()
    if as_json:
        click.echo(json.dumps([m.to_json() for m in models], indent=2))
        return
    if not models:
        click.echo("No models registered yet; 'conveyor model register NAME PATH' registers one.")
        return
    rows = [
        [
            m.name,
            str(m.versions),
            str(m.latest or "-"),
            ", ".join(f"{a}: {v}" for a, v in m.aliases.items()) or "-",
            format_time(m.created_at),
            m.description,
        ]
        for m in models
    ]
    for line in format_table(["MODEL", "VERSIONS", "LATEST", "ALIASES", "CREATED", "DESCRIPTION"], rows):
        click.echo(line)


@model_group.command("show")
@click.argument("ref", metavar="NAME[:VERSION|@ALIAS]")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def show_cmd(ref: str, as_json: bool) -> None:
    """Show a model and its versions (NAME), or one version with its lineage and checks."""
    from conveyor.store._report import format_table, format_time

    with _open(create=False) as registry:
        if ":" in ref or "@" in ref:
            version = registry.get(ref)
            if as_json:
                click.echo(json.dumps(version.to_json(), indent=2))
                return
            for line in version_lines(version):
                click.echo(line)
            for line in bundle_lines(registry.bundles(version)):
                click.echo(line)
            return
        info = registry.model(ref)
        versions = registry.versions(ref)
    if as_json:
        click.echo(json.dumps({**info.to_json(), "versions_list": [v.to_json() for v in versions]}, indent=2))
        return
    click.echo(f"model {info.name}" + (f": {info.description}" if info.description else ""))
    if info.tags:
        click.echo("tags: " + ", ".join(f"{k}={v}" for k, v in info.tags.items()))
    rows = [
        [
            str(v.version),
            ", ".join(v.aliases) or "-",
            f"{v.flavor} ({v.format})",
            v.artifact_hash[:12],
            v.run_id or "-",
            _checks_cell(v),
            format_time(v.created_at),
            v.created_by,
        ]
        for v in versions
    ]
    for line in format_table(["VERSION", "ALIASES", "FLAVOR", "ARTIFACT", "RUN", "CHECKS", "CREATED", "BY"], rows):
        click.echo(line)


def bundle_lines(bundles: list[BundleRecord]) -> list[str]:
    from conveyor.store._report import format_time

    if not bundles:
        return []
    lines = ["  bundles:"]
    for bundle in bundles:
        image = bundle.options.get("image")
        lines.append(
            f"    sha256:{bundle.sha256}  {bundle.size:,} bytes, built {format_time(bundle.built_at)} by "
            f"{bundle.built_by}" + (f", image {image}" if image else "")
        )
    return lines


@model_group.command("trace")
@click.argument("bundle", metavar="ARCHIVE|SHA256")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def trace_cmd(bundle: str, as_json: bool) -> None:
    """Trace a deployed bundle (its .tar.gz, or its SHA-256) back to its version, and from there
    to its run, commit, data and checks."""
    import hashlib
    from pathlib import Path

    digest = bundle
    path = Path(bundle)
    if path.is_file():
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    with _open(create=False) as registry:
        record = registry.find_bundle(digest)
        version = registry.get(record.ref)
    if as_json:
        click.echo(json.dumps({"bundle": record.to_json(), "version": version.to_json()}, indent=2))
        return
    click.echo(f"bundle sha256:{record.sha256} was built from {record.ref}")
    for line in version_lines(version):
        click.echo(line)


def _checks_cell(version: ModelVersion) -> str:
    latest: dict[str, bool] = {}
    for check in version.checks:
        latest[check.suite] = check.passed
    return ", ".join(f"{suite} {'ok' if ok else 'FAILED'}" for suite, ok in latest.items()) or "-"


_METRICS_SHOWN = 8


def version_lines(version: ModelVersion) -> list[str]:
    from conveyor.store._report import format_time, format_value

    lineage = version.lineage
    lines = [
        f"{version.ref}" + (f" ({', '.join(version.aliases)})" if version.aliases else ""),
        f"  artifact:  {version.artifact_name}, {_size(version.artifact_size)}, blake3:{version.artifact_hash}",
        f"  flavor:    {version.flavor} ({version.format})",
        f"  created:   {format_time(version.created_at, seconds=True)} by {version.created_by}",
        f"  source:    {version.source}",
    ]
    if version.description:
        lines.append(f"  about:     {version.description}")
    if version.signature is not None:
        lines.append(f"  signature: {version.signature.describe()}")
    if version.tags:
        lines.append("  tags:      " + ", ".join(f"{k}={v}" for k, v in version.tags.items()))
    lines.append(f"  run:       {version.run_id or '-'}" + (f", stage {lineage.stage}" if lineage.stage else ""))
    lines.append(f"  commit:    {version.git_commit or '-'}")
    if lineage.deps:
        lines.append("  made from:")
        lines += [f"    {path}  {digest[:12]}" for path, digest in sorted(lineage.deps.items())]
    if lineage.upstream:
        lines.append("  upstream:")
        lines += [f"    {path}  {digest[:12]}" for path, digest in sorted(lineage.upstream.items())]
    if lineage.params:
        lines.append("  params:    " + ", ".join(f"{k}={format_value(v)}" for k, v in sorted(lineage.params.items())))
    if lineage.metrics:
        shown = sorted(lineage.metrics.items())[:_METRICS_SHOWN]
        more = len(lineage.metrics) - len(shown)
        lines.append(
            "  metrics:   "
            + ", ".join(f"{k}={format_value(v, digits=4)}" for k, v in shown)
            + (f" and {more} more (--json shows all)" if more else "")
        )
    if version.checks:
        lines.append("  checks:")
        for check in version.checks:
            where = f" (stage {check.stage})" if check.stage else ""
            lines.append(
                f"    {check.suite}{where}: {'passed' if check.passed else 'FAILED'} ({check.status}), "
                f"on the {check.on}, {format_time(check.recorded_at)}"
            )
    else:
        lines.append("  checks:    none recorded")
    return lines


@model_group.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--to", "alias", required=True, metavar="ALIAS", help="The alias to move (production, staging, ...).")
@click.option("--reason", default="", help="Why: kept in the audit history.")
@click.option("--force", is_flag=True, help="Promote although the policy is not met (needs --reason).")
def promote_cmd(name: str, version: str, alias: str, reason: str, force: bool) -> None:
    """Point ALIAS of model NAME at VERSION, if the promotion policy of conveyor.yaml allows it."""
    with _open() as registry:
        move = registry.promote(f"{name}:{version}", to=alias, reason=reason, force=force)
    click.echo(_move_line(move))


@model_group.command("rollback")
@click.argument("name")
@click.option("--alias", required=True, metavar="ALIAS", help="The alias to move back.")
@click.option("--reason", default="", help="Why: kept in the audit history.")
def rollback_cmd(name: str, alias: str, reason: str) -> None:
    """Move ALIAS of model NAME back to the version it pointed at before."""
    with _open() as registry:
        move = registry.rollback(name, alias=alias, reason=reason)
    click.echo(_move_line(move))


def _move_line(move: AliasMove) -> str:
    before = f"{move.model}:{move.from_version}" if move.from_version is not None else "nothing"
    after = f"{move.model}:{move.to_version}" if move.to_version is not None else "nothing"
    forced = " (forced past the policy)" if move.policy.get("overridden") else ""
    return f"{move.alias}: {before} -> {after}{forced}"


@model_group.command("history")
@click.argument("name")
@click.option("--alias", metavar="ALIAS", help="Only this alias.")
@click.option("--at", "when", metavar="TIME", help="Which version each alias pointed at, at TIME (ISO 8601 or 'now').")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
def history_cmd(name: str, alias: str | None, when: str | None, as_json: bool) -> None:
    """Every move of the aliases of model NAME, oldest first: when, who, from, to, why."""
    from conveyor.store._report import format_table, format_time

    with _open(create=False) as registry:
        moves = registry.history(name, alias=alias)
        if when is not None:
            stamp = _parse_time(when)
            aliases = sorted({m.alias for m in moves})
            found = {a: registry.alias_at(name, a, stamp) for a in aliases}
            if as_json:
                click.echo(json.dumps({"at": stamp, "aliases": found}, indent=2))
                return
            click.echo(f"at {format_time(stamp, seconds=True)}:")
            for a, number in found.items():
                click.echo(f"  {a}: {f'{name}:{number}' if number is not None else 'nothing'}")
            if not found:
                click.echo("  no alias had been set")
            return
    if as_json:
        click.echo(json.dumps([m.to_json() for m in moves], indent=2))
        return
    if not moves:
        click.echo(f"No alias of {name} has moved yet.")
        return
    rows = [
        [
            format_time(m.at, seconds=True),
            m.alias,
            m.action + (" (forced)" if m.policy.get("overridden") else ""),
            "-" if m.from_version is None else str(m.from_version),
            "-" if m.to_version is None else str(m.to_version),
            m.actor,
            m.reason,
        ]
        for m in moves
    ]
    for line in format_table(["WHEN", "ALIAS", "ACTION", "FROM", "TO", "WHO", "WHY"], rows):
        click.echo(line)


def _parse_time(text: str) -> float:
    import datetime as dt
    import time

    if text == "now":
        return time.time()
    from conveyor.errors import UsageError

    try:
        parsed = dt.datetime.fromisoformat(text.replace(" UTC", "+00:00"))  # also the form history prints
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # a local time, as the history prints them
        # a time to the second, as history prints them, means the end of that second
        return parsed.timestamp() + (0.999999 if parsed.microsecond == 0 and text != "now" else 0.0)
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"--at {text!r} is not a time", hint="use ISO 8601: 2026-11-27T09:30 (local), with +00:00 for UTC, or 'now'"
        ) from None


@model_group.command("tag")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.argument("pairs", nargs=-1, metavar="KEY=VALUE...")
@click.option("--delete", "deleted", multiple=True, metavar="KEY", help="Remove this tag (repeatable).")
def tag_cmd(ref: str, pairs: tuple[str, ...], deleted: tuple[str, ...]) -> None:
    """Set tags on a model (NAME) or a version (NAME:VERSION)."""
    if not pairs and not deleted:
        raise click.UsageError("give KEY=VALUE tags to set, or --delete KEY")
    values: dict[str, Any] = {**_pairs(pairs), **{key: None for key in deleted}}
    with _open() as registry:
        for key, value in values.items():
            registry.set_tag(ref, key, value)
    click.echo(f"tagged {ref}: " + ", ".join(f"{k}={v}" if v is not None else f"-{k}" for k, v in values.items()))


@model_group.command("describe")
@click.argument("ref", metavar="NAME[:VERSION]")
@click.argument("text")
def describe_cmd(ref: str, text: str) -> None:
    """Set the description of a model (NAME) or a version (NAME:VERSION)."""
    with _open() as registry:
        registry.describe(ref, text)
    click.echo(f"described {ref}")
