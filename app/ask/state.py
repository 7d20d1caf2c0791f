"""The Ask page: choose knowledge bases, ask, watch the steps and the answer stream in."""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import reflex as rx

from app.ask import grounding, service
from app.ask.service import AskEvent
from app.ask.tables import Message
from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.errors import StrataError
from app.core.roles import Role
from app.knowledge import service as knowledge
from app.knowledge.schemas import Passage


@dataclass
class KnowledgeBaseOption:
    id: int
    name: str
    chosen: bool
    unready: int


@dataclass
class PassageView:
    number: int
    document_name: str
    knowledge_base_name: str
    where: str
    text: str
    score: str
    file_url: str


@dataclass
class Segment:
    """A piece of an answer: plain text, or a citation [number] (number > 0); `unsupported`
    text is in a sentence the passages do not support."""

    text: str
    number: int
    unsupported: bool = False


@dataclass
class Turn:
    role: str
    text: str
    segments: list[Segment] = field(default_factory=list)
    passages: list[PassageView] = field(default_factory=list)
    message_id: int = 0
    status: str = ""
    rating: int = 0
    grounding_notice: str = ""
    # When the model's answer was replaced by the passages' own sentences: that answer, marked.
    replaced_segments: list[Segment] = field(default_factory=list)


@dataclass
class ConversationRow:
    id: int
    title: str
    updated: str


def passage_view(number: int, passage: Passage) -> PassageView:
    where = " · ".join(part for part in (f"page {passage.page}" if passage.page else "", passage.heading or "") if part)
    anchor = f"#page={passage.page}" if passage.page else ""
    return PassageView(
        number=number,
        document_name=passage.document_name,
        knowledge_base_name=passage.knowledge_base_name,
        where=where,
        text=passage.text,
        score=f"{passage.score:.3f}",
        file_url=f"/api/v1/knowledge/documents/{passage.document_id}/file{anchor}",
    )


def segments(text: str, passage_count: int, unsupported: Sequence[Sequence[int]] = ()) -> list[Segment]:
    """`text` cut into plain pieces and citations, with the pieces inside the `unsupported`
    (start, end) spans marked."""
    cuts = sorted({0, len(text), *(min(max(edge, 0), len(text)) for span in unsupported for edge in span)})
    pieces: list[Segment] = []
    for begin, end in itertools.pairwise(cuts):
        flagged = any(start <= begin and end <= stop for start, stop in unsupported)
        pieces.extend(_cited_pieces(text[begin:end], passage_count, flagged))
    return pieces


def _cited_pieces(text: str, passage_count: int, unsupported: bool) -> list[Segment]:
    pieces: list[Segment] = []
    position = 0
    for match in service.CITATION.finditer(text):
        number = int(match.group(1))
        if not 1 <= number <= passage_count:
            continue
        if match.start() > position:
            pieces.append(Segment(text[position : match.start()], 0, unsupported))
        pieces.append(Segment(f"[{number}]", number))
        position = match.end()
    if position < len(text):
        pieces.append(Segment(text[position:], 0, unsupported))
    return pieces


def _turn(message: Message) -> Turn:
    passages = [passage_view(n, Passage(**p)) for n, p in enumerate(message.passages, start=1)]
    record = message.grounding or {}
    unsupported = grounding.unsupported_spans(record)
    replaced = record.get("replaced_answer")
    return Turn(
        role=message.role,
        text=message.content,
        segments=segments(message.content, len(passages), [] if replaced else unsupported)
        if message.role == "assistant"
        else [],
        passages=passages,
        message_id=message.id,
        status=message.status,
        rating=message.rating or 0,
        grounding_notice=grounding.grounding_notice(record),
        replaced_segments=segments(replaced, len(passages), unsupported) if replaced else [],
    )


