from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.core.db import get_engine
from app.tables import metadata


def test_migrations_match_the_tables(db):
    """Autogenerate finds nothing to add: every table change has its migration."""
    with get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []
