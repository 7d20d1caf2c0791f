"""Asking: a question goes to retrieval over the knowledge bases the user may read, then to
the generator; the steps, the passages and the answer stream out as events. Conversations
and feedback are kept per user.

An ask costs a request of the caller's rate limit and holds one of the user's answer slots
(app.core.ratelimit) while it is written, whether the Ask page or the API asks. What fails
in a way the asker cannot act on (a database or server that cannot be reached) is logged
and shown only as the answer service being unreachable. Every ask goes into the usage log
(app.usage.recording) with the generator's tokens, which its `done` event reports too."""

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from sqlmodel import Session, col, delete, select

from app.ask import grounding
from app.ask.tables import AnswerStatus, Conversation, Message
from app.auth.tables import User
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import InvalidInput, NotFound, ServiceUnavailable, StrataError
from app.core.roles import Role, require_role
from app.core.time import utcnow
from app.generation import service as generation
from app.generation.schemas import ChatMessage, GeneratorInfo, TokenUsage
from app.knowledge import service as knowledge
from app.knowledge.schemas import Passage
from app.usage import recording as usage_recording

log = structlog.get_logger("strata.ask")

MAX_QUESTION_CHARS = 4000
HISTORY_MESSAGES = 6
CITATION = re.compile(r"\[(\d+)\]")
NOTHING_FOUND = "I found nothing about this in the selected knowledge bases, so I cannot answer from them."


@dataclass
class AskEvent:
    """One step of an answer as it happens: conversation, notice, step, passages, token, grounding,
    done or error. `grounding` comes after the last token of a complete answer: its sentences'
    support and, when the answer fell back to the passages' own sentences, the `replacement`."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)


def cited_numbers(answer: str, passage_count: int) -> list[int]:
    """The passage numbers an answer cites, in order of first citation, ignoring numbers with no passage."""
    seen: list[int] = []
    for match in CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= passage_count and number not in seen:
            seen.append(number)
    return seen


def list_conversations(*, db_session: Session, actor: User, limit: int = 100) -> list[Conversation]:
    """The actor's own conversations, the latest first."""
    statement = (
        select(Conversation)
        .where(Conversation.user_id == actor.id)
        .order_by(col(Conversation.updated_at).desc())
        .limit(max(1, min(limit, 100)))
    )
    return list(db_session.exec(statement))


def get_conversation(*, db_session: Session, actor: User, conversation_id: int) -> Conversation:
    conversation = db_session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != actor.id:
        raise NotFound(f"Conversation {conversation_id} does not exist.")
    return conversation


def conversation_messages(*, db_session: Session, actor: User, conversation_id: int) -> list[Message]:
    get_conversation(db_session=db_session, actor=actor, conversation_id=conversation_id)
    statement = select(Message).where(Message.conversation_id == conversation_id).order_by(col(Message.id))
    return list(db_session.exec(statement))


def delete_conversation(*, db_session: Session, actor: User, conversation_id: int) -> None:
    conversation = get_conversation(db_session=db_session, actor=actor, conversation_id=conversation_id)
    db_session.exec(delete(Message).where(col(Message.conversation_id) == conversation_id))
    db_session.delete(conversation)


def rate_answer(*, db_session: Session, actor: User, message_id: int, rating: int, comment: str = "") -> Message:
    if rating not in (1, -1):
        raise InvalidInput("Rate an answer with 1 (thumbs up) or -1 (thumbs down).")
    message = db_session.get(Message, message_id)
    if message is None or message.role != "assistant":
        raise NotFound(f"Answer {message_id} does not exist.")
    get_conversation(db_session=db_session, actor=actor, conversation_id=message.conversation_id)
    message.rating = rating
    message.feedback_comment = comment.strip()[:2000] or None
    message.rated_at = utcnow()
    db_session.add(message)
    return message


