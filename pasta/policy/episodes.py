"""Logged sessions as the learners read them: the one reader of the log store's episodes for both the user model
(`pasta.policy.choice_data`) and IQL (`pasta.policy.iql`), so that both learn from the same vectors and every text
is embedded once.

A turn keeps each shown column's prompt embedding and the mean embedding of its images (the prompt's own embedding
stands in where no image embeddings were logged: both live in one space); turns without a choice are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class LoggedTurn:
    text_embeddings: np.ndarray
    """[L, D] the slate's prompt embeddings."""
    image_embeddings: np.ndarray
    """[L, D] mean image embedding per column."""
    categories: list[str]
    choice: int
    rating: int | None = None


@dataclass
class LoggedEpisode:
    initial_embedding: np.ndarray
    turns: list[LoggedTurn]
    user_id: str = ""
    """The person (sessions logged without a user id count as their own user: "session:<id>")."""


class TextEmbeddingCache:
    """Memoized `embed(list[str]) -> [N, D]`, batched over the texts it has not seen."""

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray],
        batch_size: int = 256,
        known: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.embed = embed
        self.batch_size = batch_size
        self.vectors: dict[str, np.ndarray] = dict(known or {})

    def __call__(self, texts: list[str]) -> np.ndarray:
        from pasta.console import progress_bar

        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        with progress_bar(total=len(missing), desc="embed texts", disable=len(missing) < 4 * self.batch_size) as bar:
            for i in range(0, len(missing), self.batch_size):
                chunk = missing[i : i + self.batch_size]
                for text, vector in zip(chunk, self.embed(chunk), strict=True):
                    self.vectors[text] = np.asarray(vector, np.float32)
                bar.update(len(chunk))
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)


def read_episodes(episodes: Iterable[dict], embed_text: Callable[[list[str]], np.ndarray]) -> list[LoggedEpisode]:
    """`LogStore.episodes` -> LoggedEpisodes with at least one choice, in order. Every text is embedded in one call
    first (in large batches, with a progress bar for many); `embed_text` is best a `TextEmbeddingCache`, which
    embeds each distinct text once however often it was shown."""
    chosen = [(e, turns) for e in episodes if (turns := [t for t in e["turns"] if t.get("choice") is not None])]
    distinct = {e["initial_prompt"]: None for e, _ in chosen}
    distinct.update({c["prompt"]: None for _, turns in chosen for t in turns for c in t["slate"]})
    table = dict(zip(distinct, np.asarray(embed_text(list(distinct)), np.float32), strict=True)) if distinct else {}
    out = []
    for episode, turns in chosen:
        texts = [episode["initial_prompt"]] + [c["prompt"] for t in turns for c in t["slate"]]
        vectors = np.stack([table[t] for t in texts])
        k, logged = 1, []
        for turn in turns:
            n = len(turn["slate"])
            text = vectors[k : k + n]
            k += n
            images = np.stack(
                [
                    text[j]
                    if c.get("image_embeddings") is None
                    else np.asarray(c["image_embeddings"], np.float32).reshape(-1, text.shape[1]).mean(0)
                    for j, c in enumerate(turn["slate"])
                ]
            )
            rating = turn["choice"].get("rating")
            logged.append(
                LoggedTurn(
                    text,
                    images,
                    [c["category"] for c in turn["slate"]],
                    int(turn["choice"]["column"]),
                    None if rating is None else int(rating),
                )
            )
        out.append(LoggedEpisode(vectors[0], logged, episode.get("user_id") or f"session:{episode['id']}"))
    return out
