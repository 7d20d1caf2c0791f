"""Sections to passages of at most `max_tokens` embedder word pieces, cut between
sentences, each new passage repeating the last sentences of the previous one (up to
`overlap_tokens`) so that a thought cut at the border is whole in one of them.
Passages never span two sections, so each keeps its page and heading."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.knowledge.parsing import Section

# Word pieces per text, counted by the embedder's tokenizer (without [CLS]/[SEP]).
TokenCounter = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'’”)\]]*\s+")


@dataclass(frozen=True)
class Passage:
    text: str
    page: int | None
    heading: str | None


def split_sentences(text: str) -> list[str]:
    return [sentence for sentence in _SENTENCE_END.split(text) if sentence.strip()]


def chunk_sections(
    sections: Sequence[Section], *, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int
) -> list[Passage]:
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap ({overlap_tokens}) must be below the chunk size ({max_tokens})")
    passages: list[Passage] = []
    for section in sections:
        pieces = _fitting_pieces(split_sentences(section.text), count_tokens, max_tokens)
        passages.extend(
            Passage(text, section.page, section.heading) for text in _pack(pieces, max_tokens, overlap_tokens)
        )
    return passages


def _fitting_pieces(sentences: list[str], count_tokens: TokenCounter, max_tokens: int) -> list[tuple[str, int]]:
    """Sentences with their sizes; a sentence longer than a chunk is cut into runs of words."""
    pieces = []
    for sentence, size in zip(sentences, count_tokens(sentences), strict=True):
        if size <= max_tokens:
            pieces.append((sentence, size))
            continue
        words = sentence.split()
        # Average word pieces per word, with a margin so each run fits.
        per_run = max(1, int(len(words) * max_tokens / max(size, 1) * 0.8))
        runs = [" ".join(words[i : i + per_run]) for i in range(0, len(words), per_run)]
        pieces.extend(
            _fitting_pieces(runs, count_tokens, max_tokens)
            if per_run > 1
            else zip(runs, count_tokens(runs), strict=True)
        )
    return pieces


def _pack(pieces: list[tuple[str, int]], max_tokens: int, overlap_tokens: int) -> list[str]:
    chunks: list[str] = []
    current: list[tuple[str, int]] = []
    size = 0
    for piece in pieces:
        if current and size + piece[1] > max_tokens:
            chunks.append(" ".join(text for text, _ in current))
            current, size = _overlap(current, overlap_tokens, max_tokens - piece[1])
        current.append(piece)
        size += piece[1]
    if current:
        chunks.append(" ".join(text for text, _ in current))
    return chunks


def _overlap(previous: list[tuple[str, int]], overlap_tokens: int, room: int) -> tuple[list[tuple[str, int]], int]:
    """The trailing sentences of the previous chunk that fit in the overlap and leave room for the next."""
    kept: list[tuple[str, int]] = []
    size = 0
    for piece in reversed(previous):
        if size + piece[1] > min(overlap_tokens, room):
            break
        kept.insert(0, piece)
        size += piece[1]
    return kept, size