def readable_names(*, db_session: Session, actor: User, knowledge_base_ids: list[int]) -> dict[int, str]:
    """The chosen knowledge bases by id and name; refuses any the user may not read, without
    telling whether it exists."""
    if not knowledge_base_ids:
        raise InvalidInput("Choose at least one knowledge base to ask.")
    readable = {kb.id: kb.name for kb in knowledge.readable_knowledge_bases(db_session=db_session, actor=actor)}
    for kb_id in knowledge_base_ids:
        if kb_id not in readable:
            raise NotFound(f"Knowledge base {kb_id} does not exist or you may not read it.")
    return {kb_id: readable[kb_id] for kb_id in knowledge_base_ids}


def record_question(
    *, db_session: Session, actor: User, conversation_id: int | None, question: str, knowledge_base_ids: list[int]
) -> tuple[int, list[ChatMessage]]:
    """Stores the question (in a new conversation unless one is given) and returns the
    conversation id and the messages before it, for follow-ups."""
    if conversation_id is None:
        conversation = Conversation(user_id=actor.id, title=question[:120], knowledge_base_ids=knowledge_base_ids)
        history: list[ChatMessage] = []
    else:
        conversation = get_conversation(db_session=db_session, actor=actor, conversation_id=conversation_id)
        earlier = conversation_messages(db_session=db_session, actor=actor, conversation_id=conversation_id)
        history = [
            ChatMessage(role=message.role, content=message.content)
            for message in earlier[-HISTORY_MESSAGES:]
            if message.content
        ]
        conversation.knowledge_base_ids = knowledge_base_ids
        conversation.updated_at = utcnow()
    db_session.add(conversation)
    db_session.flush()
    db_session.add(Message(conversation_id=conversation.id, role="user", content=question))
    return conversation.id, history


def record_answer(
    *,
    db_session: Session,
    conversation_id: int,
    content: str,
    passages: list[Passage],
    status: AnswerStatus,
    generator: str,
    grounding_record: dict[str, Any] | None = None,
) -> Message:
    message = Message(
        conversation_id=conversation_id,
        role="assistant",
        content=content,
        passages=[passage.model_dump() for passage in passages],
        status=status.value,
        generator=generator,
        grounding=grounding_record,
        grounding_support=grounding_record["support"] if grounding_record else None,
        grounding_flagged=grounding_record["flagged"] if grounding_record else None,
    )
    db_session.add(message)
    conversation = db_session.get(Conversation, conversation_id)
    if conversation is not None:
        conversation.updated_at = utcnow()
        db_session.add(conversation)
    db_session.flush()
    return message


def _retrieval_query(question: str, history: list[ChatMessage]) -> str:
    """A follow-up like "and who wrote it?" is searched together with the question before it."""
    previous = next((message.content for message in reversed(history) if message.role == "user"), "")
    return f"{previous}\n{question}" if previous else question


def _unready_notice(unready: list, names: dict[int, str]) -> str:
    count = len(unready)
    where = ", ".join(sorted({names.get(doc.knowledge_base_id, str(doc.knowledge_base_id)) for doc in unready}))
    noun = "document is" if count == 1 else "documents are"
    return f"{count} {noun} still being ingested in {where}; this answer cannot use them yet."


@dataclass
class Answer:
    """What an answer stream produced, filled in as it goes."""

    text: str = ""
    passages: list[Passage] = field(default_factory=list)
    status: AnswerStatus = AnswerStatus.complete
    generator: str = ""
    grounding: dict[str, Any] | None = None
    # What the generator read and wrote (0 when nothing was found and no generator ran).
    usage: TokenUsage = field(default_factory=TokenUsage)


def _checked_question(question: str) -> str:
    question = question.strip()
    if not question:
        raise InvalidInput("Type a question.")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidInput(f"Questions are limited to {MAX_QUESTION_CHARS} characters.")
    return question


