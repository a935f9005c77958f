"""The tables of conveyor's database, as SQLAlchemy Core objects the queries are written against.

The migrations in ``_migrations/versions`` create them; these definitions mirror the head
revision (a test compares the two on SQLite and PostgreSQL). Times are Unix seconds
(double precision), JSON is stored as text: the same on every database.
"""

from __future__ import annotations

import sqlalchemy as sa

# Every revision this conveyor knows, oldest first; the last is the head. A database whose
# revision is not listed was written by a newer conveyor.
REVISIONS = ("0001_runs", "0002_registry", "0003_bundles")
HEAD = REVISIONS[-1]

metadata = sa.MetaData()

# -- runs (revision 0001, the layout of the SQLite-only run store before it) --------------------

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("ended_at", sa.Double),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("git_commit", sa.Text),
    sa.Column("dirty", sa.Integer, nullable=False, server_default="0"),
    sa.Column("targets", sa.Text, nullable=False, server_default="[]"),
    sa.Column("command", sa.Text, nullable=False, server_default=""),
    sa.Column("environment", sa.Text, nullable=False, server_default="{}"),
    sa.Column("host", sa.Text, nullable=False, server_default=""),
    sa.Column("pid", sa.Integer),
    sa.Column("process_start", sa.Text),
    sa.Index("runs_started_at", "started_at"),
    sa.Index("runs_status_started_at", "status", "started_at"),
)

run_stages = sa.Table(
    "run_stages",
    metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("duration", sa.Double, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("error", sa.Text),
    sa.Index("run_stages_started_at", "started_at"),
)

run_outs = sa.Table(
    "run_outs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("stage", sa.Text, primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("hash", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["run_id", "stage"], ["run_stages.run_id", "run_stages.name"], ondelete="CASCADE"),
    sa.Index("run_outs_hash", "hash"),
)

run_params = sa.Table(
    "run_params",
    metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("number", sa.Double),
    sa.Index("run_metrics_key_number", "key", "number"),
)

# -- revision 0002: what produced each output, and the model registry -------------------------

run_deps = sa.Table(
    "run_deps",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("stage", sa.Text, primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("hash", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(["run_id", "stage"], ["run_stages.run_id", "run_stages.name"], ondelete="CASCADE"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False, server_default=""),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("artifact_hash", sa.Text, nullable=False),
    sa.Column("artifact_size", sa.BigInteger, nullable=False),
    sa.Column("artifact_name", sa.Text, nullable=False),
    sa.Column("flavor", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("loader", sa.Text, nullable=False, server_default="{}"),  # JSON: how to load it
    sa.Column("signature", sa.Text),  # JSON: inputs and outputs, or NULL when unknown
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    sa.Column("run_id", sa.Text),  # the run that produced the artifact, when known
    sa.Column("git_commit", sa.Text),
    sa.Column("source", sa.Text, nullable=False, server_default=""),  # the path it was registered from
    sa.Column("lineage", sa.Text, nullable=False, server_default="{}"),  # JSON: stage, deps, params, metrics
    sa.UniqueConstraint("model_id", "version", name="model_versions_model_version"),
    sa.Index("model_versions_artifact_hash", "artifact_hash"),
)

# What each check suite run said, and the files it looked at (by content hash): a version's
# checks are those whose model is its artifact, or whose data is in its lineage.
check_results = sa.Table(
    "check_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("suite", sa.Text, nullable=False),
    sa.Column("stage", sa.Text),  # the check stage of conveyor.yaml that ran it, if one did
    sa.Column("run_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),  # the suite's worst status: pass, warn, fail, error
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.Double, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default="{}"),  # JSON: counts, failing checks
)

check_inputs = sa.Table(
    "check_inputs",
    metadata,
    sa.Column("result_id", sa.Integer, sa.ForeignKey("check_results.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.Text, primary_key=True),  # data, train, test, model, champion, schema
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.Index("check_inputs_hash", "hash"),
)

model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

version_tags = sa.Table(
    "version_tags",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("alias", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# Append-only: every move of an alias, forced or not, with who, when and why.
alias_events = sa.Table(
    "alias_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("alias", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # promote, rollback, remove, abort (a failed rollout)
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("policy", sa.Text, nullable=False, server_default="{}"),  # JSON: what the policy asked and found
    sa.Index("alias_events_model_alias_at", "model_id", "alias", "at"),
)

# -- environments and bundles (revision 0003) ---------------------------------------------------

# The installed distributions a run ran with, stored once per distinct set: a run's environment
# names its set by the BLAKE3 of the sorted ``name==version`` lines (``packages``).
environments = sa.Table(
    "environments",
    metadata,
    sa.Column("packages_hash", sa.Text, primary_key=True),
    sa.Column("packages", sa.Text, nullable=False),  # JSON: the sorted name==version lines
    sa.Column("python", sa.Text, nullable=False, server_default=""),
    sa.Column("platform", sa.Text, nullable=False, server_default=""),
    sa.Column("recorded_at", sa.Double, nullable=False),
)

# Every deployable bundle built from a version: its archive's SHA-256 traces a deployment back
# to the version (and from there to its run, data and checks).
model_bundles = sa.Table(
    "model_bundles",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("built_at", sa.Double, nullable=False),
    sa.Column("built_by", sa.Text, nullable=False, server_default=""),
    sa.Column("options", sa.Text, nullable=False, server_default="{}"),  # JSON: image, base image, ...
    sa.Index("model_bundles_sha256", "sha256"),
)
