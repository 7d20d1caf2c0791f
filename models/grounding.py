"""Grounding: how far each sentence of an answer is supported by the passages it was given.

Pure numpy over an embedding function the caller passes in (Strata's all-MiniLM-L6-v2,
whose rows are L2-normalised); nothing of app/.

Each sentence of the answer gets two signals in [0, 1]:

- similarity: the highest cosine between the sentence and any sentence of the passages
  (negative cosines count as 0). Whole passages are not embedded as well: beside their
  sentences they more than doubled the check's time on 2 cores (batches padded to a
  passage's length);
- overlap: the share of the sentence's content words (lower-cased words of two or more
  characters, less a short stop-word list) found anywhere in the passages.

Its score is SIMILARITY_WEIGHT * similarity + (1 - SIMILARITY_WEIGHT) * overlap, and it is
supported when the score reaches the sentence threshold. Citation markers ([n]) stay with
the sentence they close and count as no words. A sentence without content words ("Yes.",
a bare [2]) has nothing to check: it is kept, marked supported and weighs nothing.

The answer's support is the share of its content words that stand in supported sentences:
sentences weigh by their content words, so a long invented sentence is not outweighed by a
short copied one. An answer below the answer threshold is flagged; one with nothing to
check has support 1.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

SIMILARITY_WEIGHT = 0.5

Embed = Callable[[Sequence[str]], np.ndarray]

_CITATION = re.compile(r"\[\d+\]")
_WORD = re.compile(r"\w+", re.UNICODE)
# A sentence ends at . ! ? (with closing quotes or brackets and the citations that follow it,
# taken whole) before a space and a capital, digit, quote, parenthesis or list mark, or at a
# line's end; a line break always ends one (lists, headings, code).
_BOUNDARY = re.compile(
    r"""[.!?…]+["'”’)\]]*(?:[ \t]*\[\d+\])*+(?=[ \t]+["'“‘(*`\-0-9A-ZÀ-ÖØ-Þ]|[ \t]*(?:\n|$))|\n""", re.UNICODE
)
_STOP_WORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    between both but by can could did do does doing done each either else for from further had has
    have having he her here hers him his how however i if in into is it its itself just let like may
    me might more most much must my no nor not now of off on once only or other our ours out over
    own same shall she should so some such than that the their theirs them then there these they
    this those through thus to too under until up upon very was we were what when where whether which
    while who whom whose why will with within would yes yet you your yours""".split()
)


@dataclass(frozen=True)
class PassageEvidence:
    """The passages an answer was given, embedded and worded once for any number of answers."""

    vectors: np.ndarray  # one L2-normalised row per passage sentence
    words: frozenset[str]


@dataclass(frozen=True)
class SentenceScore:
    start: int  # character span in the answer
    end: int
    text: str
    similarity: float
    overlap: float
    weight: int  # content words; 0: nothing to check

    def score(self) -> float:
        return SIMILARITY_WEIGHT * self.similarity + (1 - SIMILARITY_WEIGHT) * self.overlap


@dataclass(frozen=True)
class SentenceSupport:
    start: int
    end: int
    text: str
    similarity: float
    overlap: float
    score: float
    supported: bool


@dataclass(frozen=True)
class GroundingReport:
    sentences: list[SentenceSupport]
    support: float
    flagged: bool


def content_words(text: str) -> list[str]:
    """The words that carry a claim: lower-cased, two or more characters, no stop words, no citations."""
    return [
        word for word in _WORD.findall(_CITATION.sub(" ", text).lower()) if len(word) > 1 and word not in _STOP_WORDS
    ]


def sentence_spans(text: str, start: int = 0) -> list[tuple[int, int]]:
    """(start, end) of each non-blank sentence of `text` from character `start` on, without
    surrounding white space; a citation after the full stop belongs to the sentence before."""
    spans: list[tuple[int, int]] = []
    position = start
    for boundary in _BOUNDARY.finditer(text, start):
        _add_span(spans, text, position, boundary.end())
        position = boundary.end()
    _add_span(spans, text, position, len(text))
    return spans


def _add_span(spans: list[tuple[int, int]], text: str, begin: int, end: int) -> None:
    piece = text[begin:end]
    if piece.strip():
        spans.append((begin + len(piece) - len(piece.lstrip()), begin + len(piece.rstrip())))


def passage_evidence(passages: Sequence[str], embed: Embed) -> PassageEvidence:
    units: list[str] = []
    words: set[str] = set()
    for passage in passages:
        flat = " ".join(passage.split())
        units.extend(flat[a:b] for a, b in sentence_spans(flat))
        words.update(content_words(flat))
    vectors = embed(units) if units else np.zeros((0, 1), dtype=np.float32)
    return PassageEvidence(vectors=np.asarray(vectors, dtype=np.float32), words=frozenset(words))


def score_sentences(answer: str, evidence: PassageEvidence, embed: Embed, *, start: int = 0) -> list[SentenceScore]:
    """Similarity and overlap of each sentence of `answer` from character `start` on (what
    comes before is the generator's own framing, not a claim)."""
    spans = sentence_spans(answer, start)
    if not spans:
        return []
    texts = [answer[a:b] for a, b in spans]
    if len(evidence.vectors):
        best = (np.asarray(embed(texts), dtype=np.float32) @ evidence.vectors.T).max(axis=1)
    else:
        best = np.zeros(len(texts), dtype=np.float32)
    scores = []
    for (a, b), text, similarity in zip(spans, texts, best, strict=True):
        words = content_words(text)
        found = sum(1 for word in words if word in evidence.words)
        scores.append(
            SentenceScore(
                start=a,
                end=b,
                text=text,
                similarity=float(np.clip(similarity, 0.0, 1.0)) if words else 0.0,
                overlap=found / len(words) if words else 0.0,
                weight=len(words),
            )
        )
    return scores


def judge(scores: Sequence[SentenceScore], *, sentence_threshold: float, answer_threshold: float) -> GroundingReport:
    sentences = [
        SentenceSupport(
            start=item.start,
            end=item.end,
            text=item.text,
            similarity=round(item.similarity, 4),
            overlap=round(item.overlap, 4),
            score=round(item.score(), 4),
            supported=item.weight == 0 or item.score() >= sentence_threshold,
        )
        for item in scores
    ]
    total = sum(item.weight for item in scores)
    held = sum(item.weight for item, verdict in zip(scores, sentences, strict=True) if verdict.supported)
    support = held / total if total else 1.0
    return GroundingReport(sentences=sentences, support=round(support, 4), flagged=support < answer_threshold)


def check_grounding(
    answer: str,
    passages: Sequence[str],
    embed: Embed,
    *,
    sentence_threshold: float,
    answer_threshold: float,
    start: int = 0,
) -> GroundingReport:
    """Each sentence of `answer` (from character `start`) scored against `passages`, and the verdict."""
    scores = score_sentences(answer, passage_evidence(passages, embed), embed, start=start)
    return judge(scores, sentence_threshold=sentence_threshold, answer_threshold=answer_threshold)
