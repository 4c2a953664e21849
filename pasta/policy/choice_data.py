"""The user model's training data (`ChoiceData`): one row per logged choice, the slate's columns as features (a
column's prompt embedding and the mean embedding of its images, `user_model.column_features`), from the logged
episodes IQL reads too (`pasta.policy.episodes`) and from pairwise preferences."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from pasta.policy.episodes import LoggedEpisode, LoggedTurn
from pasta.policy.user_model import ChoiceData, column_features


def choice_data_from_episodes(
    episodes: Iterable[LoggedEpisode], slate_size: int | None = None
) -> tuple[ChoiceData, list[str]]:
    """ChoiceData from logged episodes (`pasta.policy.episodes.read_episodes`), and the user id of each user index.
    Slates smaller than the largest are padded and masked."""
    rows: list[tuple[int, LoggedTurn]] = []
    user_ids: list[str] = []
    user_index: dict[str, int] = {}
    for episode in episodes:
        for turn in episode.turns:
            if episode.user_id not in user_index:
                user_index[episode.user_id] = len(user_ids)
                user_ids.append(episode.user_id)
            rows.append((user_index[episode.user_id], turn))
    width = slate_size or max((len(turn.text_embeddings) for _, turn in rows), default=0)
    dim = 2 * rows[0][1].text_embeddings.shape[1] if rows else 0
    X = np.zeros((len(rows), width, dim), np.float32)
    mask = np.zeros((len(rows), width), bool)
    for r, (_, turn) in enumerate(rows):
        n = len(turn.text_embeddings)
        X[r, :n] = column_features(turn.text_embeddings, turn.image_embeddings[:, None, :])
        mask[r, :n] = True
    data = ChoiceData(X, np.array([t.choice for _, t in rows]), np.array([u for u, _ in rows]), mask)
    return data, user_ids


def choice_data_from_pairwise(
    rows: Iterable[dict], text_embed: Callable[[list[str]], np.ndarray]
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
        raise ValueError(
            f"pairwise image embeddings have {sorted(dims)} dimensions but prompt embeddings have "
            f"{text.shape[1]}: import embeddings from the same embedding space"
        )
    user_index: dict[str, int] = {}
    users = [user_index.setdefault(r["user_id"] or f"pair:{r['id']}", len(user_index)) for r in kept]
    X = np.stack(
        [
            np.stack(
                [
                    column_features(t, np.asarray(r["embedding_a"])[None]),
                    column_features(t, np.asarray(r["embedding_b"])[None]),
                ]
            )
            for t, r in zip(text, kept)
        ]
    )
    choice = np.array([0 if r["label"] > 0.5 else 1 for r in kept])
    return ChoiceData(X, choice, np.array(users), np.ones((len(kept), 2), bool)), list(user_index), counts
