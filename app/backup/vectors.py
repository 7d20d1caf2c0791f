"""The Chroma part of a backup: each collection's ids, embeddings, documents and metadata,
read page by page through the client. Rebuilding from the documents instead would run the
embedder over every chunk again (minutes to hours on CPU); the vectors are a few kB each."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from app.core.clients import get_chroma

PAGE = 500
INCLUDE = ["embeddings", "documents", "metadatas"]


def collection_names() -> list[str]:
    return sorted(collection.name for collection in get_chroma().list_collections())


def _space(collection) -> str:
    configuration = collection.configuration or {}
    hnsw = configuration.get("hnsw") or {}
    return hnsw.get("space") or "l2"


def export_collection(name: str, out: IO[str]) -> int:
    """First line: the collection's name, metadata and distance; then one line per vector."""
    collection = get_chroma().get_collection(name, embedding_function=None)
    out.write(json.dumps({"name": name, "metadata": collection.metadata, "space": _space(collection)}) + "\n")
    written = 0
    while True:
        page = collection.get(limit=PAGE, offset=written, include=INCLUDE)
        if not page["ids"]:
            return written
        for index, vector_id in enumerate(page["ids"]):
            document = page["documents"][index] if page["documents"] is not None else None
            metadata = page["metadatas"][index] if page["metadatas"] is not None else None
            row = {"id": vector_id, "embedding": [float(x) for x in page["embeddings"][index]]}
            row.update(document=document, metadata=metadata)
            out.write(json.dumps(row) + "\n")
        written += len(page["ids"])


def _pages(lines: Iterator[str]) -> Iterator[list[dict]]:
    page: list[dict] = []
    for line in lines:
        page.append(json.loads(line))
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def import_collection(path: Path) -> tuple[str, int]:
    with path.open(encoding="utf-8") as lines:
        header = json.loads(next(lines))
        collection = get_chroma().create_collection(
            header["name"],
            metadata=header["metadata"] or None,
            configuration={"hnsw": {"space": header["space"]}},
            embedding_function=None,
        )
        count = 0
        for page in _pages(lines):
            # upsert: paging a collection that changed while it was exported can list an id twice.
            collection.upsert(
                ids=[row["id"] for row in page],
                embeddings=[row["embedding"] for row in page],
                documents=[row["document"] for row in page] if page[0]["document"] is not None else None,
                metadatas=[row["metadata"] for row in page] if page[0]["metadata"] is not None else None,
            )
            count += len(page)
    return header["name"], count


def delete_collection(name: str) -> None:
    get_chroma().delete_collection(name)
