"""OpenAI-compatible API under /v1: models, chat completions (streaming or not), embeddings.

It is a FastAPI sub-application so that every error under /v1, including an
unknown route or a refused API key, comes in OpenAI's error shape
({"error": {"message", "type", "param", "code"}}), which the official client
turns into its exceptions. Callers authenticate with `Authorization: Bearer
sk-strata-...` (app.auth.deps). The models and what they cost live in the service.
"""

from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.auth.deps import CurrentUser, IdentifiedCaller
from app.core.errors import InvalidInput, StrataError, TooManyAttempts
from app.core.streaming import ClosingStreamingResponse
from app.generation.schemas import TokenUsage
from app.openai_compat import service
from app.openai_compat.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    EmbeddingList,
    EmbeddingRequest,
    ModelList,
    completion_id,
    now,
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def openai_error(status: int, message: str, *, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": _ERROR_TYPES.get(status, "api_error"), "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def _strata_error(exc: StrataError) -> JSONResponse:
    headers = {}
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    # OpenAI answers a request it cannot serve with 400, never 422.
    status = 400 if isinstance(exc, InvalidInput) else exc.status_code
    return openai_error(status, exc.message, headers=headers or None)


def _sse(data: str) -> str:
    return f"data: {data}\n\n"


async def _chunks(
    request: ChatCompletionRequest, first: str, stream: AsyncIterator[str], tokens: TokenUsage
) -> AsyncIterator[str]:
    """SSE events: the role, each piece, the finish, with `stream_options.include_usage` a last
    chunk with the token counts, then [DONE]. An error after the first event can no longer
    change the status code, so it goes out as an error event."""
    ident, created = completion_id(), now()
    include_usage = request.stream_options is not None and request.stream_options.include_usage

    def chunk(choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> str:
        body = ChatCompletionChunk(id=ident, created=created, model=request.model, choices=choices, usage=usage)
        # OpenAI's chunks carry "usage": null while counts are asked for, and no usage otherwise.
        return _sse(body.model_dump_json(exclude=None if include_usage else {"usage"}))

    def piece_chunk(delta: Delta, finish: str | None = None) -> str:
        return chunk([ChunkChoice(delta=delta, finish_reason=finish)])

    try:
        yield piece_chunk(Delta(role="assistant", content=""))
        if first:
            yield piece_chunk(Delta(content=first))
        async for piece in stream:
            yield piece_chunk(Delta(content=piece))
        yield piece_chunk(Delta(), "stop")
        if include_usage:
            yield chunk([], CompletionUsage.of(tokens))
    except StrataError as exc:
        yield _sse(_strata_error(exc).body.decode())
    finally:
        await stream.aclose()  # a client that leaves stops the answer and frees its slot
    yield _sse("[DONE]")


def build_openai_api() -> FastAPI:
    api = FastAPI(title="Strata OpenAI-compatible API", docs_url=None, redoc_url=None, openapi_url=None)

    @api.get("/models")
    async def list_models(user: CurrentUser) -> ModelList:
        return service.list_models(actor=user)

    @api.post("/chat/completions", response_model=None)
    async def chat_completions(request: ChatCompletionRequest, caller: IdentifiedCaller):
        tokens = TokenUsage()
        stream = service.chat_completion(
            actor=caller.user,
            request=request,
            caller=caller.identity,
            limit_per_minute=caller.limit_per_minute,
            usage=tokens,
        )
        if request.stream:
            # Started here, so that a refused or impossible request is its HTTP error, not a broken stream.
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                first = ""
            return ClosingStreamingResponse(_chunks(request, first, stream, tokens), media_type="text/event-stream")
        try:
            text = "".join([piece async for piece in stream])
        finally:
            await stream.aclose()
        return ChatCompletion(
            id=completion_id(),
            created=now(),
            model=request.model,
            choices=[Choice(message=AssistantMessage(content=text))],
            usage=CompletionUsage.of(tokens),
        )

    @api.post("/embeddings")
    async def embeddings(request: EmbeddingRequest, caller: IdentifiedCaller) -> EmbeddingList:
        return await service.embeddings(
            actor=caller.user, request=request, caller=caller.identity, limit_per_minute=caller.limit_per_minute
        )

    @api.exception_handler(StrataError)
    async def strata_error(_request: Request, exc: StrataError) -> JSONResponse:
        return _strata_error(exc)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"] if part != "body") or None
        return openai_error(400, f"Invalid request: {param or 'body'}: {error['msg']}", param=param)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return openai_error(exc.status_code, str(exc.detail), headers=exc.headers)

    @api.exception_handler(Exception)
    async def unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        # In OpenAI's shape, saying nothing of what broke: its text may name internal hosts.
        # Starlette raises the exception on after this answer, so the server logs it.
        return openai_error(500, "The server failed to answer this request; the error is logged.")

    return api
