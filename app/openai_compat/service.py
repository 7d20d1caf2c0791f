"""The OpenAI-compatible API's business: its models, chat completions and embeddings.

Chat models are entries of CHAT_MODELS: a name and a function from the request and the
caller to a stream of text pieces. Adding a model is adding an entry. A completion takes a
request from the caller's rate limit and holds one of the user's answer slots while it is
written (app.core.ratelimit); embeddings are predictions of the registered embedder (the
predict service: cached, routed to its production or canary version, rate limited). Both are
recorded in the usage log (app.usage.recording), with the tokens read and written."""

import asyncio
import base64
from collections.abc import AsyncIterator, Callable

import numpy as np
import structlog

from app.ask import service as ask_service
from app.auth.tables import User
from app.core import ml, ratelimit
from app.core.errors import NotFound, ServiceUnavailable, StrataError
from app.core.roles import Role, require_role
from app.generation import service as generation
from app.generation.schemas import TokenUsage
from app.openai_compat.schemas import (
    ChatCompletionRequest,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    now,
)
from app.predict import service as predict_service
from app.usage import recording as usage_recording
from models.manifest import EMBEDDER_NAME

log = structlog.get_logger("strata.openai")

CHAT_MODEL = "strata-chat"
# Answers from the knowledge bases the caller may read (`knowledge_base_ids` narrows them), citing sources.
RAG_MODEL = "strata-rag"
EMBEDDING_MODEL = EMBEDDER_NAME

# (request, actor, token counts to fill in) -> the answer's text pieces.
ChatModel = Callable[[ChatCompletionRequest, User, TokenUsage], AsyncIterator[str]]


def _plain_chat(request: ChatCompletionRequest, _actor: User, tokens: TokenUsage) -> AsyncIterator[str]:
    return generation.stream_chat(
        messages=request.chat_messages(), max_tokens=request.token_limit, temperature=request.temperature, usage=tokens
    )


def _knowledge_chat(request: ChatCompletionRequest, actor: User, tokens: TokenUsage) -> AsyncIterator[str]:
    return ask_service.answer_chat(
        actor=actor, messages=request.chat_messages(), knowledge_base_ids=request.knowledge_base_ids, usage=tokens
    )


CHAT_MODELS: dict[str, ChatModel] = {CHAT_MODEL: _plain_chat, RAG_MODEL: _knowledge_chat}
_STARTED = now()


def list_models(*, actor: User) -> ModelList:
    require_role(actor, Role.viewer)
    return ModelList(data=[ModelCard(id=name, created=_STARTED) for name in [*CHAT_MODELS, EMBEDDING_MODEL]])


async def chat_completion(
    *,
    actor: User,
    request: ChatCompletionRequest,
    caller: str | None = None,
    limit_per_minute: int | None = None,
    usage: TokenUsage | None = None,
) -> AsyncIterator[str]:
    """The answer's text pieces, its tokens counted into `usage` as they go. `caller` and
    `limit_per_minute` are an API key's rate limit (default: the user's). Raises
    TooManyAttempts, NotFound, InvalidInput, ServiceUnavailable (whose message names no
    server: what it was is logged)."""
    require_role(actor, Role.viewer)
    tokens = usage if usage is not None else TokenUsage()
    with usage_recording.measure(actor=actor, caller=caller, endpoint="chat", model=request.model, tokens=tokens):
        await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
        model = CHAT_MODELS.get(request.model)
        if model is None:
            raise NotFound(f"The model '{request.model}' does not exist; chat models: {', '.join(CHAT_MODELS)}.")
        async with ratelimit.stream_slot(actor.id):
            stream = model(request, actor, tokens)
            try:
                async for piece in stream:
                    yield piece
            except StrataError:
                raise
            except Exception as exc:
                log.exception("openai.chat_failed", model=request.model)
                raise ServiceUnavailable(generation.UNREACHABLE) from exc
            finally:
                await stream.aclose()


async def embeddings(
    *,
    actor: User,
    request: EmbeddingRequest,
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> EmbeddingList:
    """Vectors from the embedder's routed version, within the predict service's bounds on
    inputs (how many, how long); recorded in the usage log as embeddings, not as a prediction.
    Raises TooManyAttempts, NotFound, InvalidInput."""
    counted = TokenUsage()
    with usage_recording.measure(
        actor=actor, caller=caller, endpoint="embeddings", model=request.model, tokens=counted
    ):
        if request.model != EMBEDDING_MODEL:
            raise NotFound(f"The model '{request.model}' does not exist; the embedding model is {EMBEDDING_MODEL}.")
        texts = [request.input] if isinstance(request.input, str) else request.input
        predictions = await predict_service.predict(
            actor=actor,
            model_name=EMBEDDING_MODEL,
            inputs=texts,
            caller=caller,
            limit_per_minute=limit_per_minute,
            record_usage=False,
        )
        tokens = sum(await asyncio.to_thread(ml.get_embedder().token_counts, texts))
        counted.prompt_tokens = tokens
    data = [
        Embedding(
            index=result.input_index,
            embedding=(
                base64.b64encode(np.asarray(result.embedding, dtype="<f4").tobytes()).decode()
                if request.encoding_format == "base64"
                else result.embedding
            ),
        )
        for result in predictions.results
    ]
    return EmbeddingList(
        data=data, model=EMBEDDING_MODEL, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
    )
