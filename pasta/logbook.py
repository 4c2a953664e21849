"""The log store: every session, slate, choice and rating, from people and simulated users, in one SQLite file.

Why SQLite in WAL mode: one file a researcher can copy, readers (exports, training) never block the app's writer,
and a committed transaction survives a crash. Every write is one transaction; with synchronous=FULL a call such as
`log_choice` returns only once its row is on disk, so the next slate is never computed from a choice a restart
could lose. Log each turn (`log_turn`) before its slate is shown and nothing that was shown is lost either.

A file that is not a PASTA log store (another program's SQLite database, a corrupt or non-SQLite file, a newer
schema) is refused with a `LogStoreError` naming it, before anything is written to it. Older schemas are migrated
in one transaction on open (`MIGRATIONS`).

Parquet and JSONL exports are what training code reads. Imports are idempotent (natural keys and INSERT OR IGNORE),
so merging the logs of several machines twice never duplicates a row. Pairwise preference data (Pick-a-Pic style)
has its own table, to pre-train the utility on large non-sequential data as in the PASTA paper.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

APPLICATION_ID = 0x50415354
"""`PRAGMA application_id` of every PASTA log store ("PAST" in ASCII): tells our files from other SQLite files."""
SQLITE_MAGIC = b"SQLite format 3\x00"
USER_KINDS = ("person", "simulated")
TABLES = ("users", "sessions", "turns", "candidates", "slates", "choices", "model_versions", "refusals", "pairwise",
          "favourites")
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
_JSON_COLUMNS = {"users": ("attributes",), "sessions": ("settings",), "model_versions": ("metrics", "trained_on"),
                 "slates": ("image_paths",)}


class LogStore:
    """One log store file, safe to share between threads (the app's Gradio workers) and with other processes.

    All writes go through one connection under a lock (they are small; SQLite allows one writer anyway). Reads use
    their own read-only connection per call, a consistent snapshot that neither blocks nor is blocked by writers.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path).expanduser().absolute()
        if _inspect(self.path, create) and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise LogStoreError(f"cannot open the log store {self.path}: {e}") from e
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            self.journal_mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous = FULL")  # a commit is on disk before the call returns
        except sqlite3.Error as e:
            self._conn.close()
            raise LogStoreError(f"cannot open the log store {self.path}: {e}") from e
        except BaseException:
            self._conn.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LogStore({str(self.path)!r})"

    # -- transactions ------------------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed (durably) on success, rolled back entirely on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A private read-only connection holding one read transaction: every query inside sees the same state."""
        conn = sqlite3.connect(_read_only_uri(self.path), uri=True, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def _migrate(self) -> None:
        with self._write() as conn:
            version = _check(conn, self.path)
            for n in range(version, len(MIGRATIONS)):
                try:
                    MIGRATIONS[n](conn)
                except Exception as e:
                    raise LogStoreError(f"migrating the log store {self.path} from schema {n} to {n + 1} failed "
                                        f"({e}); the file was left at schema {version}") from e
            if version < len(MIGRATIONS):
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"schema_{len(MIGRATIONS)}", _now_iso()))

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("PRAGMA user_version").fetchone()[0]

    # -- writing -----------------------------------------------------------------------------------------------

    def add_user(self, user_id: str | None = None, kind: str = "person", attributes: Mapping | None = None) -> str:
        """Register a user (a no-op when the id exists); `attributes` holds e.g. a simulated user's planted type."""
        if kind not in USER_KINDS:
            raise ValueError(f"kind={kind!r} is not a user kind: use one of {', '.join(USER_KINDS)}")
        user_id = _text(user_id, "user_id") if user_id is not None else uuid.uuid4().hex
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?)",
                         (user_id, kind, time.time(), _dumps(attributes)))
        return user_id

    def start_session(self, initial_prompt: str, seed: int, *, user_id: str | None = None, consent: bool = False,
                      source: str = "app", settings: Mapping | None = None, session_id: str | None = None,
                      resume_token: str | None = None) -> str:
        """Log a new session and return its id (`session_id`, e.g. the agent's `Session.id`, or a fresh one).
        `resume_token` (kept as a digest) is the secret that `resume_token_matches` later asks for."""
        session_id = _text(session_id, "session_id") if session_id is not None else uuid.uuid4().hex
        row = (session_id, user_id, _text(initial_prompt, "initial_prompt"), _int(seed, "seed"), time.time(),
               int(bool(consent)), _text(source, "source"), _dumps(settings))
        with self._write() as conn:
            if user_id is not None and not conn.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone():
                raise ValueError(f"unknown user {user_id!r}: add it with add_user() first")
            if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                raise ValueError(f"session {session_id!r} is already logged")
            conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
            if resume_token is not None:
                _insert_resume_token(conn, session_id, resume_token)
        return session_id

    def set_resume_token(self, session_id: str, resume_token: str) -> None:
        """Give a session logged without a resume token (before schema 2) its token; a session that has one keeps
        it (ValueError): a token is never replaced, so nobody can take over a session by re-keying it."""
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                raise ValueError(f"unknown session {session_id!r}")
            if conn.execute("SELECT 1 FROM resume_tokens WHERE session_id = ?", (session_id,)).fetchone():
                raise ValueError(f"session {session_id!r} already has a resume token")
            _insert_resume_token(conn, session_id, resume_token)

    def resume_token_matches(self, session_id: str, resume_token: object) -> bool | None:
        """Whether `resume_token` is the session's token (compared in constant time); None when the session has
        no token (logged before schema 2). A missing session is a KeyError."""
        with self._snapshot() as conn:
            if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
                raise KeyError(f"no session {session_id!r} in {self.path}")
            row = conn.execute("SELECT digest FROM resume_tokens WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            return None
        given = _token_digest(resume_token) if isinstance(resume_token, str) and resume_token else b"\0" * 32
        return hmac.compare_digest(bytes(row[0]), given)

    def secret(self, name: str) -> str:
        """A random server-side secret kept in the store's meta table (made on first use; never exported)."""
        key = f"secret_{_text(name, 'name')}"
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, secrets.token_hex(32)))
            return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def log_turn(self, session_id: str, turn_index: int, prompt: str, candidates: Sequence[Any],
                 scores: Sequence[float], slate: Sequence[int], seeds: Sequence[int],
                 image_embeddings: Sequence[Any] | np.ndarray | None = None,
                 image_paths: Sequence[Sequence[str]] | None = None) -> None:
        """Log one turn in one transaction: its prompt, every candidate with its score, and the slate shown.

        `candidates` are `Candidate`s (or mappings with text, category, source); `slate` indexes them, one per
        column; `seeds`, `image_embeddings` (float32 [M, D] per column) and `image_paths` (M per column) follow the
        slate. Turns are logged in order, each after the choice of the turn before: the contract that every choice
        is committed before the next slate is computed.
        """
        turn_index = _int(turn_index, "turn_index", low=0)
        rows = [_candidate_row(c, i) for i, c in enumerate(candidates)]
        if len(scores) != len(rows):
            raise ValueError(f"{len(scores)} scores for {len(rows)} candidates: give one score per candidate")
        scores = [_finite(s, f"scores[{i}]") for i, s in enumerate(scores)]
        slate = [_int(i, "slate index", low=0, high=len(rows) - 1) for i in slate]
        if not slate or len(set(slate)) != len(slate):
            raise ValueError(f"slate={slate} must name at least one candidate, each at most once")
        if len(seeds) != len(slate):
            raise ValueError(f"{len(seeds)} seeds for a slate of {len(slate)}: give one seed per column")
        embeddings = _slate_embeddings(image_embeddings, len(slate))
        if image_paths is not None and len(image_paths) != len(slate):
            raise ValueError(f"image_paths has {len(image_paths)} entries for a slate of {len(slate)}")
        paths = [None] * len(slate) if image_paths is None else [json.dumps([str(p) for p in ps]) for ps in image_paths]
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                raise ValueError(f"unknown session {session_id!r}: start it with start_session() first")
            logged, last_choice = conn.execute(
                "SELECT count(*), (SELECT count(*) FROM choices WHERE session_id = ?1 AND turn_index = ?2 - 1) "
                "FROM turns WHERE session_id = ?1", (session_id, turn_index)).fetchone()
            if turn_index < logged:
                raise ValueError(f"turn {turn_index} of session {session_id!r} is already logged")
            if turn_index > logged:
                raise ValueError(f"turn {turn_index} of session {session_id!r} cannot be logged before turn {logged}")
            if turn_index > 0 and not last_choice:
                raise ValueError(f"log the choice for turn {turn_index - 1} of session {session_id!r} before "
                                 f"logging turn {turn_index}: each choice is committed before the next slate")
            conn.execute("INSERT INTO turns VALUES (?, ?, ?, ?)",
                         (session_id, turn_index, _text(prompt, "prompt"), time.time()))
            conn.executemany("INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(session_id, turn_index, i, *row, s) for i, (row, s) in enumerate(zip(rows, scores))])
            conn.executemany("INSERT INTO slates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [(session_id, turn_index, col, idx, _int(seed, "seed"), *emb, path)
                              for col, (idx, seed, emb, path) in enumerate(zip(slate, seeds, embeddings, paths))])

    def log_slate_images(self, session_id: str, turn_index: int,
                         image_embeddings: Sequence[Any] | np.ndarray | None = None,
                         image_paths: Sequence[Sequence[str]] | None = None) -> None:
        """Add the rendered images' embeddings and files to a slate `log_turn` logged before rendering (so a crash
        while rendering loses nothing that was shown: the prompts and seeds re-render the same images)."""
        turn_index = _int(turn_index, "turn_index", low=0)
        with self._write() as conn:
            (columns,) = conn.execute("SELECT count(*) FROM slates WHERE session_id = ? AND turn_index = ?",
                                      (session_id, turn_index)).fetchone()
            if not columns:
                raise ValueError(f"no slate was logged for turn {turn_index} of session {session_id!r}")
            embeddings = _slate_embeddings(image_embeddings, columns)
            if image_paths is not None and len(image_paths) != columns:
                raise ValueError(f"image_paths has {len(image_paths)} entries for a slate of {columns}")
            for column, emb in enumerate(embeddings):
                path = None if image_paths is None else json.dumps([str(p) for p in image_paths[column]])
                conn.execute("UPDATE slates SET embedding_dim = coalesce(?, embedding_dim), "
                             "image_embeddings = coalesce(?, image_embeddings), image_paths = coalesce(?, image_paths) "
                             "WHERE session_id = ? AND turn_index = ? AND column = ?",
                             (*emb, path, session_id, turn_index, column))

    def set_favourite(self, session_id: str, turn_index: int, column: int, image: int | None, favourite: bool) -> None:
        """Mark (or unmark) a column (`image` None) or one of its images as a favourite of the session."""
        key = (session_id, _int(turn_index, "turn_index", low=0), _int(column, "column", low=0),
               -1 if image is None else _int(image, "image", low=0))
        with self._write() as conn:
            if not conn.execute("SELECT 1 FROM slates WHERE session_id = ? AND turn_index = ? AND column = ?",
                                key[:3]).fetchone():
                raise ValueError(f"no column {column} was logged for turn {turn_index} of session {session_id!r}")
            if favourite:
                conn.execute("INSERT OR IGNORE INTO favourites VALUES (?, ?, ?, ?, ?)", (*key, time.time()))
            else:
                conn.execute("DELETE FROM favourites WHERE session_id = ? AND turn_index = ? AND column = ? "
                             "AND image = ?", key)

    def favourites(self, session_id: str) -> list[tuple[int, int, int | None]]:
        """(turn index, column, image or None for the whole column), in the order they were marked."""
        with self._snapshot() as conn:
            rows = conn.execute("SELECT turn_index, column, image FROM favourites WHERE session_id = ? "
                                "ORDER BY created, rowid", (session_id,)).fetchall()
        return [(t, c, None if i < 0 else i) for t, c, i in rows]

    def log_choice(self, session_id: str, turn_index: int, column: int, rating: int | None = None,
                   response_seconds: float | None = None) -> None:
        """Log the column picked in a turn (0-based), durably, before returning. Bad input raises ValueError and
        writes nothing; logging the same pick again (a retried request) is a no-op that may add the rating."""
        turn_index = _int(turn_index, "turn_index", low=0)
        column = _int(column, "column", low=0)
        rating = None if rating is None else _int(rating, "rating", low=1, high=5)
        if response_seconds is not None:
            response_seconds = _finite(response_seconds, "response_seconds")
        with self._write() as conn:
            (shown,) = conn.execute("SELECT count(*) FROM slates WHERE session_id = ? AND turn_index = ?",
                                    (session_id, turn_index)).fetchone()
            if not shown:
                raise ValueError(f"no slate was logged for turn {turn_index} of session {session_id!r}")
            if column >= shown:
                raise ValueError(f"column={column} is out of range: turn {turn_index} of session {session_id!r} "
                                 f"showed {shown} columns (0 to {shown - 1})")
            earlier = conn.execute("SELECT column FROM choices WHERE session_id = ? AND turn_index = ?",
                                   (session_id, turn_index)).fetchone()
            if earlier is not None and earlier[0] != column:
                raise ValueError(f"turn {turn_index} of session {session_id!r} already has a choice "
                                 f"(column {earlier[0]}); a choice is final")
            now = time.time()
            if earlier is None:
                conn.execute("INSERT INTO choices VALUES (?, ?, ?, ?, ?, ?, ?)", (
                    session_id, turn_index, column, rating, now, now if rating else None, response_seconds))
            elif rating is not None:
                conn.execute("UPDATE choices SET rating = ?, rated = ? WHERE session_id = ? AND turn_index = ?",
                             (rating, now, session_id, turn_index))

    def rate(self, session_id: str, turn_index: int, rating: int) -> None:
        """Rate (or re-rate) the chosen column of a turn 1-5, after the choice was logged."""
        rating = _int(rating, "rating", low=1, high=5)
        with self._write() as conn:
            changed = conn.execute("UPDATE choices SET rating = ?, rated = ? WHERE session_id = ? AND turn_index = ?",
                                   (rating, time.time(), session_id, _int(turn_index, "turn_index"))).rowcount
            if not changed:
                raise ValueError(f"turn {turn_index} of session {session_id!r} has no choice to rate yet")

    def log_refusal(self, text: str, reason: str, session_id: str | None = None) -> None:
        """Log a prompt the safety filter refused, and why (the session may not exist yet)."""
        with self._write() as conn:
            conn.execute("INSERT INTO refusals (created, session_id, text, reason) VALUES (?, ?, ?, ?)",
                         (time.time(), session_id, str(text), _text(reason, "reason")))

    def record_model_version(self, kind: str, name: str, path: str | Path = "", *, metrics: Mapping | None = None,
                             trained_on: Mapping | None = None, version_id: str | None = None) -> str:
        """Record a trained model (kind e.g. 'user_model', 'qnet', 't2i', 'adapter') and what it was trained on."""
        version_id = _text(version_id, "version_id") if version_id is not None else uuid.uuid4().hex
        with self._write() as conn:
            conn.execute("INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (version_id, _text(kind, "kind"), _text(name, "name"), str(path), time.time(),
                          _dumps(metrics), _dumps(trained_on)))
        return version_id

    # -- reading -----------------------------------------------------------------------------------------------

    def latest_model_version(self, kind: str) -> dict | None:
        versions = self.model_versions(kind)
        return versions[-1] if versions else None

    def model_versions(self, kind: str | None = None) -> list[dict]:
        """Recorded model versions, oldest first."""
        with self._snapshot() as conn:
            rows = conn.execute("SELECT * FROM model_versions WHERE ?1 IS NULL OR kind = ?1 ORDER BY created, rowid",
                                (kind,)).fetchall()
        return [_decode("model_versions", row) for row in rows]

    def sessions(self, source: str | None = None, user_id: str | None = None) -> list[dict]:
        """Session rows (no turns), oldest first, optionally of one source ('app', 'simulator', ...) or user."""
        with self._snapshot() as conn:
            rows = conn.execute("SELECT * FROM sessions WHERE (?1 IS NULL OR source = ?1) AND "
                                "(?2 IS NULL OR user_id = ?2) ORDER BY created, rowid", (source, user_id)).fetchall()
        return [_decode("sessions", row) for row in rows]

    def episode(self, session_id: str) -> dict:
        """One whole session: its fields, user, and turns with candidates, slate and choice (see `episodes`)."""
        with self._snapshot() as conn:
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise KeyError(f"no session {session_id!r} in {self.path}")
            return _episode(conn, row)

    def episodes(self, source: str | None = None, user_id: str | None = None) -> Iterator[dict]:
        """Whole sessions, oldest first, from one consistent snapshot: what training code needs.

        Each is a dict of the session's fields plus `user` (dict or None) and `turns`, each turn with `prompt`,
        `candidates` (text, category, source, score), `slate` (column, candidate_idx, prompt, category, seed,
        image_embeddings float32 [M, D] or None, image_paths or None) and `choice` (column, rating, created, rated,
        response_seconds; None while the person has not picked).
        """
        with self._snapshot() as conn:
            for row in conn.execute("SELECT * FROM sessions WHERE (?1 IS NULL OR source = ?1) AND "
                                    "(?2 IS NULL OR user_id = ?2) ORDER BY created, rowid", (source, user_id)):
                yield _episode(conn, row)

    def pairwise_rows(self, source: str | None = None) -> Iterator[dict]:
        """Pairwise preferences: prompt, image_a, image_b, label (1 = A preferred, 0 = B, 0.5 tie), user_id, source,
        and embedding_a / embedding_b (float32 [D] or None), streamed in insertion order."""
        with self._snapshot() as conn:
            for row in conn.execute("SELECT * FROM pairwise WHERE ?1 IS NULL OR source = ?1 ORDER BY id", (source,)):
                out = dict(row)
                for key in ("embedding_a", "embedding_b"):
                    out[key] = None if out[key] is None else np.frombuffer(out[key], np.float32).copy()
                yield out

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self._snapshot() as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    # -- export and import -------------------------------------------------------------------------------------

    def export_parquet(self, folder: str | Path) -> dict[str, int]:
        """Write one `<table>.parquet` per table from one snapshot; returns rows per table. Embeddings become
        list<float32> columns (slates: list<list<float32>>, M images x D)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        with self._snapshot() as conn:
            for table in TABLES:
                columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
                schema = pa.schema([(c["name"], _arrow_type(table, c["name"], c["type"])) for c in columns],
                                   metadata={"pasta.table": table, "pasta.schema_version": str(len(MIGRATIONS))})
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

    def import_parquet(self, folder: str | Path) -> dict[str, int]:
        """Import the tables `export_parquet` wrote, all or nothing; rows already present are skipped. Returns new
        rows per table."""
        import pyarrow.parquet as pq

        folder = Path(folder)
        files = {t: folder / f"{t}.parquet" for t in TABLES if (folder / f"{t}.parquet").is_file()}
        if not files:
            raise ValueError(f"{folder} holds no PASTA tables (expected files such as sessions.parquet)")
        inserted = {}
        with self._write() as conn:
            for table, file in files.items():
                parquet = pq.ParquetFile(file)
                version = int((parquet.schema_arrow.metadata or {}).get(b"pasta.schema_version", b"0"))
                if version > len(MIGRATIONS):
                    raise ValueError(f"{file} was exported with schema {version}; this code knows up to "
                                     f"{len(MIGRATIONS)}: upgrade pasta to import it")
                known = {c[1] for c in conn.execute(f"PRAGMA table_info({table})")} - (
                    {"id"} if table in _AUTO_IDS else set())
                unknown = set(parquet.schema_arrow.names) - known - {"id"}
                if unknown:
                    raise ValueError(f"{file} has columns the {table} table does not: {', '.join(sorted(unknown))}")
                names = [n for n in parquet.schema_arrow.names if n in known]
                sql = f"INSERT OR IGNORE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                before = conn.total_changes
                try:
                    for batch in parquet.iter_batches(batch_size=10_000, columns=names):
                        conn.executemany(sql, [[row[n] for n in names] for row in
                                               (_import_row(table, r) for r in batch.to_pylist())])
                except sqlite3.IntegrityError as e:
                    raise ValueError(f"{file}: rows do not fit the log store ({e}); nothing was imported") from e
                inserted[table] = conn.total_changes - before
        return inserted

    def export_jsonl(self, path: str | Path, source: str | None = None) -> int:
        """Write one JSON object per session episode (see `episodes`); returns the number written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, count = path.with_name(path.name + ".tmp"), 0
        with tmp.open("w", encoding="utf-8") as f:
            for episode in self.episodes(source):
                f.write(json.dumps(_jsonable(episode), ensure_ascii=False) + "\n")
                count += 1
        tmp.replace(path)
        return count

    def import_jsonl(self, path: str | Path) -> int:
        """Import episodes written by `export_jsonl`, all or nothing; returns how many sessions were new."""
        path, new = Path(path), 0
        with self._write() as conn, path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    new += _insert_episode(conn, json.loads(line))
                except (ValueError, KeyError, TypeError, sqlite3.IntegrityError) as e:
                    raise ValueError(f"{path}, line {number}: not a PASTA episode ({e}); nothing was imported") from e
        return new

    def import_pairwise_parquet(self, path: str | Path, mapping: Mapping[str, str] | None = None, *,
                                source: str | None = None, image_dir: str | Path | None = None,
                                batch_size: int = 4096) -> int:
        """Import Pick-a-Pic-style pairwise preferences from a Parquet file, in batches (bounded memory).

        Columns are found by name: prompt (prompt | caption | text), image_a (image_a | image_0 | image_0_path |
        image_0_uid | image_0_url | jpg_0), image_b likewise, label (label, read as P(A preferred); or label_0, with
        label_1 normalising it: label_0 / (label_0 + label_1)), optional user_id, embedding_a | embedding_0 and
        embedding_b | embedding_1 (lists of floats). `mapping` names other columns, e.g. {"prompt": "title"}.
        Columns holding image bytes (e.g. jpg_0) need `image_dir`: the images are saved there under their hash.
        Rows without a label are skipped; each batch commits on its own and re-importing skips rows already present
        (keyed by source, prompt, images and user), so an interrupted import is resumed by running it again.
        Returns the number of new rows.
        """
        import pyarrow.parquet as pq

        path = Path(path)
        try:
            parquet = pq.ParquetFile(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read {path} as Parquet: {e}") from e
        columns = _pairwise_columns(parquet.schema_arrow, dict(mapping or {}), image_dir is not None, path)
        source = _text(source, "source") if source is not None else path.stem
        image_dir = Path(image_dir) if image_dir is not None else None
        if image_dir is not None:
            image_dir.mkdir(parents=True, exist_ok=True)
        inserted, offset = 0, 0
        for batch in parquet.iter_batches(batch_size=batch_size, columns=sorted(set(columns.values()))):
            rows = []
            for i, record in enumerate(batch.to_pylist(), offset):
                values = {key: record[column] for key, column in columns.items()}
                row = _pairwise_row(values, columns, image_dir, f"{path}, row {i}")
                if row is not None:
                    rows.append((*row, source))
            offset += batch.num_rows
            with self._write() as conn:
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO pairwise (user_id, prompt, image_a, image_b, embedding_a, "
                                 "embedding_b, label, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                inserted += conn.total_changes - before
        return inserted


# -- CLI helpers (the argument parsing lives in pasta.cli) -------------------------------------------------------


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
        raise LogStoreError(f"{path} is not a SQLite database (a corrupt file, or another kind of file); it was "
                            "left untouched: move it aside or choose another log_db path")
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
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                                             "ORDER BY name LIMIT 6")]
    except sqlite3.DatabaseError as e:
        raise LogStoreError(f"{path} cannot be read as a SQLite database ({e}): it may be corrupt; it was left "
                            "untouched: move it aside or choose another log_db path") from e
    if app_id == 0 and version == 0 and not tables:
        return 0
    if app_id != APPLICATION_ID:
        listed = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "") or "none"
        raise LogStoreError(f"{path} is a SQLite database of another program, not a PASTA log store "
                            f"(application_id {app_id:#x}, tables: {listed}); it was left untouched: "
                            "choose another log_db path")
    return _check_version(version, path)


