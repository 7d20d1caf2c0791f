"""Who may read and manage a knowledge base. One the actor may not read is answered
exactly like one that does not exist (404), so neither its name nor its existence leaks."""

from sqlmodel import Session, select

from app.core.errors import NotFound
from app.core.roles import Actor, Role, require_role
from app.knowledge.tables import KnowledgeBase

READER_ROLE_CHOICES = (Role.viewer.value, Role.staff.value)


def may_read(actor: Actor, knowledge_base: KnowledgeBase) -> bool:
    return actor.role == Role.admin.value or actor.role in knowledge_base.reader_roles


def not_found(knowledge_base_id: int) -> NotFound:
    return NotFound(f"Knowledge base {knowledge_base_id} does not exist or you may not read it.")


def readable_knowledge_bases(*, db_session: Session, actor: Actor) -> list[KnowledgeBase]:
    everything = db_session.exec(select(KnowledgeBase).order_by(KnowledgeBase.name))
    return [knowledge_base for knowledge_base in everything if may_read(actor, knowledge_base)]


def get_knowledge_base(*, db_session: Session, actor: Actor, knowledge_base_id: int) -> KnowledgeBase:
    knowledge_base = db_session.get(KnowledgeBase, knowledge_base_id)
    if knowledge_base is None or not may_read(actor, knowledge_base):
        raise not_found(knowledge_base_id)
    return knowledge_base


def get_managed_knowledge_base(*, db_session: Session, actor: Actor, knowledge_base_id: int) -> KnowledgeBase:
    """A knowledge base the actor may change: staff or admin, and a reader of it."""
    require_role(actor, Role.staff)
    return get_knowledge_base(db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id)
