"""A stored version in another format for download: CSV or Parquet. Runs in the sandbox
(app/core/sandbox.py) like every reading of a dataset file, batch by batch.

Parquet columns take the types the profile found (integer, number, boolean; a CSV's empty
field is then missing), every other column is text: lists, objects and mixed values as
their JSON. CSV fields are the values' text: booleans true/false, lists and objects JSON."""

import csv
import json
import math
from pathlib import Path

from app.datasets.reading import UnreadableDataset, batches

TARGETS = ("csv", "parquet")


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def csv_field(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return _json(value)
    return str(value)


def _to_csv(path: Path, file_format: str, names: list[str], output: Path) -> None:
    with output.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(names)
        for batch in batches(path, file_format):
            for row in batch.rows:
                writer.writerow([csv_field(value) for value in row] + [""] * (len(names) - len(row)))


def _missing(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _typed(kind: str, from_text: bool):
    """The Parquet type of a profiled column, and how one of its values becomes one."""
    import pyarrow as pa

    if kind == "integer":
        return pa.int64(), lambda v: None if _missing(v) else int(v)
    if kind == "number":
        return pa.float64(), lambda v: None if _missing(v) else float(v)
    if kind == "boolean":
        if from_text:
            return pa.bool_(), lambda v: None if _missing(v) else v.strip().lower() == "true"
        return pa.bool_(), lambda v: v
    return pa.string(), lambda v: None if v is None else csv_field(v)


def _to_parquet(path: Path, file_format: str, columns: list[dict], output: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    typed = [_typed(column["type"], from_text=file_format == "csv") for column in columns]
    schema = pa.schema([(column["name"], arrow_type) for column, (arrow_type, _) in zip(columns, typed, strict=True)])
    with pq.ParquetWriter(output, schema) as writer:
        for batch in batches(path, file_format):
            arrays = []
            for index, (column, (arrow_type, convert)) in enumerate(zip(columns, typed, strict=True)):
                values = [convert(row[index]) if index < len(row) else None for row in batch.rows]
                try:
                    arrays.append(pa.array(values, type=arrow_type))
                except (pa.ArrowInvalid, OverflowError):
                    raise UnreadableDataset(
                        f"Column {column['name']!r} holds integers beyond 64 bits, which Parquet cannot hold;"
                        " download the version as CSV."
                    ) from None
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def convert(request: dict) -> dict:
    """Sandbox entry: the file at `path` (format `format`, profiled `columns`) as `target` into `output`."""
    path, output, file_format = Path(request["path"]), Path(request["output"]), request["format"]
    if request["target"] == "csv":
        _to_csv(path, file_format, [column["name"] for column in request["columns"]], output)
    else:
        _to_parquet(path, file_format, request["columns"], output)
    return {"size_bytes": output.stat().st_size}
