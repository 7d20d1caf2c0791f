"""The Chroma side of a knowledge base: one collection each, holding one vector per chunk
under the chunk's id with its document id (and page) as metadata. Vectors come from
Strata's embedder; Chroma's default embedding function would download a model.

Every Chroma failure becomes ServiceUnavailable with a message that names no address:
the reason goes to the log, where an operator reads it, not to the user."""

from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from app.core.clients import get_chroma
from app.core.errors import ServiceUnavailable
from app.knowledge.tables import Chunk, KnowledgeBase

log = structlog.get_logger("strata.knowledge")


@contextmanager
def _chroma(doing: str, message: str) -> Iterator[None]:
    try:
        yield
    except ServiceUnavailable:
        raise
    except Exception as exc:
        log.warning("chroma.failed", doing=doing, error=str(exc))
        raise ServiceUnavailable(message) from exc


def collection(knowledge_base: KnowledgeBase):
    with _chroma("open collection", "The vector store (Chroma) is unreachable; try again shortly."):
        return get_chroma().get_or_create_collection(
            knowledge_base.collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )


def delete_collection(knowledge_base: KnowledgeBase) -> None:
    try:
        get_chroma().delete_collection(knowledge_base.collection)
    except Exception as exc:
        if "does not exist" in str(exc):
            return
        log.warning("chroma.failed", doing="delete collection", error=str(exc))
        raise ServiceUnavailable("Could not delete the vectors in the vector store (Chroma); try again.") from exc


def delete_document_vectors(target, document_id: int) -> None:
    """`target` is a knowledge base's collection(): ingestion holds on to it, so that vectors
    written after its knowledge base was deleted fail instead of re-creating the collection."""
    with _chroma("delete vectors", "Could not delete the vectors in the vector store (Chroma); try again."):
        target.delete(where={"document_id": document_id})


def forget_document_vectors(target, document_id: int) -> None:
    """Best effort: the whole collection may have gone with its knowledge base."""
    try:
        delete_document_vectors(target, document_id)
    except ServiceUnavailable:  # vectors of a deleted document are never searched anyway
        log.warning("document.vectors_left", document_id=document_id)


def add_chunks(target, chunks: list[Chunk], vectors) -> None:
    with _chroma("add vectors", "The vector store (Chroma) failed to store the passages; try again shortly."):
        target.upsert(
            ids=[chunk.id for chunk in chunks], embeddings=vectors, metadatas=[_metadata(chunk) for chunk in chunks]
        )


def nearest(
    knowledge_base: KnowledgeBase, query_vector, document_ids: list[int], count: int
) -> list[tuple[float, str]]:
    """(cosine similarity, chunk id) of the chunks of these documents nearest the query, best first."""
    target = collection(knowledge_base)
    with _chroma("search", "The vector store (Chroma) failed to search; try again shortly."):
        result = target.query(
            query_embeddings=query_vector,
            n_results=count,
            where={"document_id": {"$in": document_ids}},
            include=["distances"],
        )
    return [
        (1.0 - distance, chunk_id) for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
    ]


def _metadata(chunk: Chunk) -> dict:
    metadata = {"document_id": chunk.document_id, "ordinal": chunk.ordinal}
    if chunk.page is not None:
        metadata["page"] = chunk.page
    return metadata
