"""Reading a log store: each call one consistent snapshot (a read-only connection holding one read transaction, so
it neither blocks nor is blocked by the app's writer). `LogStore` reads through these methods."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pasta.logbook.rows import _decode, _episode
from pasta.logbook.schema import TABLES


class LogReads:
    """The reading half of `LogStore`, which gives it `path` and `_snapshot()`."""

    def latest_model_version(self, kind: str) -> dict | None:
        versions = self.model_versions(kind)
        return versions[-1] if versions else None

    def model_versions(self, kind: str | None = None) -> list[dict]:
        """Recorded model versions, oldest first."""
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT * FROM model_versions WHERE ?1 IS NULL OR kind = ?1 ORDER BY created, rowid", (kind,)
            ).fetchall()
        return [_decode("model_versions", row) for row in rows]

    def sessions(self, source: str | None = None, user_id: str | None = None) -> list[dict]:
        """Session rows (no turns), oldest first, optionally of one source ('app', 'simulator', ...) or user."""
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT * FROM sessions WHERE (?1 IS NULL OR source = ?1) AND "
                "(?2 IS NULL OR user_id = ?2) ORDER BY created, rowid",
                (source, user_id),
            ).fetchall()
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
            for row in conn.execute(
                "SELECT * FROM sessions WHERE (?1 IS NULL OR source = ?1) AND "
                "(?2 IS NULL OR user_id = ?2) ORDER BY created, rowid",
                (source, user_id),
            ):
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
