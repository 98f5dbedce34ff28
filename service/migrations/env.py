"""Alembic environment: runs on the engine handed over by ``service.db.upgrade`` or on the configured URL.

On SQLite the migrations run with foreign keys off, one real transaction per step, and a foreign-key check after
each step (:func:`service.db.sqlite_migration_mode`): batch mode recreates tables that other tables reference.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from alembic import context

from service import tables  # noqa: F401  (registers every table on the metadata)
from service.db import Base, make_engine, refuse_dangling_foreign_keys, sqlite_migration_mode

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from service.config import get_settings

    engine = make_engine(get_settings().effective_database_url)

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    mode: AbstractContextManager[None] = sqlite_migration_mode(connection) if sqlite else nullcontext()
    with mode:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,  # SQLite cannot ALTER most things in place
            compare_type=True,
            on_version_apply=refuse_dangling_foreign_keys if sqlite else None,
            # A step refused by the foreign-key check rolls back alone; the steps before it stay applied.
            transaction_per_migration=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
