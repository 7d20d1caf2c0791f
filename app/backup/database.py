"""The database part of a backup: every table's rows as JSON lines, read from one snapshot
and written through SQLAlchemy, so that a SQLite backup restores into PostgreSQL and back.

pg_dump was the other choice: it needs a client no older than the server and its output
only restores into PostgreSQL. The tables are read by reflection, not from the code's
models, so a database that an older release migrated (the backup `strata migrate` takes
before upgrading) is read as it is."""

import base64
import json
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, MetaData, Table, func, inspect, make_url, select, text
from sqlalchemy import types as sqltypes

VERSION_TABLE = "alembic_version"
INSERT_BATCH = 500
KNOWLEDGE_TABLE = "knowledge_base"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decoder(column_type: sqltypes.TypeEngine):
    """How a JSON value goes back into a column of the target database's type."""
    if isinstance(column_type, sqltypes.DateTime):
        return datetime.fromisoformat
    if isinstance(column_type, sqltypes.Date):
        return date.fromisoformat
    if isinstance(column_type, sqltypes.Time):
        return time.fromisoformat
    if isinstance(column_type, sqltypes._Binary):
        return base64.b64decode
    if isinstance(column_type, sqltypes.Numeric) and column_type.asdecimal:
        return Decimal
    return None


def reflect(connection: Connection) -> list[Table]:
    """Strata's tables in the order their foreign keys allow inserting them."""
    metadata = MetaData()
    metadata.reflect(connection)
    return [table for table in metadata.sorted_tables if table.name != VERSION_TABLE]


def snapshot(engine: Engine) -> Connection:
    """A connection that reads one consistent state without holding writers back: PostgreSQL's
    repeatable-read snapshot; on SQLite (WAL) a read transaction sees the state of its first read
    while the web and workers go on committing."""
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    else:
        connection.exec_driver_sql("BEGIN")
    return connection


def revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def knowledge_collections(connection: Connection) -> list[str]:
    """The Chroma collections the knowledge bases in this snapshot name."""
    if not inspect(connection).has_table(KNOWLEDGE_TABLE):
        return []
    return list(connection.execute(text(f"SELECT collection FROM {KNOWLEDGE_TABLE}")).scalars())


def dump_table(connection: Connection, table: Table, out: IO[str]) -> int:
    """Writes the table's rows, one JSON object per line, in primary-key order; returns the count."""
    names = [column.name for column in table.columns]
    statement = select(table).order_by(*table.primary_key.columns)
    rows = 0
    for row in connection.execution_options(stream_results=True, yield_per=1000).execute(statement):
        out.write(json.dumps({name: _encode(value) for name, value in zip(names, row, strict=True)}) + "\n")
        rows += 1
    return rows


def _batches(lines: Iterator[str], table: Table) -> Iterator[list[dict]]:
    decoders = {column.name: _decoder(column.type) for column in table.columns}
    batch: list[dict] = []
    for line in lines:
        row = json.loads(line)
        for name, value in row.items():
            decode = decoders.get(name)
            if decode is not None and value is not None:
                row[name] = decode(value)
        batch.append(row)
        if len(batch) == INSERT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def load_table(connection: Connection, table: Table, path: Path, rewrite=None) -> int:
    """Inserts the rows dumped to `path`; `rewrite(table_name, row)` may adjust each row first."""
    rows = 0
    with path.open(encoding="utf-8") as lines:
        for batch in _batches(lines, table):
            if rewrite is not None:
                batch = [rewrite(table.name, row) for row in batch]
            connection.execute(table.insert(), batch)
            rows += len(batch)
    if connection.dialect.name == "postgresql":
        _advance_sequences(connection, table)
    return rows


def _advance_sequences(connection: Connection, table: Table) -> None:
    """Rows came with their ids: the next generated id must come after them."""
    for column in table.primary_key.columns:
        sequence = connection.execute(
            text("SELECT pg_get_serial_sequence(:table, :column)"), {"table": table.name, "column": column.name}
        ).scalar()
        if sequence:
            highest = connection.execute(select(func.max(column))).scalar()
            connection.execute(
                text("SELECT setval(:sequence, :value, :called)"),
                {"sequence": sequence, "value": highest or 1, "called": highest is not None},
            )


def row_counts(connection: Connection) -> dict[str, int]:
    return {
        table.name: connection.execute(select(func.count()).select_from(table)).scalar()
        for table in reflect(connection)
    }


def drop_everything(connection: Connection) -> None:
    """For `strata restore --force`: the target's tables go, to be created again by the migrations."""
    metadata = MetaData()
    metadata.reflect(connection)
    metadata.drop_all(connection)


def sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None


def copy_sqlite(source: Path, target: Path) -> None:
    """Through SQLite's online backup API: a consistent copy while others may write."""
    with sqlite3.connect(source) as reader, sqlite3.connect(target) as writer:
        reader.backup(writer)
    reader.close()
    writer.close()
