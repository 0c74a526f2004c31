"""Alembic environment: runs on the connection Kinema hands over, or on KINEMA_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from kinema.db.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from kinema.config import load_settings

    engine = create_engine(load_settings().resolved_database_url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