class AskState(AuthState):
    knowledge_bases: list[KnowledgeBaseOption] = []
    conversations: list[ConversationRow] = []
    conversation_id: int = 0
    turns: list[Turn] = []
    # The answer being written, kept apart from `turns` so each token sends only itself.
    generating: bool = False
    live_question: str = ""
    live_steps: list[str] = []
    live_notice: str = ""
    live_error: str = ""
    live_passages: list[PassageView] = []
    live_text: str = ""
    # Set when the answer is checked: spans of its unsupported sentences in live_text, what to
    # tell, and the passages' own sentences when they replace it (live_text stays, marked).
    live_unsupported: list[list[int]] = []
    live_grounding_notice: str = ""
    live_replacement: str = ""
    citation: PassageView = PassageView(0, "", "", "", "", "", "")
    citation_open: bool = False
    feedback_message_id: int = 0
    feedback_rating: int = 0
    _stop_requested: bool = False

    @rx.var
    def live_segments(self) -> list[Segment]:
        return segments(self.live_text, len(self.live_passages), self.live_unsupported)

    @rx.var
    def live_replacement_segments(self) -> list[Segment]:
        return segments(self.live_replacement, len(self.live_passages))

    @rx.var
    def chosen_ids(self) -> list[int]:
        return [kb.id for kb in self.knowledge_bases if kb.chosen]

    @rx.var
    def unready_notice(self) -> str:
        count = sum(kb.unready for kb in self.knowledge_bases if kb.chosen)
        if not count:
            return ""
        return f"{count} document{'s are' if count != 1 else ' is'} still being ingested; answers cannot use them yet."

    async def _load_lists(self) -> None:
        user = acting_user()
        chosen = set(self.chosen_ids)

        def lists(*, db_session):
            bases = knowledge.readable_knowledge_bases(db_session=db_session, actor=user)
            unready = knowledge.unready_documents(db_session=db_session, knowledge_base_ids=[kb.id for kb in bases])
            conversations = service.list_conversations(db_session=db_session, actor=user)
            return bases, unready, conversations

        bases, unready, conversations = await run_in_session(lists)
        if not chosen and bases:
            chosen = {bases[0].id}
        self.knowledge_bases = [
            KnowledgeBaseOption(
                id=kb.id,
                name=kb.name,
                chosen=kb.id in chosen,
                unready=sum(1 for doc in unready if doc.knowledge_base_id == kb.id),
            )
            for kb in bases
        ]
        self.conversations = [
            ConversationRow(id=c.id, title=c.title, updated=f"{c.updated_at:%Y-%m-%d %H:%M}") for c in conversations
        ]

    @rx.event
    @guarded(Role.viewer)
    async def load(self):
        await self._load_lists()
        # /ask?conversation=<id> (the Home page's links) opens that conversation.
        wanted = self.router.url.query_parameters.get("conversation", "")
        if wanted.isdigit():
            await self._open_conversation(int(wanted))

    @rx.event
    @guarded(Role.viewer)
    async def choose_knowledge_base(self, kb_id: int, chosen: bool):
        self.knowledge_bases = [
            KnowledgeBaseOption(kb.id, kb.name, chosen if kb.id == kb_id else kb.chosen, kb.unready)
            for kb in self.knowledge_bases
        ]

    @rx.event
    @guarded(Role.viewer)
    async def new_conversation(self):
        self.conversation_id = 0
        self.turns = []
        self._clear_live()

    @rx.event
    @guarded(Role.viewer)
    async def open_conversation(self, conversation_id: int):
        await self._open_conversation(conversation_id)

    async def _open_conversation(self, conversation_id: int) -> None:
        user = acting_user()
        conversation = await run_in_session(service.get_conversation, actor=user, conversation_id=conversation_id)
        messages = await run_in_session(service.conversation_messages, actor=user, conversation_id=conversation_id)
        self.conversation_id = conversation.id
        self.turns = [_turn(message) for message in messages]
        chosen = set(conversation.knowledge_base_ids)
        self.knowledge_bases = [
            KnowledgeBaseOption(kb.id, kb.name, kb.id in chosen, kb.unready) for kb in self.knowledge_bases
        ]
        self._clear_live()

    @rx.event
    @guarded(Role.viewer)
    async def delete_conversation(self, conversation_id: int):
        await run_in_session(service.delete_conversation, actor=acting_user(), conversation_id=conversation_id)
        if conversation_id == self.conversation_id:
            self.conversation_id = 0
            self.turns = []
            self._clear_live()
        await self._load_lists()

    def _clear_live(self) -> None:
        self.live_question = self.live_notice = self.live_error = self.live_text = ""
        self.live_grounding_notice = self.live_replacement = ""
        self.live_steps, self.live_passages, self.live_unsupported = [], [], []

    @rx.event(background=True)
    @guarded(Role.viewer, background=True)
    async def ask(self, form: dict):
        question = str(form.get("question", "")).strip()
        async with self:
            if self.generating or not question:
                return
            self._clear_live()
            self.generating, self._stop_requested = True, False
            self.live_question = question
            conversation_id, chosen_ids = self.conversation_id or None, self.chosen_ids
        # The service takes the rate limit and one of the user's answer slots (429s come as errors).
        events = service.ask(
            actor=acting_user(), question=question, knowledge_base_ids=chosen_ids, conversation_id=conversation_id
        )
        try:
            async for event in events:
                async with self:
                    if self._stop_requested:
                        break
                    self._apply(event)
        except StrataError as exc:
            async with self:
                self.live_error = exc.message
        finally:
            await events.aclose()
            async with self:
                self.generating = False
                failed, conversation_id = bool(self.live_error), self.conversation_id
        if not failed:  # after a failure the question, what was written and the error stay in view
            await self._show_saved_conversation(conversation_id)

    async def _show_saved_conversation(self, conversation_id: int) -> None:
        messages = await run_in_session(
            service.conversation_messages, actor=acting_user(), conversation_id=conversation_id
        )
        async with self:
            self.turns = [_turn(message) for message in messages]
            self.live_question = self.live_text = self.live_grounding_notice = self.live_replacement = ""
            self.live_steps, self.live_passages, self.live_unsupported = [], [], []
            await self._load_lists()

    def _apply(self, event: AskEvent) -> None:
        match event.type:
            case "conversation":
                self.conversation_id = event.data["conversation_id"]
            case "notice":
                self.live_notice = event.data["message"]
            case "step":
                self.live_steps = [*self.live_steps, event.data["message"]]
            case "passages":
                self.live_steps = [*self.live_steps, event.data["message"]]
                self.live_passages = [
                    passage_view(n, Passage(**p)) for n, p in enumerate(event.data["passages"], start=1)
                ]
            case "token":
                self.live_text += event.data["text"]
            case "grounding":
                self.live_grounding_notice = event.data["notice"]
                self.live_replacement = event.data["replacement"] or ""
                self.live_unsupported = [
                    [item["start"], item["end"]] for item in event.data["sentences"] if not item["supported"]
                ]
            case "error":
                self.live_error = event.data["message"]

    @rx.event
    @guarded(Role.viewer)
    async def stop(self):
        self._stop_requested = True

    @rx.event
    @guarded(Role.viewer)
    async def show_citation(self, turn_index: int, number: int):
        passages = self.live_passages if turn_index < 0 else self.turns[turn_index].passages
        if 1 <= number <= len(passages):
            self.citation, self.citation_open = passages[number - 1], True

    @rx.event
    @guarded(Role.viewer)
    async def close_citation(self):
        self.citation_open = False

    @rx.event
    @guarded(Role.viewer)
    async def rate(self, message_id: int, rating: int):
        await run_in_session(service.rate_answer, actor=acting_user(), message_id=message_id, rating=rating)
        self.turns = [replace(turn, rating=rating) if turn.message_id == message_id else turn for turn in self.turns]
        self.feedback_message_id, self.feedback_rating = message_id, rating

    @rx.event
    @guarded(Role.viewer)
    async def send_feedback_comment(self, form: dict):
        await run_in_session(
            service.rate_answer,
            actor=acting_user(),
            message_id=self.feedback_message_id,
            rating=self.feedback_rating,
            comment=str(form.get("comment", "")),
        )
        self.feedback_message_id = 0
        return rx.toast.success("Thanks, your feedback is saved.")

    @rx.event
    @guarded(Role.viewer)
    async def close_feedback(self):
        self.feedback_message_id = 0
