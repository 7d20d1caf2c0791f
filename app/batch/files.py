"""A batch job's files. The two steps that read the user's dataset file run in the sandbox
(app/core/sandbox.py), like every other reading of it: `extract_texts` copies the text column
into Strata's own Parquet file, one row group per chunk, which the worker then reads in
process; `assemble_result` writes the result: the original rows, in the source's format,
with the scored columns. Chunk outputs are Strata's own Parquet files (`write_chunk`).

Rows are numbered from 1 in file order, as everywhere in the datasets domain."""

import csv
import hashlib
import json
import math
import os
import uuid
from pathlib import Path

from app.datasets.reading import BATCH_ROWS, READ_BYTES, UnreadableDataset, batches

# The columns a result adds; a source column of the same name is replaced by the new one.
NEW_COLUMNS = ("prediction", "confidence", "model_version", "error")
CONFIDENCE_DIGITS = 6


# ---------------------------------------------------------------- texts


def text_of(value) -> tuple[str | None, str | None]:
    """The text to score in a cell, or why there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, "no text: the value is missing"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None, "not text: the value is binary data that is not UTF-8"
    if isinstance(value, list | tuple | dict):
        return None, f"not text: the value is {'an object' if isinstance(value, dict) else 'a list'}"
    text = value if isinstance(value, str) else (str(value).lower() if isinstance(value, bool) else str(value))
    if not text.strip():
        return None, "no text: the value is empty"
    return text, None


def _texts_schema():
    import pyarrow as pa

    return pa.schema([("text", pa.string()), ("problem", pa.string())])


def extract_texts(request: dict) -> dict:
    """Sandbox entry: the text column of the dataset file into `output` (Parquet, a row group
    of `chunk_size` rows per chunk). Returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path, column, chunk_size = Path(request["path"]), request["text_column"], request["chunk_size"]
    texts: list[str | None] = []
    problems: list[str | None] = []
    rows = 0
    with pq.ParquetWriter(request["output"], _texts_schema()) as writer:

        def flush(count: int) -> None:
            table = pa.table({"text": texts[:count], "problem": problems[:count]}, schema=_texts_schema())
            writer.write_table(table, row_group_size=chunk_size)
            del texts[:count], problems[:count]

        for batch in batches(path, request["format"]):
            if column not in batch.columns:
                # A JSONL column appears with the first row that has it: rows before lack it.
                values = [None] * len(batch.rows)
            else:
                index = batch.columns.index(column)
                values = [row[index] if index < len(row) else None for row in batch.rows]
            for value in values:
                text, problem = text_of(value)
                texts.append(text)
                problems.append(problem)
            rows += len(values)
            while len(texts) >= chunk_size:
                flush(chunk_size)
        if texts:
            flush(len(texts))
    return {"rows": rows}


