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
