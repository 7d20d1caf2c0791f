from sqlalchemy import Connection

from alembic import context
from app.core.db import get_engine, make_engine
from app.tables import metadata


def run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table by dropping it: with foreign keys on, that drop cascades and
        # deleted every API key, session and conversation of a user table rebuilt by 0005. The
        # pragma only takes effect outside a transaction, so it comes first.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()  # else Alembic takes the transaction begun here for a caller's and never commits
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").all()):
                raise RuntimeError(f"The migrations left rows pointing at rows that do not exist: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


url = context.config.get_main_option("sqlalchemy.url")
engine = make_engine(url) if url else get_engine()
if connection := context.config.attributes.get("connection"):
    run(connection)
else:
    with engine.connect() as conn:
        run(conn)
