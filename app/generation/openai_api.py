"""OpenAI-compatible API under /v1: models, chat completions (streaming or not), embeddings.

It is a FastAPI sub-application so that every error under /v1, including an
unknown route or a refused API key, comes in OpenAI's error shape
({"error": {"message", "type", "param", "code"}}), which the official client
turns into its exceptions. Callers authenticate with `Authorization: Bearer
sk-strata-...` (app.auth.deps.CurrentUser).

Chat models are entries of CHAT_MODELS: a name and a function from the request
and the caller to a stream of text pieces. Adding a model is adding an entry.
"""

import asyncio
import base64
from collections.abc import AsyncIterator, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.ask import service as ask_service
from app.auth.deps import CurrentUser
from app.auth.tables import User
from app.core import ml
from app.core.errors import InvalidInput, NotFound, StrataError
from app.generation import service
from app.generation.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    completion_id,
    now,
)
from models.manifest import EMBEDDER_NAME

CHAT_MODEL = "strata-chat"
# Answers from the knowledge bases the caller may read (`knowledge_base_ids` narrows them), citing sources.
RAG_MODEL = "strata-rag"
EMBEDDING_MODEL = EMBEDDER_NAME
MAX_EMBEDDING_INPUTS = 2048

ChatModel = Callable[[ChatCompletionRequest, User], AsyncIterator[str]]


def _plain_chat(request: ChatCompletionRequest, _user: User) -> AsyncIterator[str]:
    return service.stream_chat(
        messages=request.chat_messages(), max_tokens=request.token_limit, temperature=request.temperature
    )


def _knowledge_chat(request: ChatCompletionRequest, user: User) -> AsyncIterator[str]:
    return ask_service.answer_chat(
        user=user, messages=request.chat_messages(), knowledge_base_ids=request.knowledge_base_ids
    )


CHAT_MODELS: dict[str, ChatModel] = {CHAT_MODEL: _plain_chat, RAG_MODEL: _knowledge_chat}
_STARTED = now()

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def openai_error(status: int, message: str, *, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": _ERROR_TYPES.get(status, "api_error"), "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _sse(data: str) -> str:
    return f"data: {data}\n\n"


async def _chunks(request: ChatCompletionRequest, stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """SSE events: the role, each piece, the finish, [DONE]. An error after the first event can
    no longer change the status code, so it goes out as an error event."""
    ident, created = completion_id(), now()

    def chunk(delta: Delta, finish: str | None = None) -> str:
        choice = ChunkChoice(delta=delta, finish_reason=finish)
        return _sse(
            ChatCompletionChunk(id=ident, created=created, model=request.model, choices=[choice]).model_dump_json()
        )

    try:
        yield chunk(Delta(role="assistant", content=""))
        async for piece in stream:
            yield chunk(Delta(content=piece))
        yield chunk(Delta(), "stop")
    except StrataError as exc:
        yield _sse(openai_error(exc.status_code, exc.message).body.decode())
    finally:
        await stream.aclose()
    yield _sse("[DONE]")


def build_openai_api() -> FastAPI:
    api = FastAPI(title="Strata OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/models")
    async def list_models(_user: CurrentUser) -> ModelList:
        names = [*CHAT_MODELS, EMBEDDING_MODEL]
        return ModelList(data=[ModelCard(id=name, created=_STARTED) for name in names])

    @api.post("/chat/completions", response_model=None)
    async def chat_completions(request: ChatCompletionRequest, user: CurrentUser):
        model = CHAT_MODELS.get(request.model)
        if model is None:
            raise NotFound(f"The model '{request.model}' does not exist; chat models: {', '.join(CHAT_MODELS)}.")
        stream = model(request, user)
        if request.stream:
            # Start it here, so that a generator that cannot run is a 503, not a broken stream.
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                first = ""

            async def pieces() -> AsyncIterator[str]:
                try:
                    if first:
                        yield first
                    async for piece in stream:
                        yield piece
                finally:
                    await stream.aclose()

            return StreamingResponse(_chunks(request, pieces()), media_type="text/event-stream")
        try:
            text = "".join([piece async for piece in stream])
        finally:
            await stream.aclose()
        return ChatCompletion(
            id=completion_id(),
            created=now(),
            model=request.model,
            choices=[Choice(message=AssistantMessage(content=text))],
        )

    @api.post("/embeddings")
    async def embeddings(request: EmbeddingRequest, _user: CurrentUser) -> EmbeddingList:
        if request.model != EMBEDDING_MODEL:
            raise NotFound(f"The model '{request.model}' does not exist; the embedding model is {EMBEDDING_MODEL}.")
        texts = [request.input] if isinstance(request.input, str) else request.input
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise InvalidInput(f"At most {MAX_EMBEDDING_INPUTS} inputs per request.")
        vectors = await asyncio.to_thread(ml.embed, texts)
        tokens = sum(await asyncio.to_thread(ml.get_embedder().token_counts, texts))
        data = [
            Embedding(
                index=i,
                embedding=(
                    base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
                    if request.encoding_format == "base64"
                    else vector.tolist()
                ),
            )
            for i, vector in enumerate(vectors)
        ]
        return EmbeddingList(
            data=data, model=EMBEDDING_MODEL, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        )

    @api.exception_handler(StrataError)
    async def strata_error(_request: Request, exc: StrataError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        retry_after = getattr(exc, "retry_after_seconds", None)
        if retry_after is not None:
            headers = {"Retry-After": str(retry_after)}
        return openai_error(exc.status_code, exc.message, headers=headers)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"] if part != "body") or None
        return openai_error(400, f"Invalid request: {param}: {error['msg']}", param=param)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return openai_error(exc.status_code, str(exc.detail), headers=exc.headers)

    return api