async def _answer_events(
    *, actor: User, question: str, names: dict[int, str], history: list[ChatMessage], top_k: int | None, answer: Answer
) -> AsyncIterator[AskEvent]:
    """Retrieval then generation over the knowledge bases in `names`, which the user may read."""
    knowledge_base_ids = list(names)
    unready = await run_in_session(knowledge.unready_documents, knowledge_base_ids=knowledge_base_ids)
    if unready:
        yield AskEvent("notice", {"message": _unready_notice(unready, names)})

    yield AskEvent("step", {"step": "searching", "message": f"Searching {', '.join(names.values())}…"})
    answer.passages = await run_in_session(
        knowledge.search,
        actor=actor,
        knowledge_base_ids=knowledge_base_ids,
        query=_retrieval_query(question, history),
        top_k=top_k,
    )
    count = len(answer.passages)
    yield AskEvent(
        "passages",
        {
            "message": f"{count} {'passage' if count == 1 else 'passages'} found",
            "passages": [passage.model_dump() for passage in answer.passages],
        },
    )
    if not answer.passages:
        answer.text = NOTHING_FOUND
        answer.usage.prompt_tokens = answer.usage.completion_tokens = 0
        yield AskEvent("token", {"text": answer.text})
        return

    generator = generation.describe_generator()
    answer.generator = generator.model
    yield AskEvent(
        "step", {"step": "writing", "message": f"Writing the answer ({generator.model})", **generator.model_dump()}
    )
    try:
        async for piece in generation.stream_answer(
            question=question, passages=answer.passages, history=history, usage=answer.usage
        ):
            answer.text += piece
            yield AskEvent("token", {"text": piece})
    except StrataError as exc:
        answer.status = AnswerStatus.failed
        yield AskEvent("error", {"message": exc.message})
        return
    except Exception:
        answer.status = AnswerStatus.failed
        log.exception("ask.generation_failed")
        yield AskEvent("error", {"message": "Writing the answer failed; the passages above are what was found."})
        return
    if not answer.text.strip():
        return
    yield AskEvent("step", {"step": "checking", "message": "Checking the answer against the passages"})
    if verdict := await _grounded(question, answer, generator):
        yield AskEvent("grounding", {**verdict.record, "replacement": verdict.replacement, "notice": verdict.notice})


async def _grounded(question: str, answer: Answer, generator: GeneratorInfo) -> grounding.Verdict | None:
    """Checks the finished answer against its passages and, when it fell back, replaces its
    text. A check that fails leaves the answer unchecked (logged), never lost."""
    try:
        verdict = await asyncio.to_thread(
            grounding.ground_answer,
            question=question,
            answer=answer.text,
            passages=answer.passages,
            generator=generator,
        )
    except Exception:
        log.exception("ask.grounding_failed")
        return None
    answer.grounding = verdict.record
    if verdict.replacement is not None:
        answer.text = verdict.replacement
    log.info(
        "ask.grounded",
        generator=answer.generator,
        support=verdict.record["support"],
        fallback=verdict.record["fallback"],
    )
    return verdict