def _check_version(version: int, path: Path) -> int:
    if version > len(MIGRATIONS):
        raise LogStoreError(f"{path} has log store schema {version}, newer than this pasta knows "
                            f"({len(MIGRATIONS)}); it was left untouched: upgrade pasta to use it")
    return version


def _read_only_uri(path: Path) -> str:
    return path.absolute().as_uri() + "?mode=ro"


# -- rows in and out ---------------------------------------------------------------------------------------------


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _insert_resume_token(conn: sqlite3.Connection, session_id: str, token: str) -> None:
    conn.execute("INSERT INTO resume_tokens VALUES (?, ?, ?)", (session_id, _token_digest(token), time.time()))


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _dumps(value: Mapping | None) -> str:
    return json.dumps(dict(value or {}), sort_keys=True, ensure_ascii=False, default=str)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}={value!r} must be non-empty text")
    return value


def _int(value: object, name: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}={value!r} must be a whole number")
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{name}={value!r} is out of range: use a whole number {span}")
    return int(value)


def _finite(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} must be a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}={value!r} must be a finite number")
    return number


def _candidate_row(candidate: Any, i: int) -> tuple[str, str, str]:
    if isinstance(candidate, Mapping):
        text, category, source = (candidate.get(k) for k in ("text", "category", "source"))
    else:
        text, category, source = (getattr(candidate, k, None) for k in ("text", "category", "source"))
    if not isinstance(text, str) or not isinstance(category, str):
        raise ValueError(f"candidates[{i}]={candidate!r} needs text and category (a Candidate or a mapping)")
    return text, category, str(source or "")


