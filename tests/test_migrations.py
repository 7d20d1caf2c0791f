from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from alembic import command
from app.ask import service
from app.core import migrations
from app.core.db import get_engine, session_scope
from app.tables import metadata

OLD_CONVERSATION = (
    "INSERT INTO conversation (user_id, title, knowledge_base_ids, created_at, updated_at) "
    "VALUES (:user, 'Old', '[]', '2026-01-01', '2026-01-01')"
)
OLD_ANSWER = (
    "INSERT INTO message (conversation_id, role, content, passages, status, generator, created_at) "
    "SELECT id, 'assistant', 'An old answer.', '[]', 'complete', 'SmolLM2', '2026-01-01' FROM conversation"
)


def test_migrations_match_the_tables(db):
    """Autogenerate finds nothing to add: every table change has its migration."""
    with get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_answers_saved_before_the_grounding_migration_stay_readable_unchecked(db, database_url, staff):
    """Migration 0012 down and up again on SQLite and PostgreSQL: answers saved before it
    keep their text and have no grounding."""
    config = migrations.alembic_config(database_url)
    command.downgrade(config, "0011")
    try:
        columns = {column["name"] for column in inspect(get_engine()).get_columns("message")}
        assert "grounding" not in columns and "grounding_flagged" not in columns
        with get_engine().begin() as connection:
            connection.execute(text(OLD_CONVERSATION), {"user": staff.id})
            connection.execute(text(OLD_ANSWER))
    finally:
        command.upgrade(config, "head")
    with session_scope() as db_session:
        [conversation] = service.list_conversations(db_session=db_session, actor=staff)
        [answer] = service.conversation_messages(db_session=db_session, actor=staff, conversation_id=conversation.id)
        assert (answer.content, answer.grounding, answer.grounding_flagged) == ("An old answer.", None, None)
