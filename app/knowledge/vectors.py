"""The Chroma side of a knowledge base: one collection each, holding one vector per chunk
under the chunk's id with its document id (and page) as metadata. Vectors come from
Strata's embedder; Chroma's default embedding function would download a model."""

import structlog

from app.core.clients import get_chroma
from app.core.errors import ServiceUnavailable
from app.knowledge.tables import Chunk, KnowledgeBase

log = structlog.get_logger("strata.knowledge")


def collection(knowledge_base: KnowledgeBase):
    try:
        return get_chroma().get_or_create_collection(
            knowledge_base.collection, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
    except Exception as exc:
        # The reason (with Chroma's address) goes to the log, not to the user.
        log.warning("chroma.unreachable", error=str(exc))
        raise ServiceUnavailable("The vector store (Chroma) is unreachable; try again shortly.") from exc


def delete_collection(knowledge_base: KnowledgeBase) -> None:
    try:
        get_chroma().delete_collection(knowledge_base.collection)
    except Exception as exc:
        if "does not exist" not in str(exc):
            log.warning("chroma.delete_failed", collection=knowledge_base.collection, error=str(exc))
            raise ServiceUnavailable("Could not delete the vectors in the vector store (Chroma); try again.") from exc


def delete_document_vectors(target, document_id: int) -> None:
    """`target` is a knowledge base's collection(): ingestion holds on to it, so that vectors
    written after its knowledge base was deleted fail instead of re-creating the collection."""
    target.delete(where={"document_id": document_id})


def forget_document_vectors(target, document_id: int) -> None:
    """Best effort: the whole collection may have gone with its knowledge base."""
    try:
        delete_document_vectors(target, document_id)
    except Exception:  # noqa: BLE001 - vectors of a deleted document are never searched anyway
        log.warning("document.vectors_left", document_id=document_id)


def add_chunks(target, chunks: list[Chunk], vectors) -> None:
    target.upsert(
        ids=[chunk.id for chunk in chunks], embeddings=vectors, metadatas=[_metadata(chunk) for chunk in chunks]
    )


def nearest(
    knowledge_base: KnowledgeBase, query_vector, document_ids: list[int], count: int
) -> list[tuple[float, str]]:
    """(cosine similarity, chunk id) of the chunks of these documents nearest the query, best first."""
    try:
        result = collection(knowledge_base).query(
            query_embeddings=query_vector,
            n_results=count,
            where={"document_id": {"$in": document_ids}},
            include=["distances"],
        )
    except ServiceUnavailable:
        raise
    except Exception as exc:
        log.warning("chroma.search_failed", collection=knowledge_base.collection, error=str(exc))
        raise ServiceUnavailable("The vector store (Chroma) failed to search; try again shortly.") from exc
    return [
        (1.0 - distance, chunk_id) for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
    ]


def _metadata(chunk: Chunk) -> dict:
    metadata = {"document_id": chunk.document_id, "ordinal": chunk.ordinal}
    if chunk.page is not None:
        metadata["page"] = chunk.page
    return metadata
