"""The installed distributions runs ran with (stored once per distinct set) and the deployable
bundles built from model versions.

Revision ID: 0003_bundles
Revises: 0002_registry
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_bundles"
down_revision = "0002_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("packages_hash", sa.Text, primary_key=True),
        sa.Column("packages", sa.Text, nullable=False),
        sa.Column("python", sa.Text, nullable=False, server_default=""),
        sa.Column("platform", sa.Text, nullable=False, server_default=""),
        sa.Column("recorded_at", sa.Double, nullable=False),
    )
    op.create_table(
        "model_bundles",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("built_at", sa.Double, nullable=False),
        sa.Column("built_by", sa.Text, nullable=False, server_default=""),
        sa.Column("options", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("model_bundles_sha256", "model_bundles", ["sha256"])


def downgrade() -> None:
    op.drop_index("model_bundles_sha256", table_name="model_bundles")
    op.drop_table("model_bundles")
    op.drop_table("environments")
