"""Rows in and out of the log store: argument checks with precise messages, JSON and vector columns, episodes
(a session with its turns) read from and written to SQL, and the Parquet column types of each table."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pasta.logbook.schema import _JSON_COLUMNS

# -- rows in and out ---------------------------------------------------------------------------------------------


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _insert_resume_token(conn: sqlite3.Connection, session_id: str, token: str) -> None:
    conn.execute("INSERT INTO resume_tokens VALUES (?, ?, ?)", (session_id, _token_digest(token), time.time()))


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
            {"text": c["text"], "category": c["category"], "source": c["source"], "score": c["score"]}
        )
    slates: dict[int, list[dict]] = {}
    for s in conn.execute("SELECT * FROM slates WHERE session_id = ? ORDER BY turn_index, column", key):
        shown = candidates[s["turn_index"]][s["candidate_idx"]]
        embeddings = s["image_embeddings"]
        slates.setdefault(s["turn_index"], []).append(
            {
                "column": s["column"],
                "candidate_idx": s["candidate_idx"],
                "prompt": shown["text"],
                "category": shown["category"],
                "seed": s["seed"],
                "image_embeddings": None
                if embeddings is None
                else np.frombuffer(embeddings, np.float32).reshape(-1, s["embedding_dim"]).copy(),
                "image_paths": None if s["image_paths"] is None else json.loads(s["image_paths"]),
            }
        )
    choices = {
        c["turn_index"]: {k: c[k] for k in ("column", "rating", "created", "rated", "response_seconds")}
        for c in conn.execute("SELECT * FROM choices WHERE session_id = ?", key)
    }
    episode["turns"] = [
        {
            "turn_index": t["turn_index"],
            "prompt": t["prompt"],
            "created": t["created"],
            "candidates": candidates.get(t["turn_index"], []),
            "slate": slates.get(t["turn_index"], []),
            "choice": choices.get(t["turn_index"]),
        }
        for t in conn.execute("SELECT * FROM turns WHERE session_id = ? ORDER BY turn_index", key)
    ]
    return episode


def _insert_episode(conn: sqlite3.Connection, ep: Mapping) -> int:
    """INSERT OR IGNORE one JSONL episode; 1 when its session was new."""
    if ep.get("user"):
        u = ep["user"]
        conn.execute(
            "INSERT OR IGNORE INTO users VALUES (?, ?, ?, ?)",
            (u["id"], u["kind"], u["created"], _dumps(u.get("attributes"))),
        )
    sid = ep["id"]
    new = conn.execute(
        "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sid,
            ep.get("user_id"),
            ep["initial_prompt"],
            ep["seed"],
            ep["created"],
            int(bool(ep.get("consent"))),
            ep.get("source", "app"),
            _dumps(ep.get("settings")),
        ),
    ).rowcount
    for t in ep["turns"]:
        ti = t["turn_index"]
        conn.execute("INSERT OR IGNORE INTO turns VALUES (?, ?, ?, ?)", (sid, ti, t["prompt"], t["created"]))
        conn.executemany(
            "INSERT OR IGNORE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (sid, ti, i, c["text"], c["category"], c.get("source", ""), c.get("score"))
                for i, c in enumerate(t["candidates"])
            ],
        )
        for s in t["slate"]:
            emb = s.get("image_embeddings")
            dim, blob = _slate_embeddings([emb], 1)[0] if emb is not None else (None, None)
            paths = s.get("image_paths")
            conn.execute(
                "INSERT OR IGNORE INTO slates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    ti,
                    s["column"],
                    s["candidate_idx"],
                    s["seed"],
                    dim,
                    blob,
                    None if paths is None else json.dumps(paths),
                ),
            )
        if c := t.get("choice"):
            conn.execute(
                "INSERT OR IGNORE INTO choices VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sid, ti, c["column"], c.get("rating"), c["created"], c.get("rated"), c.get("response_seconds")),
            )
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
        row["image_embeddings"] = list(
            np.frombuffer(row["image_embeddings"], np.float32).reshape(-1, row["embedding_dim"])
        )
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
