"""Okapi BM25 over a fixed set of passages, in memory (numpy). Built once per
knowledge base and reused until its documents change (see service.LEXICAL_INDEXES)."""

import math
import re
from collections import Counter, defaultdict

import numpy as np

# Robertson & Zaragoza's usual parameters.
K1 = 1.2
B = 0.75

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# Words so common that they only add noise to a lexical match.
STOPWORDS = frozenset(
    """a about an and are as at be but by can do does for from had has have how i if in into is it its
    me my no not of on or so such than that the their them then there these they this to was we were
    what when where which who why will with you your""".split()
)


def tokenize(text: str) -> list[str]:
    return [token for token in _TOKEN.findall(text.lower()) if token not in STOPWORDS]


class LexicalIndex:
    def __init__(self, ids: list[str], texts: list[str]) -> None:
        self.ids = ids
        lengths = np.zeros(len(texts), dtype=np.float32)
        postings: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for position, text in enumerate(texts):
            counts = Counter(tokenize(text))
            lengths[position] = sum(counts.values())
            for term, count in counts.items():
                rows, frequencies = postings[term]
                rows.append(position)
                frequencies.append(count)
        average = float(lengths.mean()) if len(texts) else 0.0
        self._length_norm = K1 * (1 - B + B * lengths / average) if average else lengths
        total = len(texts)
        self._postings = {
            term: (
                np.asarray(rows, dtype=np.int64),
                np.asarray(frequencies, dtype=np.float32),
                math.log(1 + (total - len(rows) + 0.5) / (len(rows) + 0.5)),
            )
            for term, (rows, frequencies) in postings.items()
        }

    def top(self, query: str, limit: int) -> list[tuple[float, str]]:
        """(score, id) of the best `limit` passages that share a term with the query."""
        scores = np.zeros(len(self.ids), dtype=np.float32)
        for term in set(tokenize(query)):
            if term not in self._postings:
                continue
            rows, frequencies, idf = self._postings[term]
            scores[rows] += idf * frequencies * (K1 + 1) / (frequencies + self._length_norm[rows])
        matching = np.flatnonzero(scores > 0)
        if not len(matching):
            return []
        best = matching[np.argsort(-scores[matching], kind="stable")[:limit]]
        return [(float(scores[row]), self.ids[row]) for row in best]
