"""Run records: the tables of the SQLite-only run store that came before (schema version 1).

Revision ID: 0001_runs
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_runs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
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
    )
    op.create_index("runs_started_at", "runs", ["started_at"])
    op.create_index("runs_status_started_at", "runs", ["status", "started_at"])
    op.create_table(
        "run_stages",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("duration", sa.Double, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("error", sa.Text),
    )
    op.create_index("run_stages_started_at", "run_stages", ["started_at"])
    op.create_table(
        "run_outs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("stage", sa.Text, primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("hash", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["run_id", "stage"], ["run_stages.run_id", "run_stages.name"], ondelete="CASCADE"),
    )
    op.create_index("run_outs_hash", "run_outs", ["hash"])
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("number", sa.Double),
    )
    op.create_index("run_metrics_key_number", "run_metrics", ["key", "number"])


def downgrade() -> None:
    for table in ("run_metrics", "run_params", "run_outs", "run_stages", "runs"):
        op.drop_table(table)
