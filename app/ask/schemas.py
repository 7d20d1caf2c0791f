from datetime import datetime

from pydantic import BaseModel, Field

from app.ask.tables import Conversation, Message
from app.generation.schemas import TokenUsage
from app.knowledge.schemas import Passage


class AskIn(BaseModel):
    question: str
    knowledge_base_ids: list[int] = Field(min_length=1, max_length=100)
    conversation_id: int | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    stream: bool = False


class SentenceGroundingOut(BaseModel):
    start: int = Field(description="first character of the sentence in the generator's answer")
    end: int
    text: str
    similarity: float = Field(description="highest cosine to a passage sentence or passage (0-1)")
    overlap: float = Field(description="share of the sentence's content words found in the passages")
    score: float
    supported: bool


class GroundingOut(BaseModel):
    """How far the answer is supported by its passages. The sentences' spans are over the
    generator's answer: the answer itself, or `replaced_answer` when it fell back."""

    support: float = Field(description="share of the answer's content words in supported sentences")
    flagged: bool
    sentence_threshold: float
    answer_threshold: float
    sentences: list[SentenceGroundingOut]
    fallback: str | None = Field(default=None, description='"extractive" when the answer was replaced')
    replaced_answer: str | None = None


class AnswerOut(BaseModel):
    conversation_id: int
    message_id: int
    answer: str
    status: str
    generator: str
    notices: list[str]
    passages: list[Passage]
    cited: list[int]
    grounding: GroundingOut | None = None
    # The generator's prompt and answer tokens (also in the stream's `done` event).
    usage: TokenUsage = Field(default_factory=TokenUsage)


class ConversationOut(BaseModel):
    id: int
    title: str
    knowledge_base_ids: list[int]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conversation: Conversation) -> "ConversationOut":
        return cls.model_validate(conversation, from_attributes=True)


class MessageOut(BaseModel):
    id: int
    role: str
    content: str
    passages: list[Passage]
    status: str
    generator: str
    rating: int | None
    feedback_comment: str | None
    grounding: GroundingOut | None = None
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> "MessageOut":
        return cls.model_validate(message, from_attributes=True)


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


class FeedbackIn(BaseModel):
    rating: int = Field(description="1 for thumbs up, -1 for thumbs down")
    comment: str = ""