def _slate_embeddings(embeddings: Sequence[Any] | np.ndarray | None, columns: int) -> list[tuple]:
    """(embedding_dim, float32 bytes) per slate column, from one [M, D] (or [D]) array per column."""
    if embeddings is None:
        return [(None, None)] * columns
    if len(embeddings) != columns:
        raise ValueError(f"image_embeddings has {len(embeddings)} entries for a slate of {columns}")
    out = []
    for col, e in enumerate(embeddings):
        array = np.asarray(e, dtype=np.float32)
        array = array[None] if array.ndim == 1 else array
        if array.ndim != 2 or array.size == 0 or not np.isfinite(array).all():
            raise ValueError(f"image_embeddings[{col}] must be finite float32 [M, D], not shape {array.shape}")
        out.append((array.shape[1], np.ascontiguousarray(array).tobytes()))
    return out


def _decode(table: str, row: sqlite3.Row | Mapping) -> dict:
    out = dict(row)
    for key in _JSON_COLUMNS.get(table, ()):
        if out.get(key) is not None:
            out[key] = json.loads(out[key])
    if "consent" in out:
        out["consent"] = bool(out["consent"])
    return out


def _episode(conn: sqlite3.Connection, session: sqlite3.Row) -> dict:
    episode = _decode("sessions", session)
    user = conn.execute("SELECT * FROM users WHERE id = ?", (session["user_id"],)).fetchone()
    episode["user"] = None if user is None else _decode("users", user)
    key = (session["id"],)
    candidates: dict[int, list[dict]] = {}
    for c in conn.execute("SELECT * FROM candidates WHERE session_id = ? ORDER BY turn_index, idx", key):
        candidates.setdefault(c["turn_index"], []).append(
            {"text": c["text"], "category": c["category"], "source": c["source"], "score": c["score"]})
    slates: dict[int, list[dict]] = {}
    for s in conn.execute("SELECT * FROM slates WHERE session_id = ? ORDER BY turn_index, column", key):
        shown = candidates[s["turn_index"]][s["candidate_idx"]]
        embeddings = s["image_embeddings"]
        slates.setdefault(s["turn_index"], []).append({
            "column": s["column"], "candidate_idx": s["candidate_idx"], "prompt": shown["text"],
            "category": shown["category"], "seed": s["seed"],
            "image_embeddings": None if embeddings is None else
            np.frombuffer(embeddings, np.float32).reshape(-1, s["embedding_dim"]).copy(),
            "image_paths": None if s["image_paths"] is None else json.loads(s["image_paths"])})
    choices = {c["turn_index"]: {k: c[k] for k in ("column", "rating", "created", "rated", "response_seconds")}
               for c in conn.execute("SELECT * FROM choices WHERE session_id = ?", key)}
    episode["turns"] = [{"turn_index": t["turn_index"], "prompt": t["prompt"], "created": t["created"],
                         "candidates": candidates.get(t["turn_index"], []), "slate": slates.get(t["turn_index"], []),
                         "choice": choices.get(t["turn_index"])}
                        for t in conn.execute("SELECT * FROM turns WHERE session_id = ? ORDER BY turn_index", key)]
    return episode


