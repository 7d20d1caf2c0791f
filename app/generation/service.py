"""Answer generation: grounded answers over passages, and plain chat.

Generators, in order of preference:

1. remote: an OpenAI-compatible server (STRATA_LLM_BASE_URL: vLLM, TGI, Ollama,
   llama.cpp, or another Strata), streamed over SSE;
2. local: the built-in SmolLM2-135M-Instruct (models.generator, onnxruntime),
   decoding in its own thread per stream;
3. extractive: the passages' own best sentences, cited (answers only).

A generator that cannot start (server unreachable, model not built) before its
first piece hands over to the next one. Closing a stream stops its generation:
the remote request is closed, the local decode thread stops within one token.

Every request is bounded: at most STRATA_LLM_MAX_TOKENS new tokens whatever the caller
asks, and a prompt of about STRATA_LLM_MAX_PROMPT_TOKENS (older turns are left out first).
What fails says only that the answer service is unreachable: the server's URL, host and
its own error text go to the log, never to the asker.
"""

import asyncio
import itertools
import json
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import structlog

from app.core import ml
from app.core.errors import InvalidInput, ServiceUnavailable
from app.core.settings import get_settings
from app.generation.schemas import ChatMessage, GeneratorInfo, TokenUsage
from app.knowledge.schemas import Passage
from models.generator import DecodeOptions, StopSignal
from models.manifest import GENERATOR_NAME, MANIFEST_FILENAME

log = structlog.get_logger("strata.generation")

GROUNDED_SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages the user gives you. "
    "After each fact, cite the passage it comes from in square brackets, like [1]. "
    "If the passages do not contain the answer, say that the documents do not say."
)
EXTRACTIVE_PREFIX = "Extractive answer (no language model is available; these are sentences quoted from the passages): "
EXTRACTIVE_SENTENCES = 3
HISTORY_TURNS = 4
CHARS_PER_TOKEN = 4  # rough budget for English text; the prompt is trimmed by characters
UNREACHABLE = "The answer service is unreachable; try again shortly."
MIN_PASSAGE_CHARS = 400
_CITATION = re.compile(r"\[\d+\]")
ATTRIBUTION_MIN_SHARED_WORDS = 3
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STOP_WORDS = frozenset(
    "a an and are as at be by can did do does for from had has have how i in is it its of on or the this to was "
    "were what when where which who why will with you your".split()
)
_thread_numbers = itertools.count(1)


class GeneratorUnavailable(ServiceUnavailable):
    """This generator cannot run (server unreachable, model not built); the next one may.
    `detail` (URLs, hosts, the server's own words) is logged; the message is what users see."""

    def __init__(self, detail: str, message: str = UNREACHABLE) -> None:
        super().__init__(message)
        self.detail = detail


# ------------------------------------------------------------------ selection


def _local_model_built() -> bool:
    return (get_settings().resolved_models_dir / GENERATOR_NAME / MANIFEST_FILENAME).is_file()


def describe_generator() -> GeneratorInfo:
    """The generator answers will come from, by configuration (cheap: loads nothing)."""
    settings = get_settings()
    if settings.llm_base_url:
        # Askers see this name (and answers keep it): never the server's address.
        return GeneratorInfo(kind="remote", model=settings.llm_model or "remote model")
    if _local_model_built():
        return GeneratorInfo(kind="local", model=GENERATOR_NAME)
    return GeneratorInfo(kind="extractive", model="extractive")


@dataclass(frozen=True)
class _Request:
    messages: list[ChatMessage]
    max_tokens: int
    temperature: float
    # Filled in by the generator that answers.
    usage: TokenUsage


def _generators() -> list[Callable[[_Request], AsyncIterator[str]]]:
    candidates = []
    if get_settings().llm_base_url:
        candidates.append(_remote_stream)
    if _local_model_built():
        candidates.append(_local_stream)
    return candidates


async def _first_that_runs(
    candidates: list[Callable[[_Request], AsyncIterator[str]]], request: _Request
) -> AsyncIterator[str]:
    """Stream from the first candidate that produces a first piece."""
    for make in candidates:
        # What a generator that could not start counted is not this answer's.
        request.usage.prompt_tokens = request.usage.completion_tokens = None
        stream = make(request)
        try:
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                return
            except GeneratorUnavailable as exc:
                log.warning("generation.unavailable", generator=make.__name__, reason=exc.detail)
                continue
            yield first
            try:
                async for piece in stream:
                    yield piece
            except GeneratorUnavailable as exc:
                log.warning("generation.failed", generator=make.__name__, reason=exc.detail)
                raise
            return
        finally:
            await stream.aclose()
    message = "No generator can run: set STRATA_LLM_BASE_URL or build the models (`strata models build`)."
    raise GeneratorUnavailable(message, message)


def _token_limit(max_tokens: int | None) -> int:
    """What the caller asks for, never more than STRATA_LLM_MAX_TOKENS."""
    ceiling = get_settings().llm_max_tokens
    return max(1, min(max_tokens or ceiling, ceiling))


