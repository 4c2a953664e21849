"""The log store: every session, slate, choice and rating, from people and simulated users, in one SQLite file.

`schema` (tables, migrations, refusing files that are not ours), `rows` (checks and codecs), `store` (`LogStore`:
writes and consistent reads), `transfer` (Parquet and JSONL out and in), `pairwise` (Pick-a-Pic-style imports).
"""

from pasta.logbook.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SQLITE_MAGIC, TABLES, LogStoreError
from pasta.logbook.store import LogStore, export, import_

__all__ = ["APPLICATION_ID", "MIGRATIONS", "SCHEMA_VERSION", "SQLITE_MAGIC", "TABLES", "LogStore", "LogStoreError",
           "export", "import_"]
