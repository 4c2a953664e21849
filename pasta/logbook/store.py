"""The log store: every session, slate, choice and rating, from people and simulated users, in one SQLite file.

Why SQLite in WAL mode: one file a researcher can copy, readers (exports, training) never block the app's writer,
and a committed transaction survives a crash. Every write is one transaction; with synchronous=FULL a call such as
`log_choice` returns only once its row is on disk, so the next slate is never computed from a choice a restart
could lose. Log each turn (`log_turn`) before its slate is shown and nothing that was shown is lost either.

A file that is not a PASTA log store (another program's SQLite database, a corrupt or non-SQLite file, a newer
schema) is refused with a `LogStoreError` naming it, before anything is written to it. Older schemas are migrated
in one transaction on open (`MIGRATIONS`). Exports and imports: `pasta.logbook.transfer` and `.pairwise`.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pasta.logbook import schema
from pasta.logbook.reads import LogReads
from pasta.logbook.rows import (
    _candidate_row,
    _dumps,
    _finite,
    _insert_resume_token,
    _int,
    _slate_embeddings,
    _text,
    _token_digest,
)
from pasta.logbook.schema import (
    APPLICATION_ID,
    USER_KINDS,
    LogStoreError,
    _check,
    _inspect,
    _now_iso,
    _read_only_uri,
)
from pasta.logbook.transfer import LogTransfers


class LogStore(LogReads, LogTransfers):
    """One log store file, safe to share between threads (the app's Gradio workers) and with other processes.

    All writes go through one connection under a lock (they are small; SQLite allows one writer anyway). Reads use
    their own read-only connection per call, a consistent snapshot that neither blocks nor is blocked by writers.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path).expanduser().absolute()
        if _inspect(self.path, create) and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._bulk = False
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
    def bulk(self) -> Iterator[LogStore]:
        """Many writes, in this thread, as one durable transaction (simulated sessions: a commit on disk per call took
        88 s of 10,000 sessions). Each call inside still succeeds or fails whole (a savepoint); an error leaving the
        block rolls all of it back. Not for the app, whose every write is on disk before anyone sees its result."""
        with self._lock:
            if self._bulk:
                raise RuntimeError("LogStore.bulk() does not nest")
            with self._write():
                self._bulk = True
                try:
                    yield self
                finally:
                    self._bulk = False

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed (durably) on success, rolled back entirely on any error; inside
        `bulk()`, a savepoint of its transaction."""
        with self._lock:
            inner = self._bulk
            self._conn.execute("SAVEPOINT write" if inner else "BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
                    self._conn.execute("ROLLBACK TO write" if inner else "ROLLBACK")
                    if inner:
                        self._conn.execute("RELEASE write")
                raise
            self._conn.execute("RELEASE write" if inner else "COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A private read-only connection holding one read transaction: every query inside sees the same state."""
        conn = sqlite3.connect(
            _read_only_uri(self.path), uri=True, timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            conn.close()

    def _migrate(self) -> None:
        with self._write() as conn:
            version = _check(conn, self.path)
            for n in range(version, len(schema.MIGRATIONS)):
                try:
                    schema.MIGRATIONS[n](conn)
                except Exception as e:
                    raise LogStoreError(
                        f"migrating the log store {self.path} from schema {n} to {n + 1} failed "
                        f"({e}); the file was left at schema {version}"
                    ) from e
            if version < len(schema.MIGRATIONS):
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {len(schema.MIGRATIONS)}")
                conn.execute(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"schema_{len(schema.MIGRATIONS)}", _now_iso())
                )

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
            conn.execute(
                "INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?)", (user_id, kind, time.time(), _dumps(attributes))
            )
        return user_id

    def start_session(
        self,
        initial_prompt: str,
        seed: int,
        *,
        user_id: str | None = None,
        consent: bool = False,
        source: str = "app",
        settings: Mapping | None = None,
        session_id: str | None = None,
        resume_token: str | None = None,
    ) -> str:
        """Log a new session and return its id (`session_id`, e.g. the agent's `Session.id`, or a fresh one).
        `resume_token` (kept as a digest) is the secret that `resume_token_matches` later asks for."""
        session_id = _text(session_id, "session_id") if session_id is not None else uuid.uuid4().hex
        row = (
            session_id,
            user_id,
            _text(initial_prompt, "initial_prompt"),
            _int(seed, "seed"),
            time.time(),
            int(bool(consent)),
            _text(source, "source"),
            _dumps(settings),
        )
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

    def log_turn(
        self,
        session_id: str,
        turn_index: int,
        prompt: str,
        candidates: Sequence[Any],
        scores: Sequence[float],
        slate: Sequence[int],
        seeds: Sequence[int],
        image_embeddings: Sequence[Any] | np.ndarray | None = None,
        image_paths: Sequence[Sequence[str]] | None = None,
    ) -> None:
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
                "FROM turns WHERE session_id = ?1",
                (session_id, turn_index),
            ).fetchone()
            if turn_index < logged:
                raise ValueError(f"turn {turn_index} of session {session_id!r} is already logged")
            if turn_index > logged:
                raise ValueError(f"turn {turn_index} of session {session_id!r} cannot be logged before turn {logged}")
            if turn_index > 0 and not last_choice:
                raise ValueError(
                    f"log the choice for turn {turn_index - 1} of session {session_id!r} before "
                    f"logging turn {turn_index}: each choice is committed before the next slate"
                )
            conn.execute(
                "INSERT INTO turns VALUES (?, ?, ?, ?)", (session_id, turn_index, _text(prompt, "prompt"), time.time())
            )
            conn.executemany(
                "INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(session_id, turn_index, i, *row, s) for i, (row, s) in enumerate(zip(rows, scores))],
            )
            conn.executemany(
                "INSERT INTO slates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (session_id, turn_index, col, idx, _int(seed, "seed"), *emb, path)
                    for col, (idx, seed, emb, path) in enumerate(zip(slate, seeds, embeddings, paths))
                ],
            )

    def log_slate_images(
        self,
        session_id: str,
        turn_index: int,
        image_embeddings: Sequence[Any] | np.ndarray | None = None,
        image_paths: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Add the rendered images' embeddings and files to a slate `log_turn` logged before rendering (so a crash
        while rendering loses nothing that was shown: the prompts and seeds re-render the same images)."""
        turn_index = _int(turn_index, "turn_index", low=0)
        with self._write() as conn:
            (columns,) = conn.execute(
                "SELECT count(*) FROM slates WHERE session_id = ? AND turn_index = ?", (session_id, turn_index)
            ).fetchone()
            if not columns:
                raise ValueError(f"no slate was logged for turn {turn_index} of session {session_id!r}")
            embeddings = _slate_embeddings(image_embeddings, columns)
            if image_paths is not None and len(image_paths) != columns:
                raise ValueError(f"image_paths has {len(image_paths)} entries for a slate of {columns}")
            for column, emb in enumerate(embeddings):
                path = None if image_paths is None else json.dumps([str(p) for p in image_paths[column]])
                conn.execute(
                    "UPDATE slates SET embedding_dim = coalesce(?, embedding_dim), "
                    "image_embeddings = coalesce(?, image_embeddings), image_paths = coalesce(?, image_paths) "
                    "WHERE session_id = ? AND turn_index = ? AND column = ?",
                    (*emb, path, session_id, turn_index, column),
                )

    def set_favourite(self, session_id: str, turn_index: int, column: int, image: int | None, favourite: bool) -> None:
        """Mark (or unmark) a column (`image` None) or one of its images as a favourite of the session."""
        key = (
            session_id,
            _int(turn_index, "turn_index", low=0),
            _int(column, "column", low=0),
            -1 if image is None else _int(image, "image", low=0),
        )
        with self._write() as conn:
            if not conn.execute(
                "SELECT 1 FROM slates WHERE session_id = ? AND turn_index = ? AND column = ?", key[:3]
            ).fetchone():
                raise ValueError(f"no column {column} was logged for turn {turn_index} of session {session_id!r}")
            if favourite:
                conn.execute("INSERT OR IGNORE INTO favourites VALUES (?, ?, ?, ?, ?)", (*key, time.time()))
            else:
                conn.execute(
                    "DELETE FROM favourites WHERE session_id = ? AND turn_index = ? AND column = ? AND image = ?", key
                )

    def favourites(self, session_id: str) -> list[tuple[int, int, int | None]]:
        """(turn index, column, image or None for the whole column), in the order they were marked."""
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT turn_index, column, image FROM favourites WHERE session_id = ? ORDER BY created, rowid",
                (session_id,),
            ).fetchall()
        return [(t, c, None if i < 0 else i) for t, c, i in rows]

    def log_choice(
        self,
        session_id: str,
        turn_index: int,
        column: int,
        rating: int | None = None,
        response_seconds: float | None = None,
    ) -> None:
        """Log the column picked in a turn (0-based), durably, before returning. Bad input raises ValueError and
        writes nothing; logging the same pick again (a retried request) is a no-op that may add the rating."""
        turn_index = _int(turn_index, "turn_index", low=0)
        column = _int(column, "column", low=0)
        rating = None if rating is None else _int(rating, "rating", low=1, high=5)
        if response_seconds is not None:
            response_seconds = _finite(response_seconds, "response_seconds")
        with self._write() as conn:
            (shown,) = conn.execute(
                "SELECT count(*) FROM slates WHERE session_id = ? AND turn_index = ?", (session_id, turn_index)
            ).fetchone()
            if not shown:
                raise ValueError(f"no slate was logged for turn {turn_index} of session {session_id!r}")
            if column >= shown:
                raise ValueError(
                    f"column={column} is out of range: turn {turn_index} of session {session_id!r} "
                    f"showed {shown} columns (0 to {shown - 1})"
                )
            earlier = conn.execute(
                "SELECT column FROM choices WHERE session_id = ? AND turn_index = ?", (session_id, turn_index)
            ).fetchone()
            if earlier is not None and earlier[0] != column:
                raise ValueError(
                    f"turn {turn_index} of session {session_id!r} already has a choice "
                    f"(column {earlier[0]}); a choice is final"
                )
            now = time.time()
            if earlier is None:
                conn.execute(
                    "INSERT INTO choices VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (session_id, turn_index, column, rating, now, now if rating else None, response_seconds),
                )
            elif rating is not None:
                conn.execute(
                    "UPDATE choices SET rating = ?, rated = ? WHERE session_id = ? AND turn_index = ?",
                    (rating, now, session_id, turn_index),
                )

    def rate(self, session_id: str, turn_index: int, rating: int) -> None:
        """Rate (or re-rate) the chosen column of a turn 1-5, after the choice was logged."""
        rating = _int(rating, "rating", low=1, high=5)
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE choices SET rating = ?, rated = ? WHERE session_id = ? AND turn_index = ?",
                (rating, time.time(), session_id, _int(turn_index, "turn_index")),
            ).rowcount
            if not changed:
                raise ValueError(f"turn {turn_index} of session {session_id!r} has no choice to rate yet")

    def log_refusal(self, text: str, reason: str, session_id: str | None = None) -> None:
        """Log a prompt the safety filter refused, and why (the session may not exist yet)."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO refusals (created, session_id, text, reason) VALUES (?, ?, ?, ?)",
                (time.time(), session_id, str(text), _text(reason, "reason")),
            )

    def record_model_version(
        self,
        kind: str,
        name: str,
        path: str | Path = "",
        *,
        metrics: Mapping | None = None,
        trained_on: Mapping | None = None,
        version_id: str | None = None,
    ) -> str:
        """Record a trained model (kind e.g. 'user_model', 'qnet', 't2i', 'adapter') and what it was trained on."""
        version_id = _text(version_id, "version_id") if version_id is not None else uuid.uuid4().hex
        kind, name, metrics, trained_on = _text(kind, "kind"), _text(name, "name"), _dumps(metrics), _dumps(trained_on)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (version_id, kind, name, str(path), time.time(), metrics, trained_on),
            )
        return version_id
