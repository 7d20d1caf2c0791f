"""Data files to rows: what a file is (from its bytes; the name only tells CSV from JSONL),
then its rows in batches, so that no file is held in memory whole.

Runs inside the sandboxed profiler (app/datasets/profiling.py). Every problem a user can fix
raises UnreadableDataset with a message naming the line, row or column at fault."""

import codecs
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from app.core.errors import InvalidInput

SUPPORTED = "CSV, JSONL or Parquet"
FORMATS = ("csv", "jsonl", "parquet")
BATCH_ROWS = 5000
MAX_COLUMNS = 1000
READ_BYTES = 1 << 20

CLAIMED_BY_EXTENSION = {
    ".csv": "a CSV file",
    ".jsonl": "a JSONL file",
    ".ndjson": "a JSONL file",
    ".json": "a JSONL file",
    ".parquet": "a Parquet file",
}
FOREIGN_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook is one: save the sheet as CSV)"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"BZh", "a bzip2 archive (unpack it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file (save the sheet as CSV)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF executable)"),
    (b"MZ", "a Windows program"),
)


class UnreadableDataset(InvalidInput):
    """The file cannot become a dataset version, for a reason its uploader can act on."""


@dataclass
class Batch:
    """Rows in the order of the file; `columns` names the values of each row (a JSONL file
    may add columns as it goes: rows of earlier batches lack them)."""

    columns: list[str]
    rows: list[tuple] = field(default_factory=list)


def sniff(path: Path, filename: str) -> str:
    """The file's format from its bytes; raises UnreadableDataset for anything else."""
    extension = PurePath(filename).suffix.lower()
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(8192)
        file.seek(max(0, size - 4))
        tail = file.read(4)
    if not head.strip():
        raise UnreadableDataset("The file is empty.")
    if head.startswith(b"PAR1"):
        if tail != b"PAR1" or size < 12:
            raise UnreadableDataset("The Parquet file is damaged: it is cut short (it does not end with PAR1).")
        return "parquet"
    for magic, what in FOREIGN_MAGIC:
        if head.startswith(magic):
            raise UnreadableDataset(_foreign(what, extension))
    if b"\x00" in head:
        raise UnreadableDataset(_foreign("binary data of an unknown kind", extension))
    if extension == ".parquet":
        raise UnreadableDataset("This file is named .parquet but is not a Parquet file (it does not start with PAR1).")
    if extension in (".jsonl", ".ndjson", ".json"):
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            raise UnreadableDataset(
                "This file is one JSON array; Strata reads JSONL, one JSON object per line. Write each"
                " element of the array on a line of its own."
            )
        return "jsonl"
    if extension == ".csv":
        return "csv"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def _foreign(what: str, extension: str) -> str:
    claimed = CLAIMED_BY_EXTENSION.get(extension)
    named = f", not {claimed}" if claimed else ", which Strata cannot read as a dataset"
    return f"This file is {what}{named}. Upload {SUPPORTED}."