async def ask(
    *,
    actor: User,
    question: str,
    knowledge_base_ids: list[int],
    conversation_id: int | None = None,
    top_k: int | None = None,
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> AsyncIterator[AskEvent]:
    """Answers a question as a stream of events, saved in the user's conversation. Closing
    the stream stops generation; the answer so far is saved as stopped.

    Takes a request from the rate limit of `caller` ("key:<id>" at `limit_per_minute` for an
    API key; else the user's own) and holds one of the user's answer slots until it ends.
    The usage log records it under the generator's name; an answer whose writing failed counts
    as an error (503) although its stream had started.
    Raises TooManyAttempts (either limit), InvalidInput, NotFound, ServiceUnavailable."""
    require_role(actor, Role.viewer)
    tokens = TokenUsage()
    generator = generation.describe_generator().model
    with usage_recording.measure(actor=actor, caller=caller, endpoint="ask", model=generator, tokens=tokens) as meter:
        await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
        question = _checked_question(question)
        async with ratelimit.stream_slot(actor.id):
            events = _asked(
                actor=actor,
                question=question,
                knowledge_base_ids=list(dict.fromkeys(knowledge_base_ids)),
                conversation_id=conversation_id,
                top_k=top_k,
                tokens=tokens,
            )
            try:
                async for event in events:
                    if event.type == "done" and event.data["status"] == AnswerStatus.failed.value:
                        meter.status_code = ServiceUnavailable.status_code
                    yield event
            except StrataError:
                raise
            except Exception as exc:
                log.exception("ask.failed")
                raise ServiceUnavailable(generation.UNREACHABLE) from exc
            finally:
                await events.aclose()


async def _asked(
    *,
    actor: User,
    question: str,
    knowledge_base_ids: list[int],
    conversation_id: int | None,
    top_k: int | None,
    tokens: TokenUsage,
) -> AsyncIterator[AskEvent]:
    names = await run_in_session(readable_names, actor=actor, knowledge_base_ids=knowledge_base_ids)
    conversation_id, history = await run_in_session(
        record_question,
        actor=actor,
        conversation_id=conversation_id,
        question=question,
        knowledge_base_ids=knowledge_base_ids,
    )
    yield AskEvent("conversation", {"conversation_id": conversation_id})

    answer = Answer(usage=tokens)
    events = _answer_events(actor=actor, question=question, names=names, history=history, top_k=top_k, answer=answer)
    try:
        async for event in events:
            yield event
    except (GeneratorExit, asyncio.CancelledError):
        answer.status = AnswerStatus.stopped
        raise
    finally:
        # Shielded: a client that leaves cancels the request's scope, and anyio cancels every
        # await inside it again, which would lose the answer written so far.
        with anyio.CancelScope(shield=True):
            await events.aclose()
            message = await run_in_session(
                record_answer,
                conversation_id=conversation_id,
                content=answer.text,
                passages=answer.passages,
                status=answer.status,
                generator=answer.generator,
                grounding_record=answer.grounding,
            )
    yield AskEvent(
        "done",
        {
            "message_id": message.id,
            "conversation_id": conversation_id,
            "status": answer.status.value,
            "generator": answer.generator,
            "cited": cited_numbers(answer.text, len(answer.passages)),
            "usage": answer.usage.model_dump(),
        },
    )


async def answer_chat(
    *,
    actor: User,
    messages: list[ChatMessage],
    knowledge_base_ids: list[int] | None = None,
    usage: TokenUsage | None = None,
) -> AsyncIterator[str]:
    """A chat turn answered from the knowledge bases (all the user may read unless chosen),
    as text ending with its sources, its tokens counted into `usage`; not saved as a
    conversation. For OpenAI-style clients, whose service (app.openai_compat) takes the rate
    limit and the answer slot and records the usage."""
    require_role(actor, Role.viewer)
    if not messages or messages[-1].role != "user":
        raise InvalidInput("The last message must be the user's question.")
    question = _checked_question(messages[-1].content)
    history = [message for message in messages[:-1] if message.role != "system"][-HISTORY_MESSAGES:]
    if knowledge_base_ids is None:
        readable = await run_in_session(knowledge.readable_knowledge_bases, actor=actor)
        if not readable:
            raise NotFound("You may not read any knowledge base.")
        knowledge_base_ids = [kb.id for kb in readable]
    names = await run_in_session(
        readable_names, actor=actor, knowledge_base_ids=list(dict.fromkeys(knowledge_base_ids))
    )
    answer = Answer(usage=usage if usage is not None else TokenUsage())
    events = _answer_events(actor=actor, question=question, names=names, history=history, top_k=None, answer=answer)
    try:
        async for event in events:
            if event.type in ("token", "notice", "error"):
                yield event.data["text"] if event.type == "token" else f"({event.data['message']})\n\n"
            elif event.type == "grounding" and event.data["notice"]:
                # The text already went out: the verdict, and any replacement, follow it.
                yield f"\n\n({event.data['notice']})"
                if event.data["replacement"] is not None:
                    yield f"\n\n{event.data['replacement']}"
    finally:
        await events.aclose()
    cited = cited_numbers(answer.text, len(answer.passages))
    if cited:
        yield "\n\nSources:\n" + "\n".join(f"[{n}] {_source(answer.passages[n - 1])}" for n in cited)


def _source(passage: Passage) -> str:
    where = f", page {passage.page}" if passage.page else ""
    return f"{passage.document_name}{where} ({passage.knowledge_base_name})"
