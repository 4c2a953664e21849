"""The log store's file format: its tables, the migrations between schema versions, and the first look at a file
that refuses anything that is not a PASTA log store before a byte is written to it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

APPLICATION_ID = 0x50415354
"""`PRAGMA application_id` of every PASTA log store ("PAST" in ASCII): tells our files from other SQLite files."""
SQLITE_MAGIC = b"SQLite format 3\x00"
USER_KINDS = ("person", "simulated")
TABLES = (
    "users",
    "sessions",
    "turns",
    "candidates",
    "slates",
    "choices",
    "model_versions",
    "refusals",
    "pairwise",
    "favourites",
)
"""Data tables in foreign-key order: imports insert parents first."""


class LogStoreError(RuntimeError):
    """The file cannot be used as a log store; the message names it and says why. The file was left untouched."""


_SCHEMA_V1 = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE users (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('person', 'simulated')),
        created REAL NOT NULL,
        attributes TEXT NOT NULL DEFAULT '{}')""",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT REFERENCES users(id),
        initial_prompt TEXT NOT NULL,
        seed INTEGER NOT NULL,
        created REAL NOT NULL,
        consent INTEGER NOT NULL DEFAULT 0 CHECK (consent IN (0, 1)),
        source TEXT NOT NULL DEFAULT 'app',
        settings TEXT NOT NULL DEFAULT '{}')""",
    "CREATE INDEX sessions_by_user ON sessions(user_id)",
    "CREATE INDEX sessions_by_source ON sessions(source, created)",
    """CREATE TABLE turns (
        session_id TEXT NOT NULL REFERENCES sessions(id),
        turn_index INTEGER NOT NULL CHECK (turn_index >= 0),
        prompt TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (session_id, turn_index))""",
    """CREATE TABLE candidates (
        session_id TEXT NOT NULL,
        turn_index INTEGER NOT NULL,
        idx INTEGER NOT NULL CHECK (idx >= 0),
        text TEXT NOT NULL,
        category TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        score REAL,
        PRIMARY KEY (session_id, turn_index, idx),
        FOREIGN KEY (session_id, turn_index) REFERENCES turns(session_id, turn_index))""",
    """CREATE TABLE slates (
        session_id TEXT NOT NULL,
        turn_index INTEGER NOT NULL,
        column INTEGER NOT NULL CHECK (column >= 0),
        candidate_idx INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        embedding_dim INTEGER,
        image_embeddings BLOB,
        image_paths TEXT,
        PRIMARY KEY (session_id, turn_index, column),
        FOREIGN KEY (session_id, turn_index, candidate_idx) REFERENCES candidates(session_id, turn_index, idx))""",
    """CREATE TABLE choices (
        session_id TEXT NOT NULL,
        turn_index INTEGER NOT NULL,
        column INTEGER NOT NULL,
        rating INTEGER CHECK (rating BETWEEN 1 AND 5),
        created REAL NOT NULL,
        rated REAL,
        response_seconds REAL,
        PRIMARY KEY (session_id, turn_index),
        FOREIGN KEY (session_id, turn_index, column) REFERENCES slates(session_id, turn_index, column))""",
    """CREATE TABLE model_versions (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        metrics TEXT NOT NULL DEFAULT '{}',
        trained_on TEXT NOT NULL DEFAULT '{}')""",
    "CREATE INDEX model_versions_by_kind ON model_versions(kind, created)",
    """CREATE TABLE refusals (
        id INTEGER PRIMARY KEY,
        created REAL NOT NULL,
        session_id TEXT,
        text TEXT NOT NULL,
        reason TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX refusals_natural_key ON refusals(created, ifnull(session_id, ''), text)",
    """CREATE TABLE pairwise (
        id INTEGER PRIMARY KEY,
        user_id TEXT,
        prompt TEXT NOT NULL,
        image_a TEXT NOT NULL,
        image_b TEXT NOT NULL,
        embedding_a BLOB,
        embedding_b BLOB,
        label REAL NOT NULL CHECK (label BETWEEN 0 AND 1),
        source TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX pairwise_natural_key ON pairwise(source, prompt, image_a, image_b, ifnull(user_id, ''))",
]


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1:
        conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('created', ?), ('creator', 'pasta')", (_now_iso(),))


def _add_resume_tokens_and_favourites_v2(conn: sqlite3.Connection) -> None:
    """Schema 2: a resume token per session (its SHA-256 digest only): knowing a session's id is not enough to act
    in it; the token is a secret the person's browser keeps (not in TABLES: never exported, imported or counted).
    And the favourites a person marks (image -1: the whole column), so that a resumed session keeps them."""
    conn.execute("""CREATE TABLE resume_tokens (
        session_id TEXT PRIMARY KEY REFERENCES sessions(id),
        digest BLOB NOT NULL,
        created REAL NOT NULL)""")
    conn.execute("""CREATE TABLE favourites (
        session_id TEXT NOT NULL,
        turn_index INTEGER NOT NULL,
        column INTEGER NOT NULL,
        image INTEGER NOT NULL DEFAULT -1,
        created REAL NOT NULL,
        PRIMARY KEY (session_id, turn_index, column, image),
        FOREIGN KEY (session_id, turn_index, column) REFERENCES slates(session_id, turn_index, column))""")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1, _add_resume_tokens_and_favourites_v2]
"""MIGRATIONS[n] takes a database from schema n to n + 1 (0 is a new file); the current version is their count.
Append a function to change the schema; never edit one that has shipped."""
SCHEMA_VERSION = len(MIGRATIONS)

_AUTO_IDS = {"refusals", "pairwise"}
"""Tables whose integer id is local to one file: imports leave it out and dedupe on the natural-key index."""
_JSON_COLUMNS = {
    "users": ("attributes",),
    "sessions": ("settings",),
    "model_versions": ("metrics", "trained_on"),
    "slates": ("image_paths",),
}


# -- opening: refuse what is not ours before writing anything ----------------------------------------------------


def _inspect(path: Path, create: bool) -> bool:
    """True when `path` is a new log store to create; raises LogStoreError for a file that must not be touched.

    Reads the file's header bytes, and opens a file that is not ours only with `immutable=1`, which creates no
    journal or lock files beside it. The opening transaction checks again (`_check`): this is only the first look.
    """
    if not path.exists():
        if not create:
            raise LogStoreError(f"there is no log store at {path}")
        return True
    if not path.is_file():
        raise LogStoreError(f"{path} is not a file: give the path of a log store file (e.g. logs.sqlite)")
    if path.stat().st_size == 0:
        return True  # what SQLite itself treats as an empty database
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise LogStoreError(
            f"{path} is not a SQLite database (a corrupt file, or another kind of file); it was "
            "left untouched: move it aside or choose another log_db path"
        )
    if int.from_bytes(header[68:72], "big") == APPLICATION_ID:
        _check_version(int.from_bytes(header[60:64], "big"), path)
        return False
    try:  # another program's database, a corrupt one, or an empty SQLite file that is ours to fill
        conn = sqlite3.connect(_read_only_uri(path) + "&immutable=1", uri=True)
    except sqlite3.Error as e:
        raise LogStoreError(f"cannot open the log store {path}: {e}") from e
    try:
        return _check(conn, path) == 0
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of a PASTA log store (0 for an empty SQLite file); LogStoreError for anything else."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name LIMIT 6")
        ]
    except sqlite3.DatabaseError as e:
        raise LogStoreError(
            f"{path} cannot be read as a SQLite database ({e}): it may be corrupt; it was left "
            "untouched: move it aside or choose another log_db path"
        ) from e
    if app_id == 0 and version == 0 and not tables:
        return 0
    if app_id != APPLICATION_ID:
        listed = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "") or "none"
        raise LogStoreError(
            f"{path} is a SQLite database of another program, not a PASTA log store "
            f"(application_id {app_id:#x}, tables: {listed}); it was left untouched: "
            "choose another log_db path"
        )
    return _check_version(version, path)


def _check_version(version: int, path: Path) -> int:
    if version > len(MIGRATIONS):
        raise LogStoreError(
            f"{path} has log store schema {version}, newer than this pasta knows "
            f"({len(MIGRATIONS)}); it was left untouched: upgrade pasta to use it"
        )
    return version


def _read_only_uri(path: Path) -> str:
    return path.absolute().as_uri() + "?mode=ro"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
