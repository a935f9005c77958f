"""The model registry (models, versions, tags, aliases and their audit history), the results
of check suites with the files they looked at, and the deps of each stage of a run (the
lineage of what it produced).

Revision ID: 0002_registry
Revises: 0001_runs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_registry"
down_revision = "0001_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_deps",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("stage", sa.Text, primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("hash", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["run_id", "stage"], ["run_stages.run_id", "run_stages.name"], ondelete="CASCADE"),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("artifact_hash", sa.Text, nullable=False),
        sa.Column("artifact_size", sa.BigInteger, nullable=False),
        sa.Column("artifact_name", sa.Text, nullable=False),
        sa.Column("flavor", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("loader", sa.Text, nullable=False, server_default="{}"),
        sa.Column("signature", sa.Text),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
        sa.Column("run_id", sa.Text),
        sa.Column("git_commit", sa.Text),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("lineage", sa.Text, nullable=False, server_default="{}"),
        sa.UniqueConstraint("model_id", "version", name="model_versions_model_version"),
    )
    op.create_index("model_versions_artifact_hash", "model_versions", ["artifact_hash"])
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("suite", sa.Text, nullable=False),
        sa.Column("stage", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("recorded_at", sa.Double, nullable=False),
        sa.Column("summary", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_table(
        "check_inputs",
        sa.Column("result_id", sa.Integer, sa.ForeignKey("check_results.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("role", sa.Text, primary_key=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
    )
    op.create_index("check_inputs_hash", "check_inputs", ["hash"])
    op.create_table(
        "model_tags",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "version_tags",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("alias", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("policy", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("alias_events_model_alias_at", "alias_events", ["model_id", "alias", "at"])


def downgrade() -> None:
    for table in (
        "alias_events",
        "aliases",
        "version_tags",
        "model_tags",
        "check_inputs",
        "check_results",
        "model_versions",
        "models",
        "run_deps",
    ):
        op.drop_table(table)
