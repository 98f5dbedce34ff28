"""Alembic environment: runs on the engine handed over by ``service.db.upgrade`` or on the configured URL."""

from __future__ import annotations

from alembic import context

from service import tables  # noqa: F401  (registers every table on the metadata)
from service.db import Base, make_engine

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from service.config import get_settings

    engine = make_engine(get_settings().effective_database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
