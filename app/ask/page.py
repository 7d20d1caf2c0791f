import reflex as rx

from app.ask.grounding import UNSUPPORTED_TOOLTIP
from app.ask.state import AskState, ConversationRow, KnowledgeBaseOption, PassageView, Segment, Turn
from app.ui.layout import shell


def _answer_text(pieces: rx.Var[list[Segment]], turn_index: int | rx.Var[int], **props) -> rx.Component:
    """An answer whose citations [n] open the passage they cite."""
    return rx.text(
        rx.foreach(
            pieces,
            lambda piece: rx.cond(
                piece.number > 0,
                rx.link(
                    piece.text,
                    on_click=AskState.show_citation(turn_index, piece.number),
                    cursor="pointer",
                    weight="bold",
                    class_name="citation",
                ),
                rx.cond(
                    piece.unsupported,
                    rx.text.span(
                        piece.text,
                        title=UNSUPPORTED_TOOLTIP,
                        color=rx.color("amber", 11),
                        text_decoration="underline wavy",
                        class_name="unsupported",
                    ),
                    rx.text.span(piece.text),
                ),
            ),
        ),
        white_space="pre-wrap",
        size="3",
        **props,
    )


def _grounding_notice(notice: rx.Var[str], **props) -> rx.Component:
    return rx.cond(
        notice,
        rx.callout(
            notice, icon="triangle-alert", color_scheme="amber", size="1", class_name="grounding-notice", **props
        ),
    )


def _replaced_answer(pieces: rx.Var[list[Segment]], turn_index: rx.Var[int]) -> rx.Component:
    """The model's answer that the passages' own sentences replaced, its unsupported sentences marked."""
    return rx.accordion.root(
        rx.accordion.item(
            header=rx.text("The model's answer, not supported by the passages", size="2", color_scheme="gray"),
            content=_answer_text(pieces, turn_index, class_name="replaced-answer", color_scheme="gray"),
            value="replaced",
        ),
        collapsible=True,
        type="single",
        variant="ghost",
        width="100%",
    )


def _passage_item(passage: PassageView, turn_index: int | rx.Var[int]) -> rx.Component:
    return rx.hstack(
        rx.badge(f"[{passage.number}]", variant="soft"),
        rx.vstack(
            rx.link(
                rx.text(passage.document_name, " ", passage.where, weight="bold", size="2"),
                on_click=AskState.show_citation(turn_index, passage.number),
                cursor="pointer",
            ),
            rx.text(
                passage.text,
                size="1",
                color_scheme="gray",
                trim="both",
                class_name="passage-text",
                style={
                    "display": "-webkit-box",
                    "-webkit-line-clamp": "2",
                    "-webkit-box-orient": "vertical",
                    "overflow": "hidden",
                },
            ),
            spacing="0",
        ),
        rx.spacer(),
        rx.text("score ", passage.score, size="1", color_scheme="gray"),
        width="100%",
        align="start",
        class_name="passage",
    )


def _passages(passages: rx.Var[list[PassageView]], turn_index: int | rx.Var[int], label) -> rx.Component:
    return rx.accordion.root(
        rx.accordion.item(
            header=rx.text(label, size="2"),
            content=rx.vstack(rx.foreach(passages, lambda p: _passage_item(p, turn_index)), width="100%"),
            value="passages",
        ),
        collapsible=True,
        type="single",
        variant="ghost",
        width="100%",
    )


def _feedback(turn: Turn) -> rx.Component:
    return rx.hstack(
        rx.icon_button(
            rx.icon("thumbs-up", size=14),
            size="1",
            variant=rx.cond(turn.rating == 1, "solid", "ghost"),
            on_click=AskState.rate(turn.message_id, 1),
            class_name="thumbs-up",
        ),
        rx.icon_button(
            rx.icon("thumbs-down", size=14),
            size="1",
            variant=rx.cond(turn.rating == -1, "solid", "ghost"),
            color_scheme="red",
            on_click=AskState.rate(turn.message_id, -1),
            class_name="thumbs-down",
        ),
        rx.cond(turn.status == "stopped", rx.badge("stopped", color_scheme="orange")),
        spacing="2",
    )


def _turn(turn: Turn, index: rx.Var[int]) -> rx.Component:
    return rx.cond(
        turn.role == "user",
        rx.box(rx.text(turn.text, weight="medium"), class_name="turn-question", padding_y="2"),
        rx.card(
            rx.vstack(
                _grounding_notice(turn.grounding_notice),
                _answer_text(turn.segments, index, class_name="answer"),
                rx.cond(turn.replaced_segments, _replaced_answer(turn.replaced_segments, index)),
                rx.cond(turn.passages, _passages(turn.passages, index, "Passages used")),
                _feedback(turn),
                width="100%",
            ),
            class_name="turn-answer",
            width="100%",
        ),
    )


def _live_answer() -> rx.Component:
    return rx.vstack(
        rx.text(AskState.live_question, weight="medium", class_name="turn-question"),
        rx.cond(
            AskState.live_notice,
            rx.callout(AskState.live_notice, icon="loader", color_scheme="amber", size="1", id="ask-notice"),
        ),
        rx.vstack(
            rx.foreach(
                AskState.live_steps,
                lambda step: rx.hstack(
                    rx.icon("check", size=14, color="green"), rx.text(step, size="2"), class_name="ask-step"
                ),
            ),
            spacing="1",
            id="ask-steps",
        ),
        rx.cond(AskState.live_passages, _passages(AskState.live_passages, -1, "Passages found")),
        rx.card(
            _answer_text(AskState.live_segments, -1, id="live-answer"),
            rx.cond(AskState.generating, rx.spinner(size="1")),
            width="100%",
        ),
        _grounding_notice(AskState.live_grounding_notice, id="live-grounding"),
        rx.cond(
            AskState.live_replacement,
            rx.card(_answer_text(AskState.live_replacement_segments, -1, id="live-replacement"), width="100%"),
        ),
        rx.cond(
            AskState.live_error,
            rx.callout(AskState.live_error, color_scheme="red", icon="triangle-alert", id="ask-error"),
        ),
        width="100%",
        id="live",
    )


