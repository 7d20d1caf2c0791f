"""The OpenAI-compatible wire format of /v1, with Strata's bounds on what a request may ask."""

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.generation.schemas import ChatMessage, TokenUsage

# What one chat request may carry; the prompt itself is cut to STRATA_LLM_MAX_PROMPT_TOKENS
# (app.generation.service.fit_chat), these only bound the work of reading the request.
MAX_CHAT_MESSAGES = 200
MAX_CHAT_CHARS = 100_000
MAX_CONTENT_PARTS = 100

# ------------------------------------------------------------------ /v1 requests


class ChatCompletionMessage(BaseModel):
    """An OpenAI chat message: content is text or a list of parts, of which only text parts are read."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict] | None = None

    @field_validator("content")
    @classmethod
    def _few_parts(cls, content: str | list[dict] | None) -> str | list[dict] | None:
        if isinstance(content, list) and len(content) > MAX_CONTENT_PARTS:
            raise ValueError(f"a message holds at most {MAX_CONTENT_PARTS} parts")
        return content

    def as_chat_message(self) -> ChatMessage:
        if isinstance(self.content, list):
            text = "".join(
                part["text"]
                for part in self.content
                if part.get("type") == "text" and isinstance(part.get("text"), str)
            )
        else:
            text = self.content or ""
        return ChatMessage(role="system" if self.role == "developer" else self.role, content=text)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # A last chunk, before [DONE], with empty choices and the request's `usage`.
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send fields Strata does not use (top_p, user, ...): they are ignored.
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatCompletionMessage] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    # Either asks for at most this many new tokens; STRATA_LLM_MAX_TOKENS is the ceiling.
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    # For retrieval models (e.g. strata-rag): which of the caller's knowledge bases to search.
    knowledge_base_ids: list[int] | None = Field(default=None, max_length=100)

    @field_validator("messages")
    @classmethod
    def _not_too_long(cls, messages: list[ChatCompletionMessage]) -> list[ChatCompletionMessage]:
        total = sum(len(message.as_chat_message().content) for message in messages)
        if total > MAX_CHAT_CHARS:
            raise ValueError(f"the messages hold {total} characters; at most {MAX_CHAT_CHARS} are read")
        return messages

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def chat_messages(self) -> list[ChatMessage]:
        return [message.as_chat_message() for message in self.messages]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("input must hold at least one text")
        return value


# ----------------------------------------------------------------- /v1 responses


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "strata"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"] = "stop"


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, tokens: TokenUsage) -> "CompletionUsage | None":
        """None when the generator's server reported no counts."""
        if tokens.total_tokens is None:
            return None
        return cls(
            prompt_tokens=tokens.prompt_tokens,
            completion_tokens=tokens.completion_tokens,
            total_tokens=tokens.total_tokens,
        )


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    # None only when the generator's server reported no token counts.
    usage: CompletionUsage | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    # Only in the last chunk asked for with stream_options.include_usage (null in the others, as OpenAI sends).
    usage: CompletionUsage | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