def _prompt_chars() -> int:
    return get_settings().llm_max_prompt_tokens * CHARS_PER_TOKEN


def _recent_turns(turns: list[ChatMessage], room: int) -> list[ChatMessage]:
    """The latest turns that fit in `room` characters, oldest left out first."""
    kept: list[ChatMessage] = []
    for turn in reversed(turns):
        room -= len(turn.content)
        if room < 0:
            break
        kept.append(turn)
    return kept[::-1]


def fit_chat(messages: list[ChatMessage]) -> list[ChatMessage]:
    """The system messages and the last message whole, then as many earlier turns as the prompt
    budget leaves room for. InvalidInput when the first two alone are over it."""
    *earlier, last = messages
    system = [m for m in earlier if m.role == "system"]
    room = _prompt_chars() - len(last.content) - sum(len(m.content) for m in system)
    if room < 0:
        raise InvalidInput(
            f"The instructions and the last message are too long: together at most {_prompt_chars()} characters "
            f"(about {get_settings().llm_max_prompt_tokens} tokens) fit the model's prompt."
        )
    return [*system, *_recent_turns([m for m in earlier if m.role != "system"], room), last]


# ------------------------------------------------------------------ public API


async def stream_answer(
    *,
    question: str,
    passages: list[Passage],
    history: list[ChatMessage],
    max_tokens: int | None = None,
    usage: TokenUsage | None = None,
) -> AsyncIterator[str]:
    """A grounded answer to ``question`` from ``passages`` (cited [1]..[n]), as text pieces.
    The tokens it reads and writes are counted into ``usage`` as it goes."""
    settings = get_settings()
    request = _Request(
        messages=grounded_messages(question=question, passages=passages, history=history),
        max_tokens=_token_limit(max_tokens),
        temperature=settings.llm_temperature,
        usage=usage if usage is not None else TokenUsage(),
    )
    stream = _first_that_runs([*_generators(), _extractive_stream_for(question, passages)], request)
    answer = ""
    try:
        async for piece in stream:
            answer += piece
            yield piece
    finally:
        await stream.aclose()
    if citations := attribution(answer, passages):
        yield citations


async def stream_chat(
    *,
    messages: list[ChatMessage],
    max_tokens: int | None = None,
    temperature: float | None = None,
    usage: TokenUsage | None = None,
) -> AsyncIterator[str]:
    """Plain chat (no passages), as text pieces, within the prompt budget (fit_chat), its
    tokens counted into ``usage`` as it goes. ServiceUnavailable when no generator can run."""
    if not messages or messages[-1].role != "user":
        raise InvalidInput("The last message must be the user's.")
    settings = get_settings()
    request = _Request(
        messages=fit_chat(messages),
        max_tokens=_token_limit(max_tokens),
        temperature=settings.llm_temperature if temperature is None else temperature,
        usage=usage if usage is not None else TokenUsage(),
    )
    stream = _first_that_runs(_generators(), request)
    try:
        async for piece in stream:
            yield piece
    finally:
        await stream.aclose()


# ------------------------------------------------------------------ prompt


def _passage_source(passage: Passage) -> str:
    where = passage.document_name
    if passage.page is not None:
        where += f", page {passage.page}"
    return where


