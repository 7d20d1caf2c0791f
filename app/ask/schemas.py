from datetime import datetime

from pydantic import BaseModel, Field

from app.ask.tables import Conversation, Message
from app.knowledge.schemas import Passage


class AskIn(BaseModel):
    question: str
    knowledge_base_ids: list[int] = Field(min_length=1, max_length=100)
    conversation_id: int | None = None
    top_k: int | None = Field(default=None, ge=1, le=50)
    stream: bool = False


class AnswerOut(BaseModel):
    conversation_id: int
    message_id: int
    answer: str
    status: str
    generator: str
    notices: list[str]
    passages: list[Passage]
    cited: list[int]


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
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> "MessageOut":
        return cls.model_validate(message, from_attributes=True)


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


class FeedbackIn(BaseModel):
    rating: int = Field(description="1 for thumbs up, -1 for thumbs down")
    comment: str = ""