def _insert_episode(conn: sqlite3.Connection, ep: Mapping) -> int:
    """INSERT OR IGNORE one JSONL episode; 1 when its session was new."""
    if ep.get("user"):
        u = ep["user"]
        conn.execute("INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?)",
                     (u["id"], u["kind"], u["created"], _dumps(u.get("attributes"))))
    sid = ep["id"]
    new = conn.execute("INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
        sid, ep.get("user_id"), ep["initial_prompt"], ep["seed"], ep["created"], int(bool(ep.get("consent"))),
        ep.get("source", "app"), _dumps(ep.get("settings")))).rowcount
    for t in ep["turns"]:
        ti = t["turn_index"]
        conn.execute("INSERT OR IGNORE INTO turns VALUES (?, ?, ?, ?)", (sid, ti, t["prompt"], t["created"]))
        conn.executemany("INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(sid, ti, i, c["text"], c["category"], c.get("source", ""), c.get("score"))
                          for i, c in enumerate(t["candidates"])])
        for s in t["slate"]:
            emb = s.get("image_embeddings")
            dim, blob = _slate_embeddings([emb], 1)[0] if emb is not None else (None, None)
            paths = s.get("image_paths")
            conn.execute("INSERT OR IGNORE INTO slates VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
                sid, ti, s["column"], s["candidate_idx"], s["seed"], dim, blob,
                None if paths is None else json.dumps(paths)))
        if c := t.get("choice"):
            conn.execute("INSERT OR IGNORE INTO choices VALUES (?, ?, ?, ?, ?, ?, ?)", (
                sid, ti, c["column"], c.get("rating"), c["created"], c.get("rated"), c.get("response_seconds")))
    return new


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _arrow_type(table: str, column: str, declared: str):
    import pyarrow as pa

    if table == "slates" and column == "image_embeddings":
        return pa.list_(pa.list_(pa.float32()))
    if table == "pairwise" and column in ("embedding_a", "embedding_b"):
        return pa.list_(pa.float32())
    return {"TEXT": pa.string(), "INTEGER": pa.int64(), "REAL": pa.float64(), "BLOB": pa.binary()}[declared.upper()]


