"""Alembic migrations of conveyor's database (run by ``conveyor.store._db``, never by hand)."""
