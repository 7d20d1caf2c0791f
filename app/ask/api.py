import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, status

from app.ask import service
from app.ask.schemas import (
    AnswerOut,
    AskIn,
    ConversationDetailOut,
    ConversationOut,
    FeedbackIn,
    GroundingOut,
    MessageOut,
)
from app.ask.service import AskEvent
from app.auth.deps import Caller, CurrentUser, IdentifiedCaller, SessionDep
from app.core.streaming import ClosingStreamingResponse
from app.knowledge.schemas import Passage

router = APIRouter(prefix="/api/v1", tags=["ask"])


def _server_sent(event: AskEvent) -> str:
    return f"event: {event.type}\ndata: {json.dumps(event.data)}\n\n"


async def _sse(first: AskEvent, events: AsyncIterator[AskEvent]) -> AsyncIterator[str]:
    try:
        yield _server_sent(first)
        async for event in events:
            yield _server_sent(event)
    finally:
        await events.aclose()  # a client that leaves stops the answer and frees its slot


async def collect_answer(events: AsyncIterator[AskEvent]) -> AnswerOut:
    answer: dict = {"answer": "", "notices": [], "passages": []}
    async for event in events:
        match event.type:
            case "token":
                answer["answer"] += event.data["text"]
            case "notice" | "error":
                answer["notices"].append(event.data["message"])
            case "passages":
                answer["passages"] = [Passage(**passage) for passage in event.data["passages"]]
            case "grounding":
                answer["grounding"] = GroundingOut(**event.data)
                if event.data["replacement"] is not None:
                    answer["answer"] = event.data["replacement"]
                if event.data["notice"]:
                    answer["notices"].append(event.data["notice"])
            case "done":
                answer.update(
                    conversation_id=event.data["conversation_id"],
                    message_id=event.data["message_id"],
                    status=event.data["status"],
                    cited=event.data["cited"],
                    generator=event.data["generator"],
                    usage=event.data["usage"],
                )
    return AnswerOut(**answer)


@router.post("/ask", response_model=AnswerOut, responses={200: {"content": {"text/event-stream": {}}}})
async def ask(body: AskIn, caller: IdentifiedCaller):
    """Answers from the chosen knowledge bases. With `"stream": true` the answer comes as
    Server-Sent Events: conversation, notice, step (searching, writing, checking), passages,
    token (many), error, grounding, done (with the generator's `usage`: prompt and completion tokens).
    `grounding` follows the last token of a complete answer: each sentence's span in
    the streamed text with its support, the answer's support and flag, a `notice`, and, when
    the built-in model's answer was not supported, the `replacement` that takes its place.
    Rate limited; at most STRATA_MAX_STREAMS_PER_USER answers of one user at once (429)."""
    events = _events(body, caller)
    if not body.stream:
        return await collect_answer(events)
    # The first event is awaited here so that a bad request gets its HTTP error, not a broken stream.
    first = await anext(events)
    return ClosingStreamingResponse(
        _sse(first, events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _events(body: AskIn, caller: Caller) -> AsyncIterator[AskEvent]:
    return service.ask(
        actor=caller.user,
        question=body.question,
        knowledge_base_ids=body.knowledge_base_ids,
        conversation_id=body.conversation_id,
        top_k=body.top_k,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )


@router.get("/conversations")
def list_conversations(user: CurrentUser, db_session: SessionDep) -> list[ConversationOut]:
    return [ConversationOut.of(c) for c in service.list_conversations(db_session=db_session, actor=user)]


@router.get("/conversations/{conversation_id}")
def get_conversation(conversation_id: int, user: CurrentUser, db_session: SessionDep) -> ConversationDetailOut:
    conversation = service.get_conversation(db_session=db_session, actor=user, conversation_id=conversation_id)
    messages = service.conversation_messages(db_session=db_session, actor=user, conversation_id=conversation_id)
    return ConversationDetailOut(
        **ConversationOut.of(conversation).model_dump(), messages=[MessageOut.of(m) for m in messages]
    )


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_conversation(conversation_id: int, user: CurrentUser, db_session: SessionDep) -> None:
    service.delete_conversation(db_session=db_session, actor=user, conversation_id=conversation_id)


@router.post("/messages/{message_id}/feedback")
def rate_answer(message_id: int, body: FeedbackIn, user: CurrentUser, db_session: SessionDep) -> MessageOut:
    message = service.rate_answer(
        db_session=db_session, actor=user, message_id=message_id, rating=body.rating, comment=body.comment
    )
    return MessageOut.of(message)