def check_utf8(path: Path) -> None:
    """Text formats must be UTF-8: the first byte that is not is named by line and offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    lines = 1
    with path.open("rb") as file:
        while block := file.read(READ_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line = lines + block.count(b"\n", 0, exc.start)
                raise UnreadableDataset(
                    f"The file is not UTF-8 text: byte 0x{block[exc.start]:02X} at line {line} (byte {bad + 1})"
                    " is not valid UTF-8; it may be Latin-1 or Windows-1252. Save it as UTF-8 (in Excel:"
                    " 'CSV UTF-8') and upload it again."
                ) from None
            offset += len(block)
            lines += block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UnreadableDataset(
            f"The file is not UTF-8 text: it ends in the middle of a character (line {lines})."
            " Save it as UTF-8 and upload it again."
        ) from None


def batches(path: Path, file_format: str) -> Iterator[Batch]:
    if file_format == "csv":
        check_utf8(path)
        return _csv_batches(path)
    if file_format == "jsonl":
        check_utf8(path)
        return _jsonl_batches(path)
    return _parquet_batches(path)


def _check_columns(names: list[str], where: str) -> None:
    if len(names) > MAX_COLUMNS:
        raise UnreadableDataset(f"The file has {len(names)} columns, more than the {MAX_COLUMNS} Strata reads.")
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if not name.strip():
            raise UnreadableDataset(f"Column {number} has no name in the {where}.")
        if name in seen:
            raise UnreadableDataset(
                f"The column name {name!r} appears twice in the {where} (columns {seen[name]} and {number})."
            )
        seen[name] = number


# ------------------------------------------------------------------------ CSV


def _csv_batches(path: Path) -> Iterator[Batch]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    ragged = []

    def on_invalid_row(row) -> str:
        ragged.append(row)
        return "error"

    def open_reader(column_types=None):
        return pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=READ_BYTES),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid_row, newlines_in_values=True),
            # Every value as the text it is: types are inferred over the whole file
            # (app/datasets/profiling.py), not from its first block.
            convert_options=pa_csv.ConvertOptions(column_types=column_types, strings_can_be_null=False),
        )

    def explain(exc: Exception) -> UnreadableDataset:
        if ragged:
            row = ragged[0]
            where = f"Row {row.number}" if row.number else "A row"
            return UnreadableDataset(
                f"{where} of the file (the header is row 1) has {row.actual_columns} fields, expected"
                f" {row.expected_columns} like the header: {row.text[:80]!r}. Quote values that contain commas."
            )
        return UnreadableDataset(f"The CSV file cannot be read: {str(exc)[:300]}")

    readers = []
    try:
        readers.append(open_reader())
        names = readers[0].schema.names
        _check_columns(names, "header")
        readers.append(open_reader({name: pa.string() for name in names}))
        yielded = False
        for record_batch in readers[1]:
            yielded = True
            yield Batch(names, list(zip(*(column.to_pylist() for column in record_batch.columns), strict=True)))
        if not yielded:
            yield Batch(names)  # a header without rows: the profile says so
    except (pa.ArrowInvalid, pa.ArrowTypeError, StopIteration) as exc:
        raise explain(exc) from None
    finally:
        # At once, not when collected: a failed read does not keep the file and its row handler.
        for reader in readers:
            reader.close()


# ---------------------------------------------------------------------- JSONL


def _json_kind(value) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) and not isinstance(value, bool) else "a boolean"


def _jsonl_batches(path: Path) -> Iterator[Batch]:
    columns: list[str] = []
    known: set[str] = set()
    batch = Batch(columns)
    with path.open("r", encoding="utf-8-sig", newline="") as file:
        for number, line in enumerate(file, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UnreadableDataset(
                    f"Line {number} is not valid JSON: {exc.msg} at column {exc.colno}. Each line of a JSONL"
                    " file must be one JSON object."
                ) from None
            if not isinstance(record, dict):
                raise UnreadableDataset(
                    f"Line {number} is {_json_kind(record)}, not a JSON object; each line of a JSONL file must"
                    ' be one object, like {"text": "...", "label": "..."}.'
                )
            for key in record:
                if key not in known:
                    known.add(key)
                    columns.append(key)
                    _check_columns(columns, f"file (line {number})")
            batch.rows.append(tuple(record.get(column) for column in columns))
            if len(batch.rows) >= BATCH_ROWS:
                yield batch
                batch = Batch(columns)
    if batch.rows:
        yield batch


# -------------------------------------------------------------------- Parquet


def _parquet_batches(path: Path) -> Iterator[Batch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        _check_columns(names, "file's schema")
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield Batch(names, list(zip(*(column.to_pylist() for column in record_batch.columns), strict=True)))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableDataset(f"The Parquet file is damaged and cannot be read ({str(exc)[:300]}).") from None


# ------------------------------------------------------------- chosen columns


def _plain(value):
    """A value as JSON carries it: a NaN is missing, and what JSON has no type for is its text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def read_columns(request: dict) -> dict:
    """The sandbox's entry point for jobs that read a stored version (training, scoring): the
    values of the requested columns in the order of the file, None where a row has no value."""
    wanted: list[str] = request["columns"]
    values: dict[str, list] = {name: [] for name in wanted}
    seen: set[str] = set()
    for batch in batches(Path(request["path"]), request["format"]):
        position = {name: index for index, name in enumerate(batch.columns)}
        seen.update(position)
        for name in wanted:
            index = position.get(name)
            values[name].extend(
                _plain(row[index]) if index is not None and index < len(row) else None for row in batch.rows
            )
    absent = [name for name in wanted if name not in seen]
    if absent:
        raise UnreadableDataset(f"The file has no column {absent[0]!r}.")
    return {"columns": values}
