"""Generation's contract with the rest of Strata."""

from typing import Literal

from pydantic import BaseModel


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class GeneratorInfo(BaseModel):
    """Which generator answers: an OpenAI-compatible server, the built-in model, or extractive sentences."""

    kind: Literal["remote", "local", "extractive"]
    model: str


class TokenUsage(BaseModel):
    """The tokens one generation read and wrote, filled in while it runs: the built-in model's
    tokenizer counts, or what the OpenAI-compatible server reports. None while unknown (a
    server that reports none); the extractive answer runs no model and counts 0."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens
