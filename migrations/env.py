"""Alembic environment: the URL comes from the caller (``flask db upgrade``) or KB_DATABASE_URL."""
from alembic import context

from config.settings import load_settings
from middleware.ledger.db import make_engine, normalise_url
from middleware.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    return normalise_url(config.get_main_option("sqlalchemy.url") or load_settings().database_url)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url(), load_settings())  # KB_DATABASE_PREPARED_STATEMENTS etc.
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
