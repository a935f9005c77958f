"""Alembic's entry point: migrate the connection ``conveyor.store._db`` passes in, inside the
transaction it holds (so the upgrade and the version stamp land together, or not at all)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