def read_chunk_texts(path: Path, index: int) -> tuple[list[str | None], list[str | None]]:
    """Chunk `index` of an extracted texts file: the texts and the problems of rows without one."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(path).read_row_group(index)
    return table.column("text").to_pylist(), table.column("problem").to_pylist()


# ---------------------------------------------------------------- chunk outputs


def _chunk_schema():
    import pyarrow as pa

    return pa.schema(
        [
            ("row", pa.int64()),
            ("prediction", pa.string()),
            ("confidence", pa.float64()),
            ("model_version", pa.int64()),
            ("error", pa.string()),
        ]
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def write_chunk(
    path: Path, *, first_row: int, outputs: list[tuple[str | None, float | None, str | None]], model_version: int
) -> str:
    """One chunk's output (row, prediction, confidence, model_version, error) written to a
    temporary file, flushed to disk and renamed into place: a reader finds all of it or none.
    Returns its sha256."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "row": list(range(first_row, first_row + len(outputs))),
            "prediction": [label for label, _, _ in outputs],
            "confidence": [None if c is None else round(c, CONFIDENCE_DIGITS) for _, c, _ in outputs],
            "model_version": [model_version] * len(outputs),
            "error": [error for _, _, error in outputs],
        },
        schema=_chunk_schema(),
    )
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        pq.write_table(table, temporary)
        with temporary.open("rb") as file:
            os.fsync(file.fileno())
        digest = sha256_of(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return digest


class _ChunkStream:
    """The chunk outputs in order, taken n rows at a time; each file checked against its sha256."""

    def __init__(self, chunks: list[dict]) -> None:
        self._chunks = iter(chunks)
        self._columns: dict[str, list] = {name: [] for name in ("row", *NEW_COLUMNS)}

    def _load_next(self) -> bool:
        import pyarrow.parquet as pq

        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        path = Path(chunk["path"])
        if not path.is_file() or sha256_of(path) != chunk["sha256"]:
            raise UnreadableDataset(
                f"The output of chunk {chunk['index'] + 1} is missing or damaged; start the batch again."
            )
        table = pq.read_table(path)
        for name in self._columns:
            self._columns[name].extend(table.column(name).to_pylist())
        return True

    def take(self, count: int) -> dict[str, list]:
        while len(self._columns["row"]) < count:
            if not self._load_next():
                raise UnreadableDataset("The dataset file has more rows than were scored; start the batch again.")
        taken = {name: values[:count] for name, values in self._columns.items()}
        for values in self._columns.values():
            del values[:count]
        return taken

    def finish(self) -> None:
        if self._columns["row"] or self._load_next():
            raise UnreadableDataset("The dataset file has fewer rows than were scored; start the batch again.")


# ---------------------------------------------------------------- result


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def _assemble_csv(source: Path, output: Path, stream: _ChunkStream) -> int:
    rows = 0
    with output.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        header_written = False
        for batch in batches(source, "csv"):
            kept = [i for i, name in enumerate(batch.columns) if name not in NEW_COLUMNS]
            if not header_written:
                writer.writerow([batch.columns[i] for i in kept] + list(NEW_COLUMNS))
                header_written = True
            scored = stream.take(len(batch.rows))
            for offset, row in enumerate(batch.rows):
                writer.writerow([row[i] for i in kept] + [_csv_cell(scored[name][offset]) for name in NEW_COLUMNS])
            rows += len(batch.rows)
    return rows


def _assemble_jsonl(source: Path, output: Path, stream: _ChunkStream) -> int:
    rows = 0
    with output.open("w", encoding="utf-8", newline="\n") as file:
        for batch in batches(source, "jsonl"):
            scored = stream.take(len(batch.rows))
            for offset, row in enumerate(batch.rows):
                # A row from before a column first appeared is shorter: it lacks that key.
                pairs = zip(batch.columns[: len(row)], row, strict=True)
                record = {name: value for name, value in pairs if name not in NEW_COLUMNS}
                record.update((name, scored[name][offset]) for name in NEW_COLUMNS)
                file.write(json.dumps(record, ensure_ascii=False) + "\n")
            rows += len(batch.rows)
    return rows


def _assemble_parquet(source: Path, output: Path, stream: _ChunkStream) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    new_fields = [field for field in _chunk_schema() if field.name in NEW_COLUMNS]
    rows = 0
    writer = None
    try:
        parquet = pq.ParquetFile(source)
        for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            kept = [name for name in record_batch.schema.names if name not in NEW_COLUMNS]
            scored = stream.take(record_batch.num_rows)
            table = pa.Table.from_batches([record_batch]).select(kept)
            for field in new_fields:
                table = table.append_column(field, pa.array(scored[field.name], type=field.type))
            if writer is None:
                writer = pq.ParquetWriter(output, table.schema)
            writer.write_table(table)
            rows += record_batch.num_rows
        if writer is None:  # no rows: the profile would refuse the result anyway
            raise UnreadableDataset("The Parquet file has no rows.")
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise UnreadableDataset(f"The Parquet file cannot be read again ({str(exc)[:300]}).") from None
    finally:
        if writer is not None:
            writer.close()
    return rows


ASSEMBLERS = {"csv": _assemble_csv, "jsonl": _assemble_jsonl, "parquet": _assemble_parquet}


def assemble_result(request: dict) -> dict:
    """Sandbox entry: the source rows with the scored columns (the chunk outputs, in order) in the
    source's format, into `output`. Returns the row count."""
    stream = _ChunkStream(request["chunks"])
    rows = ASSEMBLERS[request["format"]](Path(request["path"]), Path(request["output"]), stream)
    stream.finish()
    return {"rows": rows}
