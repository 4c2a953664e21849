"""From logged episodes to the vectors the learners use.

A slate column's features are its prompt's text embedding and the mean embedding of its images (see
`user_model.column_features`). Text embeddings are memoized by text, because the same prompts recur across turns
and sessions; image embeddings come from the log store when the app or simulator recorded them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from pasta.policy.user_model import ChoiceData, column_features


class TextEmbeddingCache:
    """Memoized `embed(list[str]) -> [N, D]`, batched over the texts it has not seen."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], batch_size: int = 256,
                 known: dict[str, np.ndarray] | None = None) -> None:
        self.embed = embed
        self.batch_size = batch_size
        self.vectors: dict[str, np.ndarray] = dict(known or {})

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        for i in range(0, len(missing), self.batch_size):
            chunk = missing[i : i + self.batch_size]
            for text, vector in zip(chunk, self.embed(chunk), strict=True):
                self.vectors[text] = np.asarray(vector, np.float32)
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)


def choice_data_from_episodes(episodes: Iterable[dict], text_embed: Callable[[list[str]], np.ndarray],
                              slate_size: int | None = None) -> tuple[ChoiceData, list[str]]:
    """ChoiceData from LogStore episodes (turns with a choice only), and the user id of each user index.

    Sessions without a user id count as their own user. Slates smaller than the largest are padded and masked.
    """
    rows: list[tuple[int, list[dict], int]] = []
    user_ids: list[str] = []
    user_index: dict[str, int] = {}
    for episode in episodes:
        uid = episode.get("user_id") or f"session:{episode['id']}"
        for turn in episode["turns"]:
            if turn.get("choice") is None:
                continue
            if uid not in user_index:
                user_index[uid] = len(user_ids)
                user_ids.append(uid)
            rows.append((user_index[uid], turn["slate"], int(turn["choice"]["column"])))
    width = slate_size or max((len(slate) for _, slate, _ in rows), default=0)
    texts = [column["prompt"] for _, slate, _ in rows for column in slate]
    text_vectors = text_embed(texts) if texts else np.zeros((0, 0), np.float32)
    dim = 2 * text_vectors.shape[1] if len(texts) else 0
    X = np.zeros((len(rows), width, dim), np.float32)
    mask = np.zeros((len(rows), width), bool)
    k = 0
    for r, (_, slate, _) in enumerate(rows):
        for c, column in enumerate(slate):
            images = column.get("image_embeddings")
            images = None if images is None else np.asarray(images, np.float32).reshape(-1, text_vectors.shape[1])
            X[r, c] = column_features(text_vectors[k], images)
            mask[r, c] = True
            k += 1
    data = ChoiceData(X, np.array([c for *_, c in rows]), np.array([u for u, *_ in rows]), mask)
    return data, user_ids


def choice_data_from_pairwise(rows: Iterable[dict], text_embed: Callable[[list[str]], np.ndarray]
                              ) -> tuple[ChoiceData, list[str], dict[str, int]]:
    """Pairwise preferences (`LogStore.pairwise_rows`) as two-column choices: columns (prompt, image A) and
    (prompt, image B), the preferred one chosen; rows of one user id form one user, rows without one are each their
    own. Ties (label 0.5) choose nothing and rows without image embeddings cannot be featurized: both are skipped and
    counted. Returns (data, user ids, {"used", "ties", "no_embeddings"})."""
    kept, counts = [], {"used": 0, "ties": 0, "no_embeddings": 0}
    for row in rows:
        if row["embedding_a"] is None or row["embedding_b"] is None:
            counts["no_embeddings"] += 1
        elif row["label"] == 0.5:
            counts["ties"] += 1
        else:
            kept.append(row)
    counts["used"] = len(kept)
    if not kept:
        return ChoiceData(np.zeros((0, 2, 0), np.float32), [], [], np.zeros((0, 2), bool)), [], counts
    text = text_embed([r["prompt"] for r in kept])
    dims = {len(r["embedding_a"]) for r in kept} | {len(r["embedding_b"]) for r in kept}
    if dims != {text.shape[1]}:
        raise ValueError(f"pairwise image embeddings have {sorted(dims)} dimensions but prompt embeddings have "
                         f"{text.shape[1]}: import embeddings from the same embedding space")
    user_index: dict[str, int] = {}
    users = [user_index.setdefault(r["user_id"] or f"pair:{r['id']}", len(user_index)) for r in kept]
    X = np.stack([np.stack([column_features(t, np.asarray(r["embedding_a"])[None]),
                            column_features(t, np.asarray(r["embedding_b"])[None])]) for t, r in zip(text, kept)])
    choice = np.array([0 if r["label"] > 0.5 else 1 for r in kept])
    return ChoiceData(X, choice, np.array(users), np.ones((len(kept), 2), bool)), list(user_index), counts
