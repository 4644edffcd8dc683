"""Alembic environment: run by ``tessera-manage db sync`` with the connection set up by
services/registry/manage.py."""

from alembic import context

from services.registry.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
