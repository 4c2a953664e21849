"""Slate policies: pick L of the N candidates, at most one per category (PASTA's slate construction).

Every policy returns the chosen indices and a score per candidate (for "why this slate?"); value-based
policies score with Q, baselines with simpler rules, all behind the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pasta.contracts import Candidate


class SlatePolicy(Protocol):
    name: str

    def select(self, state: dict, candidates: Sequence[Candidate], slate_size: int) -> tuple[list[int], np.ndarray]:
        """(indices of the slate, score of every candidate)."""
        ...


def top_per_category(scores: np.ndarray, candidates: Sequence[Candidate], slate_size: int) -> list[int]:
    """The best-scored candidate of each category, then the best categories: at most one per category."""
    best: dict[str, int] = {}
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        best.setdefault(candidates[int(i)].category, int(i))
    ranked = sorted(best.values(), key=lambda i: -scores[i])
    return ranked[:slate_size]


class LMMOrderPolicy:
    """Baseline "just ask the LMM": the generator's first candidate in each category, in category order."""

    name = "lmm-order"

    def select(self, state: dict, candidates: Sequence[Candidate], slate_size: int) -> tuple[list[int], np.ndarray]:
        scores = -np.arange(len(candidates), dtype=np.float32)
        return top_per_category(scores, candidates, slate_size), scores


class RandomPolicy:
    """Baseline: a random candidate per category, random categories; seeded by the state for reproducibility."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def select(self, state: dict, candidates: Sequence[Candidate], slate_size: int) -> tuple[list[int], np.ndarray]:
        rng = np.random.default_rng([self.seed, int(state.get("turn", 0)), int(state.get("seed", 0))])
        scores = rng.random(len(candidates)).astype(np.float32)
        return top_per_category(scores, candidates, slate_size), scores
