"""A dataset file's profile: schema, row count, first rows and the data-quality figures
that do not depend on a chosen label column. Runs in the sandbox (app/core/sandbox.py), one
pass over the file in batches; memory grows with rows only by a hash and a length per value.

Rows are numbered from 1 in the order of the file, not counting a CSV's header."""

import math
from array import array
from pathlib import Path

from app.datasets.reading import Batch, UnreadableDataset, batches, sniff

PREVIEW_ROWS = 20
PREVIEW_CHARACTERS = 300
# A column with more distinct values than this cannot be a label column; its counts are dropped.
MAX_LABELS = 1000
TOKENIZE_BATCH = 256
# How much of a long text is tokenized first: most texts are over the limit well within it.
START_CHARACTERS_PER_PIECE = 6

_BOOLEANS = {"true", "false"}


def _text_kind(value: str) -> str:
    """What a CSV field holds, as its text says."""
    stripped = value.strip()
    if stripped.lower() in _BOOLEANS:
        return "boolean"
    try:
        int(stripped)
        return "integer"
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        return "text"
    return "number" if math.isfinite(number) else "text"


def _kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__.lower()


def _missing(value) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
    )


def preview_value(value):
    """A value as JSON can carry it, and short enough to show."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= PREVIEW_CHARACTERS else text[:PREVIEW_CHARACTERS] + "…"


class _WordPieces:
    """Whether texts are over the embedder's word-piece limit: counted with its tokenizer, or
    bounded by characters without it. A word piece holds at least one character and the
    tokenizer adds two ([CLS], [SEP]), so a text of at most max_length - 2 characters is never
    over: only longer ones are tokenized, and of a long text first only its start, cut after a
    whole word (words are split independently, so a start never has more pieces than the text)."""

    def __init__(self, tokenizer_path: str | None, max_length: int) -> None:
        self.max_length = max_length
        self.tokenizer = None
        if tokenizer_path and Path(tokenizer_path).is_file():
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(tokenizer_path)
            self.tokenizer.no_truncation()
            self.tokenizer.no_padding()

    @property
    def method(self) -> str:
        if self.tokenizer is not None:
            return "word pieces, counted with the embedder's tokenizer"
        return "characters, an upper bound on word pieces (the embedder's tokenizer is not installed)"

    def _start(self, text: str) -> str:
        limit = self.max_length * START_CHARACTERS_PER_PIECE
        if len(text) <= limit:
            return text
        cut = max(text.rfind(space, 0, limit) for space in (" ", "\n", "\t"))
        return text[:cut] if cut > 0 else text

    def _over(self, texts: list[str]) -> list[bool]:
        over = []
        for start in range(0, len(texts), TOKENIZE_BATCH):
            encodings = self.tokenizer.encode_batch(texts[start : start + TOKENIZE_BATCH], add_special_tokens=True)
            over.extend(len(encoding.ids) > self.max_length for encoding in encodings)
        return over

    def over_limit(self, texts: list[str]) -> list[bool]:
        over = [len(text) > self.max_length - 2 for text in texts]
        if self.tokenizer is None:
            return over
        long_ones = [i for i, is_long in enumerate(over) if is_long]
        starts = [self._start(texts[i]) for i in long_ones]
        undecided = []
        for i, start, start_over in zip(long_ones, starts, self._over(starts), strict=True):
            over[i] = start_over
            if not start_over and len(start) < len(texts[i]):
                undecided.append(i)
        for i, whole_over in zip(undecided, self._over([texts[i] for i in undecided]), strict=True):
            over[i] = whole_over
        return over


class _Column:
    def __init__(self, name: str, rows_before: int, typed_as_text: bool) -> None:
        self.name = name
        # A JSONL column that first appears at row N was missing from every row before it.
        self.missing = rows_before
        self.first_missing_row = 1 if rows_before else 0
        self.kinds: set[str] = set()
        self.counts: dict[str, int] | None = {}
        self.lengths = array("I")
        self.over_limit = 0
        self.first_over_limit_row = 0
        # CSV fields are all text: their kind is what the text says.
        self.typed_as_text = typed_as_text

    def add(self, values: list, first_row: int, word_pieces: _WordPieces) -> None:
        texts: list[str] = []
        text_rows: list[int] = []
        for offset, value in enumerate(values):
            if _missing(value):
                self.missing += 1
                self.first_missing_row = self.first_missing_row or first_row + offset
                continue
            kind = _text_kind(value) if self.typed_as_text else _kind(value)
            self.kinds.add(kind)
            if isinstance(value, str):
                self.lengths.append(len(value))
                texts.append(value)
                text_rows.append(first_row + offset)
            if self.counts is not None:
                if kind in ("list", "object"):
                    self.counts = None
                else:
                    key = value.strip() if isinstance(value, str) else str(value)
                    self.counts[key] = self.counts.get(key, 0) + 1
                    if len(self.counts) > MAX_LABELS:
                        self.counts = None
        for row, over in zip(text_rows, word_pieces.over_limit(texts), strict=True):
            if over:
                self.over_limit += 1
                self.first_over_limit_row = self.first_over_limit_row or row

    @property
    def type(self) -> str:
        if not self.kinds:
            return "empty"
        if len(self.kinds) == 1:
            return next(iter(self.kinds))
        if self.kinds == {"integer", "number"}:
            return "number"
        return "text" if self.typed_as_text else "mixed"

    def report(self) -> dict:
        report = {
            "name": self.name,
            "type": self.type,
            "missing": self.missing,
            "first_missing_row": self.first_missing_row or None,
            "distinct": len(self.counts) if self.counts is not None else None,
            "counts": self.counts,
            "text": None,
        }
        if self.type == "text" and self.lengths:
            ordered = sorted(self.lengths)
            report["text"] = {
                "min": ordered[0],
                "median": ordered[len(ordered) // 2],
                "max": ordered[-1],
                "over_limit": self.over_limit,
                "first_over_limit_row": self.first_over_limit_row or None,
            }
        return report


def _row_hash(row: tuple) -> int:
    # Trailing missing values dropped: a JSONL row from before a column appeared equals
    # the same row written later with that column null.
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    row = row[:end]
    try:
        return hash(row)
    except TypeError:  # lists and objects of JSONL and Parquet
        return hash(repr(row))


def profile_file(path: Path, filename: str, *, tokenizer_path: str | None, max_word_pieces: int) -> dict:
    file_format = sniff(path, filename)
    word_pieces = _WordPieces(tokenizer_path, max_word_pieces)
    columns: list[_Column] = []
    preview: list[list] = []
    hashes = array("q")
    row_count = 0
    names: list[str] = []
    batch: Batch
    for batch in batches(path, file_format):
        names = batch.columns
        for name in names[len(columns) :]:
            columns.append(_Column(name, row_count, typed_as_text=file_format == "csv"))
        for row in batch.rows:
            hashes.append(_row_hash(row))
            if len(preview) < PREVIEW_ROWS:
                preview.append([preview_value(value) for value in row])
        for index, column in enumerate(columns):
            values = [row[index] if index < len(row) else None for row in batch.rows]
            column.add(values, row_count + 1, word_pieces)
        row_count += len(batch.rows)
    if row_count == 0:
        if file_format == "csv" and names:
            raise UnreadableDataset("The file has a header but no rows.")
        raise UnreadableDataset("The file has no rows.")
    return {
        "format": file_format,
        "row_count": row_count,
        "columns": [column.report() for column in columns],
        "preview": [row + [None] * (len(columns) - len(row)) for row in preview],
        "duplicate_rows": row_count - len(set(hashes)),
        "max_word_pieces": max_word_pieces,
        "length_unit": word_pieces.method,
    }


def profile(request: dict) -> dict:
    """The sandbox's entry point."""
    return profile_file(
        Path(request["path"]),
        request["filename"],
        tokenizer_path=request.get("tokenizer_path"),
        max_word_pieces=request["max_word_pieces"],
    )
