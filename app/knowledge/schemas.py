"""What retrieval hands to the rest of Strata: ranked passages with where they came from."""

from pydantic import BaseModel


class Passage(BaseModel):
    chunk_id: str
    knowledge_base_id: int
    knowledge_base_name: str
    document_id: int
    document_name: str
    page: int | None = None
    heading: str | None = None
    text: str
    score: float
    dense_score: float | None = None
    lexical_score: float | None = None