def grounded_messages(*, question: str, passages: list[Passage], history: list[ChatMessage]) -> list[ChatMessage]:
    """System instructions, the last few turns, then the passages numbered [1]..[n] with the question.

    Passages go in whole, best first, while they fit the prompt budget; the rest are
    left out (their numbers stay those the asker sees). Only a first passage longer
    than the whole budget is cut.
    """
    budget = _prompt_chars()
    # Earlier turns take at most half of what the question leaves; passages get the rest.
    room = budget - len(GROUNDED_SYSTEM_PROMPT) - len(question) - 100
    turns = _recent_turns([m for m in history if m.role in ("user", "assistant")][-HISTORY_TURNS:], room // 2)
    room -= sum(len(m.content) for m in turns)
    blocks: list[str] = []
    for number, passage in enumerate(passages, 1):
        block = f"[{number}] ({_passage_source(passage)}) {' '.join(passage.text.split())}"
        if len(block) > room:
            if blocks:
                break
            block = block[: max(room, MIN_PASSAGE_CHARS)].rsplit(" ", 1)[0] + " …"
        blocks.append(block)
        room -= len(block) + 2
    user = "Passages:\n" + "\n\n".join(blocks) + f"\n\nQuestion: {question}"
    return [ChatMessage(role="system", content=GROUNDED_SYSTEM_PROMPT), *turns, ChatMessage(role="user", content=user)]


# ------------------------------------------------------------------ remote


async def _remote_stream(request: _Request) -> AsyncIterator[str]:
    settings = get_settings()
    url = settings.llm_base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {settings.llm_api_key}"} if settings.llm_api_key else {}
    body = {
        "model": settings.llm_model,
        "messages": [m.model_dump() for m in request.messages],
        "stream": True,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        # The server's own token counts come in a last chunk (OpenAI's convention).
        "stream_options": {"include_usage": True},
    }
    timeout = httpx.Timeout(settings.llm_timeout_seconds, connect=5.0)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            async with client.stream("POST", url, json=body, headers=headers) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode(errors="replace")[:300]
                    raise GeneratorUnavailable(f"{url} answered {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # SSE comments, event names and blank separators
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                    except ValueError as exc:
                        raise GeneratorUnavailable(f"{url} sent a line that is not JSON: {data[:300]}") from exc
                    if "error" in chunk:  # the server failed after it had started answering
                        raise GeneratorUnavailable(f"{url} failed: {chunk['error']}")
                    if counted := chunk.get("usage"):
                        request.usage.prompt_tokens = counted.get("prompt_tokens")
                        request.usage.completion_tokens = counted.get("completion_tokens")
                    for choice in chunk.get("choices", []):
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            yield piece
    except httpx.HTTPError as exc:
        raise GeneratorUnavailable(f"cannot reach the language model server {url}: {exc!r}") from exc


# ------------------------------------------------------------------ local


_END = object()


async def _local_stream(request: _Request) -> AsyncIterator[str]:
    """Decode in a thread of its own; pieces cross to the event loop through a queue.

    Closing this iterator sets the stop event and waits for the thread, which
    checks it before every token.
    """
    try:
        generator = await asyncio.to_thread(ml.get_generator)
    except Exception as exc:
        raise GeneratorUnavailable(f"the built-in model cannot load: {type(exc).__name__}: {exc}") from exc
    settings = get_settings()
    prompt = [(m.role, m.content) for m in request.messages]
    prompt_ids = await asyncio.to_thread(generator.encode_chat, prompt)
    request.usage.prompt_tokens, request.usage.completion_tokens = len(prompt_ids), 0
    # The decode thread appends each token it generates.
    generated: list[int] = []
    options = DecodeOptions(
        max_new_tokens=request.max_tokens,
        temperature=request.temperature,
        repetition_penalty=settings.llm_repetition_penalty,
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = StopSignal()

    def hand_over(item: object) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def decode() -> None:
        try:
            for piece in generator.stream(prompt_ids, options, stop, generated=generated):
                hand_over(piece)
        except Exception as exc:  # surfaced to the consumer, not lost in a thread
            hand_over(exc)
        finally:
            hand_over(_END)

    thread = threading.Thread(target=decode, name=f"strata-generate-{next(_thread_numbers)}", daemon=True)
    thread.start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, Exception):
                raise GeneratorUnavailable(f"the built-in model failed: {type(item).__name__}: {item}") from item
            request.usage.completion_tokens = len(generated)
            yield item
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)
        request.usage.completion_tokens = len(generated)


# ------------------------------------------------------------------ extractive


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS and len(w) > 1}


def extractive_answer(question: str, passages: list[Passage], *, prefix: str = EXTRACTIVE_PREFIX) -> str:
    """The sentences of the passages that share the most words with the question, each cited [n],
    after `prefix` (which says why the answer is extractive).

    When no sentence shares a word with the question, it says so and quotes the top passage's opening.
    """
    if not passages:
        return prefix + "there are no passages to quote."
    wanted = _words(question)
    scored = []
    for number, passage in enumerate(passages, 1):
        for position, sentence in enumerate(_SENTENCE_END.split(" ".join(passage.text.split()))):
            if overlap := len(wanted & _words(sentence)):
                # Ties go to the better-ranked passage, then to the earlier sentence.
                scored.append((-overlap, number, position, sentence))
    if not scored:
        opening = _SENTENCE_END.split(" ".join(passages[0].text.split()))[0]
        return prefix + f"no passage mentions what you asked; the best match begins: {opening} [1]"
    # Sentences sharing less than half as many words as the best one are off the point.
    top = -min(scored)[0]
    relevant = [item for item in sorted(scored)[:EXTRACTIVE_SENTENCES] if -item[0] * 2 > top]
    best = sorted(relevant, key=lambda item: (item[1], item[2]))
    return prefix + " ".join(f"{sentence} [{number}]" for _, number, _, sentence in best)


def attribution(answer: str, passages: list[Passage]) -> str:
    """Citations for an answer that cites nothing (small models often forget): the passages
    sharing the most words with it, at least ATTRIBUTION_MIN_SHARED_WORDS, best two."""
    if _CITATION.search(answer):
        return ""
    words = _words(answer)
    shared = [(len(words & _words(p.text)), n) for n, p in enumerate(passages, 1)]
    best = sorted((n for count, n in sorted(shared, reverse=True)[:2] if count >= ATTRIBUTION_MIN_SHARED_WORDS))
    return " " + "".join(f"[{n}]" for n in best) if best else ""


def _extractive_stream_for(question: str, passages: list[Passage]) -> Callable[[_Request], AsyncIterator[str]]:
    async def _extractive_stream(request: _Request) -> AsyncIterator[str]:
        answer = await asyncio.to_thread(extractive_answer, question, passages)
        request.usage.prompt_tokens = request.usage.completion_tokens = 0  # no model ran
        yield answer

    return _extractive_stream