def _export_row(table: str, row: dict) -> dict:
    if table == "slates" and row["image_embeddings"] is not None:
        row["image_embeddings"] = list(np.frombuffer(row["image_embeddings"], np.float32).reshape(
            -1, row["embedding_dim"]))
    if table == "pairwise":
        for key in ("embedding_a", "embedding_b"):
            row[key] = None if row[key] is None else np.frombuffer(row[key], np.float32)
    return row


def _import_row(table: str, row: dict) -> dict:
    if table == "slates" and row.get("image_embeddings") is not None:
        row["embedding_dim"], row["image_embeddings"] = _slate_embeddings([row["image_embeddings"]], 1)[0]
    if table == "pairwise":
        for key in ("embedding_a", "embedding_b"):
            row[key] = _vector_bytes(row.get(key), key)
    return row


def _vector_bytes(value: Any, name: str) -> bytes | None:
    if value is None:
        return None
    vector = np.asarray(value, dtype=np.float32)
    if vector.ndim != 1 or not np.isfinite(vector).all():
        raise ValueError(f"{name} must be a finite list of numbers")
    return vector.tobytes()


# -- pairwise preferences ----------------------------------------------------------------------------------------

_PAIRWISE_NAMES = {
    "prompt": ("prompt", "caption", "text"),
    "image_a": ("image_a", "image_0", "image_0_path", "image_0_uid", "image_0_url", "jpg_0"),
    "image_b": ("image_b", "image_1", "image_1_path", "image_1_uid", "image_1_url", "jpg_1"),
    "label": ("label", "label_0"),
    "label_b": ("label_1",),
    "user_id": ("user_id", "user"),
    "embedding_a": ("embedding_a", "embedding_0"),
    "embedding_b": ("embedding_b", "embedding_1"),
}
_PAIRWISE_REQUIRED = ("prompt", "image_a", "image_b", "label")


