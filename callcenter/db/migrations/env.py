"""Alembic environment: the engine is handed in by callcenter.db.engine, never read from ini."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from callcenter.db.models import Base

engine: Engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
    context.run_migrations()