def _citation_dialog() -> rx.Component:
    passage = AskState.citation
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(rx.text("[", passage.number, "] ", passage.document_name)),
            rx.dialog.description(
                rx.text(passage.knowledge_base_name, " · ", passage.where, size="2", id="citation-where"),
            ),
            rx.scroll_area(
                rx.text(passage.text, white_space="pre-wrap", size="2", id="citation-text"),
                max_height="50vh",
                margin_y="3",
            ),
            rx.hstack(
                rx.link(
                    "Open the document at this page",
                    href=passage.file_url,
                    is_external=True,
                    id="citation-open-document",
                ),
                rx.spacer(),
                rx.dialog.close(rx.button("Close", variant="soft")),
            ),
            id="citation-dialog",
        ),
        open=AskState.citation_open,
        on_open_change=AskState.close_citation,
    )


def _feedback_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Thanks for rating this answer"),
            rx.form(
                rx.vstack(
                    rx.text_area(
                        name="comment", placeholder="What was good or wrong? (optional)", id="feedback-comment"
                    ),
                    rx.hstack(
                        rx.button("Send", type="submit", id="feedback-send"),
                        rx.dialog.close(rx.button("Skip", variant="soft", type="button")),
                    ),
                ),
                on_submit=AskState.send_feedback_comment,
            ),
        ),
        open=AskState.feedback_message_id > 0,
        on_open_change=AskState.close_feedback,
    )


def _knowledge_base_choice(kb: KnowledgeBaseOption) -> rx.Component:
    return rx.hstack(
        rx.checkbox(
            kb.name,
            checked=kb.chosen,
            on_change=lambda checked: AskState.choose_knowledge_base(kb.id, checked),
            id=f"kb-choice-{kb.id}",
        ),
        rx.cond(kb.unready > 0, rx.badge(kb.unready, " ingesting", color_scheme="amber", size="1")),
        align="center",
        class_name="kb-choice",
    )


def _conversation_row(row: ConversationRow) -> rx.Component:
    return rx.hstack(
        rx.link(
            rx.text(
                row.title,
                size="2",
                trim="both",
                style={"overflow": "hidden", "text-overflow": "ellipsis", "white-space": "nowrap"},
                max_width="170px",
            ),
            on_click=AskState.open_conversation(row.id),
            cursor="pointer",
            weight=rx.cond(row.id == AskState.conversation_id, "bold", "regular"),
        ),
        rx.spacer(),
        rx.icon_button(
            rx.icon("trash-2", size=12),
            size="1",
            variant="ghost",
            color_scheme="gray",
            on_click=AskState.delete_conversation(row.id),
            class_name="delete-conversation",
        ),
        width="100%",
        class_name="conversation-row",
    )


def _sidebar() -> rx.Component:
    return rx.vstack(
        rx.button(
            rx.icon("plus", size=14),
            "New conversation",
            variant="soft",
            size="2",
            on_click=AskState.new_conversation,
            id="new-conversation",
            width="100%",
        ),
        rx.text("Knowledge bases", weight="bold", size="2", margin_top="3"),
        rx.cond(
            AskState.knowledge_bases,
            rx.vstack(rx.foreach(AskState.knowledge_bases, _knowledge_base_choice), spacing="1"),
            rx.text("No knowledge base you may read yet.", size="2", color_scheme="gray", id="no-knowledge-bases"),
        ),
        rx.text("Conversations", weight="bold", size="2", margin_top="3"),
        rx.vstack(rx.foreach(AskState.conversations, _conversation_row), spacing="1", width="100%", id="conversations"),
        width="240px",
        min_width="240px",
    )


def _question_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(
                name="question",
                placeholder="Ask a question about your documents…",
                size="3",
                width="100%",
                id="question",
                disabled=AskState.generating,
            ),
            rx.cond(
                AskState.generating,
                rx.button(
                    rx.icon("square", size=14),
                    "Stop",
                    type="button",
                    color_scheme="red",
                    size="3",
                    on_click=AskState.stop,
                    id="stop",
                ),
                rx.button("Ask", type="submit", size="3", id="ask"),
            ),
            width="100%",
        ),
        on_submit=AskState.ask,
        reset_on_submit=True,
        width="100%",
    )


def ask_page() -> rx.Component:
    return shell(
        "Ask",
        rx.hstack(
            _sidebar(),
            rx.vstack(
                rx.cond(
                    AskState.unready_notice,
                    rx.callout(
                        AskState.unready_notice, icon="loader", color_scheme="amber", size="1", id="unready-notice"
                    ),
                ),
                rx.vstack(rx.foreach(AskState.turns, _turn), width="100%", spacing="3", id="turns"),
                rx.cond(AskState.live_question, _live_answer()),
                _question_form(),
                width="100%",
                spacing="4",
            ),
            width="100%",
            align="start",
            spacing="6",
        ),
        _citation_dialog(),
        _feedback_dialog(),
    )
