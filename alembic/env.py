from sqlalchemy import Connection

from alembic import context
from app.core.db import get_engine, make_engine
from app.tables import metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


url = context.config.get_main_option("sqlalchemy.url")
engine = make_engine(url) if url else get_engine()
if connection := context.config.attributes.get("connection"):
    run(connection)
else:
    with engine.connect() as conn:
        run(conn)