def _holds_image_bytes(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type) or
            (pa.types.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0))


def _pairwise_columns(schema: Any, mapping: dict[str, str], save_images: bool, path: Path) -> dict[str, str]:
    """Our field -> the file's column, from `mapping` then by name; a clear error naming what is missing."""
    unknown = set(mapping) - set(_PAIRWISE_NAMES)
    if unknown:
        raise ValueError(f"mapping has unknown field(s) {', '.join(sorted(unknown))}: use {', '.join(_PAIRWISE_NAMES)}")
    names = set(schema.names)
    absent = {field: column for field, column in mapping.items() if column not in names}
    if absent:
        raise ValueError(f"{path} has no column(s) {', '.join(sorted(absent.values()))} named in mapping; its "
                         f"columns are: {', '.join(schema.names)}")
    columns = dict(mapping)
    for field, candidates in _PAIRWISE_NAMES.items():
        present = [c for c in candidates if c in names]
        if field in columns or not present:
            continue
        if field in ("image_a", "image_b"):  # bytes when they can be saved, else paths, URLs or ids
            present.sort(key=lambda c: _holds_image_bytes(schema.field(c).type) != save_images)
        columns[field] = present[0]
    if "label_b" in columns and "label_b" not in mapping and columns["label"] != "label_0":
        del columns["label_b"]  # label_1 only normalises label_0
    missing = [f for f in _PAIRWISE_REQUIRED if f not in columns]
    if missing:
        looked = "; ".join(f"{f}: {' | '.join(_PAIRWISE_NAMES[f])}" for f in missing)
        raise ValueError(f"{path} lacks the column(s) for {', '.join(missing)} (looked for {looked}); its columns "
                         f"are: {', '.join(schema.names)}. Name them with mapping={{field: column}}")
    for field in ("image_a", "image_b"):
        if _holds_image_bytes(schema.field(columns[field]).type) and not save_images:
            raise ValueError(f"{path}: column {columns[field]} ({field}) holds image bytes: pass image_dir to save "
                             "them as files, or map image_a/image_b to columns of paths, URLs or ids")
    return columns


