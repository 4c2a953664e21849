"""The log store: every session, slate, choice and rating, from people and simulated users, in one SQLite file.

`schema` (tables, migrations, refusing files that are not ours), `rows` (checks and codecs), `store` (`LogStore`:
opening and writing), `reads` (consistent reads), `transfer` (Parquet and JSONL out and in), `pairwise`
(Pick-a-Pic-style imports); `export` and `import_` serve `pasta logs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pasta.logbook.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SQLITE_MAGIC, TABLES, LogStoreError
from pasta.logbook.store import LogStore

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLITE_MAGIC",
    "TABLES",
    "LogStore",
    "LogStoreError",
    "export",
    "import_",
]


def export(db: str | Path, out: str | Path, fmt: str = "parquet") -> dict[str, int]:
    """Export an existing log store: `fmt` 'parquet' (a folder of tables) or 'jsonl' (one episode per line)."""
    if fmt not in ("parquet", "jsonl"):
        raise ValueError(f"fmt={fmt!r} is not an export format: use parquet or jsonl")
    with LogStore(db, create=False) as store:
        return store.export_parquet(out) if fmt == "parquet" else {"episodes": store.export_jsonl(out)}


def import_(db: str | Path, src: str | Path, **options: Any) -> dict[str, int]:
    """Import into a log store (created if missing) by what `src` is: a folder from `export_parquet`, a `.jsonl`
    file of episodes, or a `.parquet` file of pairwise preferences (`options` go to `import_pairwise_parquet`)."""
    src = Path(src)
    if not src.exists():
        raise ValueError(f"nothing to import: {src} does not exist")
    if not (src.is_dir() or src.suffix in (".jsonl", ".json", ".parquet")):
        raise ValueError(f"cannot tell what {src} holds: give an export folder, a .jsonl or a .parquet file")
    with LogStore(db) as store:
        if src.is_dir():
            return store.import_parquet(src)
        if src.suffix == ".parquet":
            return {"pairwise": store.import_pairwise_parquet(src, **options)}
        return {"episodes": store.import_jsonl(src)}
