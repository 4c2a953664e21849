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


def posterior_from_state(user_model, state: dict) -> np.ndarray:
    """The EM posterior over user types after this session's choices so far (uniform prior before any)."""
    return user_model.live_posterior(state.get("history_slates", []))


def candidate_column_features(state: dict) -> np.ndarray:
    """Before rendering, a candidate's text embedding stands in for its images (both live in one space)."""
    from pasta.user_model import column_features

    return column_features(state["candidate_embeddings"], None)


class GreedyMyopicPolicy:
    """Baseline: the candidates with the highest expected immediate utility under the user-type posterior."""

    name = "greedy"

    def __init__(self, user_model) -> None:
        self.user_model = user_model

    def select(self, state: dict, candidates: Sequence[Candidate], slate_size: int) -> tuple[list[int], np.ndarray]:
        import torch

        posterior = posterior_from_state(self.user_model, state)
        with torch.no_grad():
            u = self.user_model.utilities(torch.as_tensor(candidate_column_features(state))).numpy()
        scores = (u @ posterior).astype(np.float32)
        return top_per_category(scores, candidates, slate_size), scores


class QPolicy:
    """The PASTA agent: per category the candidate with the highest Q(state, candidate), trained by IQL."""

    name = "iql"

    def __init__(self, q, user_model) -> None:
        self.q, self.user_model = q, user_model

    def state_vector(self, state: dict) -> np.ndarray:
        from pasta.qnet import state_features

        return state_features(self.q.config, state["initial_embedding"], state["current_embedding"],
                              state["chosen_image_embeddings"], state["turn"],
                              posterior_from_state(self.user_model, state))

    def select(self, state: dict, candidates: Sequence[Candidate], slate_size: int) -> tuple[list[int], np.ndarray]:
        import torch

        from pasta.qnet import action_features

        with torch.no_grad():
            u = self.user_model.utilities(torch.as_tensor(candidate_column_features(state))).numpy()
        actions = action_features(state["candidate_embeddings"], [c.category for c in candidates], u)
        scores = self.q.q(self.state_vector(state), actions)
        return top_per_category(scores, candidates, slate_size), scores