def _pairwise_row(values: dict, columns: dict, image_dir: Path | None, where: str) -> tuple | None:
    """(user_id, prompt, image_a, image_b, embedding_a, embedding_b, label), or None for an unlabelled row."""
    label = values["label"]
    if "label_b" in columns and label is not None and values["label_b"] is not None:
        total = float(label) + float(values["label_b"])
        label = float(label) / total if total > 0 else None
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return None
    label = float(label)
    if not 0.0 <= label <= 1.0:
        raise ValueError(f"{where}: label {label} is outside 0..1 (1 = A preferred, 0 = B, 0.5 = tie)")
    prompt = values["prompt"]
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"{where}: the prompt ({columns['prompt']}) is empty")
    images = []
    for field in ("image_a", "image_b"):
        image = values[field]
        if isinstance(image, dict):  # a Hugging Face Image struct {bytes, path}
            image = image.get("bytes") or image.get("path")
        if isinstance(image, bytes) and image_dir is not None:
            image = str(_save_image(image, image_dir))
        if image is None or image == "":
            raise ValueError(f"{where}: {field} ({columns[field]}) is empty")
        images.append(str(image))
    user = values.get("user_id")
    embeddings = [_vector_bytes(values.get(k), f"{where}: {k}") for k in ("embedding_a", "embedding_b")]
    return (None if user is None else str(user), prompt, *images, *embeddings, label)


def _save_image(data: bytes, folder: Path) -> Path:
    """Content-addressed, so an image shared by many pairs is stored once."""
    suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg" if data.startswith(b"\xff\xd8") else (
        ".webp" if data[8:12] == b"WEBP" else ".img")
    path = (folder / (hashlib.sha256(data).hexdigest()[:32] + suffix)).absolute()
    if not path.exists():
        tmp = path.with_name(path.name + f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
