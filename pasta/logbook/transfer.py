"""Moving logs between machines: Parquet tables and JSONL episodes out and back in. Imports are idempotent (natural
keys and INSERT OR IGNORE) and all or nothing, so merging the same logs twice never duplicates a row."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pasta.logbook import pairwise
from pasta.logbook import schema as log_schema
from pasta.logbook.rows import _arrow_type, _export_row, _import_row, _insert_episode, _jsonable
from pasta.logbook.schema import _AUTO_IDS, TABLES

if TYPE_CHECKING:
    from pasta.logbook.store import LogStore


def export_parquet(store: LogStore, folder: str | Path) -> dict[str, int]:
    """Write one `<table>.parquet` per table from one snapshot; returns rows per table. Embeddings become
    list<float32> columns (slates: list<list<float32>>, M images x D)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    with store._snapshot() as conn:
        for table in TABLES:
            columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
            schema = pa.schema(
                [(c["name"], _arrow_type(table, c["name"], c["type"])) for c in columns],
                metadata={"pasta.table": table, "pasta.schema_version": str(len(log_schema.MIGRATIONS))},
            )
            tmp = folder / f"{table}.parquet.tmp"
            written[table] = 0
            with pq.ParquetWriter(tmp, schema) as writer:
                cursor = conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
                while rows := cursor.fetchmany(10_000):
                    data = [_export_row(table, dict(r)) for r in rows]
                    writer.write_table(pa.Table.from_pylist(data, schema=schema))
                    written[table] += len(rows)
            tmp.replace(folder / f"{table}.parquet")
    return written


def import_parquet(store: LogStore, folder: str | Path) -> dict[str, int]:
    """Import the tables `export_parquet` wrote, all or nothing; rows already present are skipped. Returns new
    rows per table."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    files = {t: folder / f"{t}.parquet" for t in TABLES if (folder / f"{t}.parquet").is_file()}
    if not files:
        raise ValueError(f"{folder} holds no PASTA tables (expected files such as sessions.parquet)")
    inserted = {}
    with store._write() as conn:
        for table, file in files.items():
            parquet = pq.ParquetFile(file)
            version = int((parquet.schema_arrow.metadata or {}).get(b"pasta.schema_version", b"0"))
            if version > len(log_schema.MIGRATIONS):
                raise ValueError(
                    f"{file} was exported with schema {version}; this code knows up to "
                    f"{len(log_schema.MIGRATIONS)}: upgrade pasta to import it"
                )
            known = {c[1] for c in conn.execute(f"PRAGMA table_info({table})")} - (
                {"id"} if table in _AUTO_IDS else set()
            )
            unknown = set(parquet.schema_arrow.names) - known - {"id"}
            if unknown:
                raise ValueError(f"{file} has columns the {table} table does not: {', '.join(sorted(unknown))}")
            names = [n for n in parquet.schema_arrow.names if n in known]
            sql = f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            before = conn.total_changes
            try:
                for batch in parquet.iter_batches(batch_size=10_000, columns=names):
                    conn.executemany(
                        sql, [[row[n] for n in names] for row in (_import_row(table, r) for r in batch.to_pylist())]
                    )
            except sqlite3.IntegrityError as e:
                raise ValueError(f"{file}: rows do not fit the log store ({e}); nothing was imported") from e
            inserted[table] = conn.total_changes - before
    return inserted


def export_jsonl(store: LogStore, path: str | Path, source: str | None = None) -> int:
    """Write one JSON object per session episode (see `episodes`); returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, count = path.with_name(path.name + ".tmp"), 0
    with tmp.open("w", encoding="utf-8") as f:
        for episode in store.episodes(source):
            f.write(json.dumps(_jsonable(episode), ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def import_jsonl(store: LogStore, path: str | Path) -> int:
    """Import episodes written by `export_jsonl`, all or nothing; returns how many sessions were new."""
    path, new = Path(path), 0
    with store._write() as conn, path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                new += _insert_episode(conn, json.loads(line))
            except (ValueError, KeyError, TypeError, sqlite3.IntegrityError) as e:
                raise ValueError(f"{path}, line {number}: not a PASTA episode ({e}); nothing was imported") from e
    return new


class LogTransfers:
    """The export and import methods of `LogStore` (the functions above, and `pasta.logbook.pairwise`)."""

    def export_parquet(self, folder: str | Path) -> dict[str, int]:
        """Write one `<table>.parquet` per table from one snapshot; returns rows per table."""
        return export_parquet(self, folder)

    def import_parquet(self, folder: str | Path) -> dict[str, int]:
        """Import the tables `export_parquet` wrote, all or nothing; returns new rows per table."""
        return import_parquet(self, folder)

    def export_jsonl(self, path: str | Path, source: str | None = None) -> int:
        """Write one JSON object per session episode (see `episodes`); returns the number written."""
        return export_jsonl(self, path, source)

    def import_jsonl(self, path: str | Path) -> int:
        """Import episodes written by `export_jsonl`, all or nothing; returns how many sessions were new."""
        return import_jsonl(self, path)

    def import_pairwise_parquet(
        self, path: str | Path, mapping: Mapping[str, str] | None = None, **options: Any
    ) -> int:
        """Import Pick-a-Pic-style pairwise preferences (see `pasta.logbook.pairwise.import_pairwise_parquet`)."""
        return pairwise.import_pairwise_parquet(self, path, mapping, **options)
