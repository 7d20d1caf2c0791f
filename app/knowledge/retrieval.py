"""Passages out: dense (embedding) and lexical (BM25) rankings over the ready documents of
the knowledge bases an actor may read, fused by weighted reciprocal rank."""

import threading
from typing import Literal

from sqlmodel import Session, col, select

from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import InvalidInput
from app.core.roles import Actor
from app.core.settings import get_settings
from app.knowledge import vectors
from app.knowledge.access import get_knowledge_base, readable_knowledge_bases
from app.knowledge.lexical import LexicalIndex
from app.knowledge.schemas import Passage
from app.knowledge.tables import Chunk, Document, DocumentStatus, KnowledgeBase

RetrievalMode = Literal["hybrid", "dense", "lexical"]
# Reciprocal rank fusion's constant (Cormack et al. 2009): damps the weight of the very first ranks.
RRF_K = 60
# Each ranking contributes this many candidates per requested passage to the fusion.
CANDIDATES_PER_RESULT = 4
MIN_CANDIDATES = 50


class _LexicalIndexes:
    """One BM25 index per knowledge base per process, rebuilt when its ready documents change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[int, tuple[tuple, LexicalIndex]] = {}

    def get(self, db_session: Session, knowledge_base_id: int) -> LexicalIndex:
        version = tuple(
            db_session.exec(
                select(Document.id, Document.chunk_count, Document.ready_at)
                .where(Document.knowledge_base_id == knowledge_base_id, Document.status == DocumentStatus.ready.value)
                .order_by(Document.id)
            )
        )
        with self._lock:
            cached = self._indexes.get(knowledge_base_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        rows = db_session.exec(
            select(Chunk.id, Chunk.heading, Chunk.text)
            .join(Document, col(Document.id) == col(Chunk.document_id))
            .where(Chunk.knowledge_base_id == knowledge_base_id, Document.status == DocumentStatus.ready.value)
            .order_by(Chunk.id)
        ).all()
        index = LexicalIndex([row[0] for row in rows], [f"{row[1]}\n{row[2]}" if row[1] else row[2] for row in rows])
        with self._lock:
            self._indexes[knowledge_base_id] = (version, index)
        return index

    def forget(self, knowledge_base_id: int) -> None:
        with self._lock:
            self._indexes.pop(knowledge_base_id, None)


LEXICAL_INDEXES = _LexicalIndexes()


async def search_for_caller(
    *,
    actor: Actor,
    query: str,
    knowledge_base_ids: list[int] | None = None,
    top_k: int | None = None,
    mode: RetrievalMode = "hybrid",
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> list[Passage]:
    """A search someone asks for (the API's /search): one request from their rate limit (or
    their API key's), then `search` over the knowledge bases named, by default every one the
    actor may read."""
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    return await run_in_session(
        _search_readable, actor=actor, query=query, knowledge_base_ids=knowledge_base_ids, top_k=top_k, mode=mode
    )


def _search_readable(
    *, db_session: Session, actor: Actor, knowledge_base_ids: list[int] | None, **query
) -> list[Passage]:
    if knowledge_base_ids is None:
        knowledge_base_ids = [kb.id for kb in readable_knowledge_bases(db_session=db_session, actor=actor)]
    return search(db_session=db_session, actor=actor, knowledge_base_ids=knowledge_base_ids, **query)


def search(
    *,
    db_session: Session,
    actor: Actor,
    knowledge_base_ids: list[int],
    query: str,
    top_k: int | None = None,
    mode: RetrievalMode = "hybrid",
) -> list[Passage]:
    """The passages of ready documents that best answer `query`, best first.

    hybrid fuses the dense (embedding) and lexical (BM25) rankings by reciprocal rank;
    dense and lexical return one ranking alone. Raises NotFound for a knowledge base
    that does not exist or that the actor may not read."""
    query = " ".join(query.split())
    if not query:
        raise InvalidInput("Type a question or some words to search for.")
    top_k = top_k or get_settings().retrieval_top_k
    if top_k < 1:
        raise InvalidInput("top_k must be at least 1.")
    knowledge_bases = [
        get_knowledge_base(db_session=db_session, actor=actor, knowledge_base_id=knowledge_base_id)
        for knowledge_base_id in dict.fromkeys(knowledge_base_ids)
    ]
    if not knowledge_bases:
        return []
    candidates = max(MIN_CANDIDATES, top_k * CANDIDATES_PER_RESULT)
    dense = _dense_ranking(db_session, knowledge_bases, query, candidates) if mode != "lexical" else {}
    lexical = _lexical_ranking(db_session, knowledge_bases, query, candidates) if mode != "dense" else {}
    if mode == "dense":
        scores = {chunk_id: score for chunk_id, (_rank, score) in dense.items()}
    elif mode == "lexical":
        scores = {chunk_id: score for chunk_id, (_rank, score) in lexical.items()}
    else:
        weight = get_settings().retrieval_lexical_weight
        scores = {chunk_id: _fused(chunk_id, dense, lexical, weight) for chunk_id in set(dense) | set(lexical)}
    order = sorted(scores, key=lambda chunk_id: -scores[chunk_id])[:top_k]
    return _passages(db_session, knowledge_bases, order, dense, lexical, scores)


def _fused(
    chunk_id: str, dense: dict[str, tuple[int, float]], lexical: dict[str, tuple[int, float]], lexical_weight: float
) -> float:
    """Weighted reciprocal rank fusion of the two rankings."""
    score = 1.0 / (RRF_K + dense[chunk_id][0]) if chunk_id in dense else 0.0
    if chunk_id in lexical:
        score += lexical_weight / (RRF_K + lexical[chunk_id][0])
    return score


def _ready_document_ids(db_session: Session, knowledge_base_id: int) -> list[int]:
    return list(
        db_session.exec(
            select(Document.id).where(
                Document.knowledge_base_id == knowledge_base_id, Document.status == DocumentStatus.ready.value
            )
        )
    )


def _dense_ranking(
    db_session: Session, knowledge_bases: list[KnowledgeBase], query: str, candidates: int
) -> dict[str, tuple[int, float]]:
    """chunk id -> (1-based rank, cosine similarity), best first, across the knowledge bases."""
    from app.core.ml import embed

    query_vector = embed([query])
    scored: list[tuple[float, str]] = []
    for knowledge_base in knowledge_bases:
        ready = _ready_document_ids(db_session, knowledge_base.id)
        if ready:
            scored.extend(vectors.nearest(knowledge_base, query_vector, ready, candidates))
    scored.sort(reverse=True)
    return {chunk_id: (rank, score) for rank, (score, chunk_id) in enumerate(scored[:candidates], start=1)}


def _lexical_ranking(
    db_session: Session, knowledge_bases: list[KnowledgeBase], query: str, candidates: int
) -> dict[str, tuple[int, float]]:
    """chunk id -> (1-based rank, BM25 score), best first, across the knowledge bases."""
    scored: list[tuple[float, str]] = []
    for knowledge_base in knowledge_bases:
        scored.extend(LEXICAL_INDEXES.get(db_session, knowledge_base.id).top(query, candidates))
    scored.sort(reverse=True)
    return {chunk_id: (rank, score) for rank, (score, chunk_id) in enumerate(scored[:candidates], start=1)}


def _passages(
    db_session: Session,
    knowledge_bases: list[KnowledgeBase],
    order: list[str],
    dense: dict[str, tuple[int, float]],
    lexical: dict[str, tuple[int, float]],
    scores: dict[str, float],
) -> list[Passage]:
    if not order:
        return []
    rows = db_session.exec(
        select(Chunk, Document)
        .join(Document, col(Document.id) == col(Chunk.document_id))
        .where(col(Chunk.id).in_(order), Document.status == DocumentStatus.ready.value)
    ).all()
    found = {chunk.id: (chunk, document) for chunk, document in rows}
    names = {knowledge_base.id: knowledge_base.name for knowledge_base in knowledge_bases}
    passages = []
    for chunk_id in order:
        if chunk_id not in found:
            continue  # deleted or re-ingesting since the ranking was read
        chunk, document = found[chunk_id]
        passages.append(
            Passage(
                chunk_id=chunk.id,
                knowledge_base_id=chunk.knowledge_base_id,
                knowledge_base_name=names[chunk.knowledge_base_id],
                document_id=document.id,
                document_name=document.filename,
                page=chunk.page,
                heading=chunk.heading,
                text=chunk.text,
                score=float(scores[chunk_id]),
                dense_score=dense[chunk_id][1] if chunk_id in dense else None,
                lexical_score=lexical[chunk_id][1] if chunk_id in lexical else None,
            )
        )
    return passages
