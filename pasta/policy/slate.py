"""Slate policies: pick L of the N candidates, at most one per category (PASTA's slate construction).

Every policy returns the chosen indices and a score per candidate (for "why this slate?"); value-based
policies score with Q, baselines with simpler rules, all behind the same interface.

Two ways to turn per-candidate values into a slate: `top_per_category` (the best candidate of each category) and
`choice_model_slate` (SlateQ, Ie et al. 2019: the person consumes one column, chosen by the user model's choice
model, so a slate is worth the choice-probability-weighted value of its columns under each user type).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from pasta.contracts import Candidate
from pasta.policy.session_estimate import (
    choice_probabilities,
    corrected_utilities,
    edit_utility,
    session_correction,
    types_explain_picks,
)
from pasta.policy.state import PolicyState


class SlatePolicy(Protocol):
    name: str

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        """(indices of the slate, score of every candidate)."""
        ...


def top_per_category(scores: np.ndarray, candidates: Sequence[Candidate], slate_size: int) -> list[int]:
    """The best-scored candidate of each category, then the best categories: at most one per category."""
    best: dict[str, int] = {}
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        best.setdefault(candidates[int(i)].category, int(i))
    ranked = sorted(best.values(), key=lambda i: -scores[i])
    return ranked[:slate_size]


def one_per_category_slates(by_category: dict[str, list[int]], size: int, holding: str | None = None) -> np.ndarray:
    """[n, size]: every slate of `size` columns, at most one candidate per category, category combination by
    combination (in itertools order, each category's candidates in the order given); `holding`: only the
    combinations that include that category."""
    return np.concatenate(
        [
            np.stack(np.meshgrid(*(by_category[c] for c in categories), indexing="ij"), -1).reshape(-1, size)
            for categories in itertools.combinations(by_category, size)
            if holding is None or holding in categories
        ]
    )


def choice_model_slate(
    values: np.ndarray,
    utilities: np.ndarray,
    posterior: np.ndarray,
    temperature: float,
    candidates: Sequence[Candidate],
    slate_size: int,
    max_slates: int = 20_000,
    keep: int | None = None,
) -> list[int]:
    """The slate A (at most one candidate per category) that maximizes SlateQ's slate value

        value(A) = sum_k p_k sum_{j in A} softmax_{j in A}(u_k(j) / T) values[j, k]

    p: posterior over user types [K]; u: per-type utilities [N, K] with the choice temperature T (the user model's
    choice model); values[j, k]: what consuming j is worth to a user of type k (u_k(j) for a myopic policy, plus the
    Q-network's continuation value for the agent). Top-per-category ignores that a person picks one column: under an
    uncertain posterior it shows four variants of the best guess, where this shows columns that serve the likely
    types. Exact enumeration (25 candidates in 5 categories, L = 4: 3,125 slates); larger candidate sets keep the
    best `m` per category by posterior-mean value, with m as large as `max_slates` allows. `keep`: a candidate the
    slate must hold (`final_turn_keep`), the best of the slates that hold it."""
    U = np.asarray(utilities, np.float64).reshape(len(candidates), -1)
    V = np.asarray(values, np.float64).reshape(len(candidates), -1)
    p = np.asarray(posterior, np.float64).reshape(-1)
    if not U.shape[1] == V.shape[1] == len(p):
        raise ValueError(f"utilities {U.shape}, values {V.shape} and posterior {p.shape} disagree on the types")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    by_category: dict[str, list[int]] = {}
    for i in np.argsort(-(V @ p), kind="stable"):
        by_category.setdefault(candidates[int(i)].category, []).append(int(i))
    if keep is not None:  # its category offers only it, and every category combination includes that category
        by_category[candidates[keep].category] = [int(keep)]
    size = min(slate_size, len(by_category))
    m = max((len(v) for v in by_category.values()), default=0)
    while m > 1 and math.comb(len(by_category), size) * m**size > max_slates:
        m -= 1
    if size == 0:
        return []
    offered = {c: v[:m] for c, v in by_category.items()}
    slates = one_per_category_slates(offered, size, None if keep is None else candidates[keep].category)
    # softmax over each slate's columns from per-candidate exponentials, shifted by each type's best utility (the
    # shift cancels); a slate whose every column underflows for some type is computed shifted by its own best
    logits = U / temperature
    E = np.exp(logits - logits.max(axis=0))  # [N, K]
    numerator, denominator = (E * V)[slates].sum(axis=1), E[slates].sum(axis=1)  # [n, K]
    underflow = (denominator == 0).any(axis=1)
    if underflow.any():
        shifted = logits[slates[underflow]]  # [u, L, K]
        e = np.exp(shifted - shifted.max(axis=1, keepdims=True))
        numerator[underflow], denominator[underflow] = (e * V[slates[underflow]]).sum(axis=1), e.sum(axis=1)
    value = (numerator / denominator) @ p
    # the first of the best in enumeration order: slates of equal value (candidates the models cannot tell apart)
    # differ only by rounding, which must not decide
    top = value.max()
    best = slates[int(np.flatnonzero(value >= top - 1e-12 * max(1.0, abs(top)))[0])].tolist()
    return sorted(best, key=lambda j: -float(V[j] @ p))


KEEP_CATEGORY = "rephrase"
"""The candidate category that keeps the current prompt (reworded, not edited)."""


def final_turn_keep(state: PolicyState, candidates: Sequence[Candidate]) -> int | None:
    """On the session's last turn, the candidate that keeps the current prompt (the first rephrase), which the
    agent's choice-model slate then always holds; None on other turns, without a rephrase, or when the session's
    length is unknown.

    Why: the last pick is what the person leaves with, and nothing is left to learn from it, so its slate should
    never force a person the models misjudge to trade what they already chose for an edit. The slate policies
    leave the rephrase out on most turns (it has no edit to be optimistic about). Measured on 1,000 held-out users
    per population (README, agent section; the app's default agent, paired): +0.19 final-turn utility for
    interaction-taste users, +0.10 small-steps, +0.05 mixture, +0.03 planted, -0.03 target seekers (whose last
    pick could still have found a target attribute), 0 flat."""
    if state.turns is None or state.turn != state.turns - 1:
        return None
    return next((i for i, c in enumerate(candidates) if c.category == KEEP_CATEGORY), None)


SLATES = ("top", "choice-model")


def check_slate(slate: str) -> str:
    if slate not in SLATES:
        raise ValueError(f"unknown slate construction {slate!r}: choose one of {', '.join(SLATES)}")
    return slate


class LMMOrderPolicy:
    """Baseline "just ask the LMM": the generator's first candidate in each category. Where there are more categories
    than columns, the categories left out rotate with the turn (and the session's seed), so every category is shown
    as often as any other; always dropping the last category in the generator's order made this baseline never
    show it (a weaker baseline than an LMM's own order)."""

    name = "lmm-order"

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        categories = list(dict.fromkeys(c.category for c in candidates))
        shift = (int(state.turn) + int(state.seed)) % max(1, len(categories))
        rank = {c: (i - shift) % len(categories) for i, c in enumerate(categories)}
        order = sorted(range(len(candidates)), key=lambda i: (rank[candidates[i].category], i))
        scores = np.empty(len(candidates), np.float32)
        scores[order] = -np.arange(len(candidates), dtype=np.float32)
        return top_per_category(scores, candidates, slate_size), scores


class RandomPolicy:
    """Baseline: a random candidate per category, random categories; seeded by the state for reproducibility."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        rng = np.random.default_rng([self.seed, int(state.turn), int(state.seed)])
        scores = rng.random(len(candidates)).astype(np.float32)
        return top_per_category(scores, candidates, slate_size), scores


def posterior_from_state(user_model, state: PolicyState) -> np.ndarray:
    """The EM posterior over user types after this session's choices so far (uniform prior before any)."""
    return user_model.live_posterior(state.history_slates)


def candidate_column_features(state: PolicyState) -> np.ndarray:
    """Before rendering, a candidate's text embedding stands in for its images (both live in one space)."""
    from pasta.policy.user_model import column_features

    return column_features(state.candidate_embeddings, None)


def choice_temperature(user_model) -> float:
    return float(user_model.log_temperature.detach().exp())


def candidate_utilities(user_model, state: PolicyState) -> np.ndarray:
    """[N, K]: every type's utility of each candidate."""
    import torch

    with torch.no_grad():
        return user_model.utilities(torch.as_tensor(candidate_column_features(state))).numpy()


def history_probabilities(user_model, state: PolicyState, posterior: np.ndarray, *strengths: float):
    """The types' choice probabilities of the finished slates (`choice_probabilities`), computed once per turn for
    every session estimate that is on; None when all strengths are 0 (nothing will read them)."""
    if not any(strengths):
        return None
    return choice_probabilities(user_model, state.history_slates, posterior)


def adapted_utilities(
    user_model,
    state: PolicyState,
    posterior: np.ndarray,
    strength: float,
    u: np.ndarray,
    probabilities: list[np.ndarray] | None = None,
):
    """(the candidates' per-type utilities `u` [N, K] with this session's correction added, the correction [N]);
    strength 0: `u` as it is (`pasta.policy.session_estimate`; gated by how little the types explain the picks)."""
    w = session_correction(
        user_model, state.history_slates, posterior, state.initial_embedding, strength, probabilities, gated=True
    )
    if w == 0:
        return u, np.zeros(len(u), np.float32)
    return corrected_utilities(u, candidate_column_features(state), state.initial_embedding, w)


def exploration(
    user_model,
    state: PolicyState,
    posterior: np.ndarray,
    strength: float,
    probabilities: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(what the session's picks say of each candidate's edit [N], that plus an optimism bonus [N]): the session
    utility's mean, and mean + strength * sd * P(the types do not explain the picks) (`edit_utility`,
    `types_explain_picks`); zeros at strength 0 or without embeddings."""
    n = len(state.candidate_embeddings) if state.candidate_embeddings is not None else 0
    if strength == 0 or state.current_embedding is None or n == 0:
        return np.zeros(n, np.float32), np.zeros(n, np.float32)
    history = state.history_slates
    if probabilities is None:
        probabilities = choice_probabilities(user_model, history, posterior)
    mean, sd = edit_utility(
        user_model,
        history,
        posterior,
        state.current_embedding,
        state.candidate_embeddings,
        probabilities=probabilities,
    )
    unexplained = 1.0 - types_explain_picks(user_model, history, posterior, probabilities)
    return mean.astype(np.float32), (mean + strength * unexplained * sd).astype(np.float32)


def suffix(adapt: float, explore: float) -> str:
    """A policy name's ending for its session estimates: "+adapt", "+explore", both or none."""
    return ("+adapt" if adapt else "") + ("+explore" if explore else "")


class GreedyMyopicPolicy:
    """Baseline: immediate utility under the user-type posterior, no look-ahead. `slate="top"` (the "greedy"
    baseline) shows the best candidate per category; `"choice-model"` ("greedy-slate") the slate with the highest
    expected utility of the column the person will choose (`choice_model_slate` with values = utilities).
    `adapt` > 0 adds the session's own preference estimate with that strength (names end in "+adapt"); `explore`
    > 0 the session's edit utility and optimism where the types do not explain the picks ("+explore")."""

    def __init__(self, user_model, slate: str = "top", adapt: float = 0.0, explore: float = 0.0) -> None:
        self.user_model, self.slate = user_model, check_slate(slate)
        self.adapt, self.explore = float(adapt), float(explore)
        self.name = ("greedy" if slate == "top" else "greedy-slate") + suffix(adapt, explore)

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        posterior = posterior_from_state(self.user_model, state)
        p = history_probabilities(self.user_model, state, posterior, self.adapt, self.explore)
        u, _ = adapted_utilities(
            self.user_model, state, posterior, self.adapt, candidate_utilities(self.user_model, state), p
        )
        mean, optimistic = exploration(self.user_model, state, posterior, self.explore, p)
        values = u + optimistic[:, None]
        scores = (values @ posterior).astype(np.float32)
        if self.slate == "top":
            return top_per_category(scores, candidates, slate_size), scores
        temperature = choice_temperature(self.user_model)
        keep = final_turn_keep(state, candidates)
        slate = choice_model_slate(values, u + mean[:, None], posterior, temperature, candidates, slate_size, keep=keep)
        return slate, scores


class QPolicy:
    """The PASTA agent: Q(state, candidate), trained by IQL, turned into a slate by SlateQ's choice model (default)
    or per category by the highest Q (`slate="top"`). With the myopic-residual Q-network, a candidate's value to
    type k is Q_k(s, a) (per-type Q-networks) or u_k(a) + (Q(s, a) - posterior . u(a)) (single-output ones): its
    utility to that type plus the learned continuation value. `adapt` > 0 adds the session's own preference
    estimate (`pasta.policy.session_estimate`) to every type's values and utilities: what the picks so far say
    beyond the types (the Q-network still reads the user model's own utilities, as in training); `explore` > 0 adds
    the session's edit utility and an optimism bonus, scaled by how little the types explain the picks."""

    def __init__(self, q, user_model, slate: str = "choice-model", adapt: float = 0.0, explore: float = 0.0) -> None:
        self.q, self.user_model, self.slate = q, user_model, check_slate(slate)
        self.adapt, self.explore = float(adapt), float(explore)
        self.name = "iql" + suffix(adapt, explore)

    def state_vector(self, state: PolicyState, posterior: np.ndarray | None = None) -> np.ndarray:
        """The Q-network's state features; `posterior` when the caller already has it (else computed)."""
        from pasta.policy.qnet import state_features

        if posterior is None:
            posterior = posterior_from_state(self.user_model, state)
        return state_features(
            self.q.config,
            state.initial_embedding,
            state.current_embedding,
            state.chosen_image_embeddings,
            state.turn,
            posterior,
        )

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        from pasta.policy.qnet import action_features

        u = candidate_utilities(self.user_model, state)
        actions = action_features(state.candidate_embeddings, [c.category for c in candidates], u)
        posterior = posterior_from_state(self.user_model, state)
        state_vector = self.state_vector(state, posterior)
        p = history_probabilities(self.user_model, state, posterior, self.adapt, self.explore)
        u_adapted, extra = adapted_utilities(self.user_model, state, posterior, self.adapt, u, p)
        config = self.q.config
        if config.per_type_values:
            values = self.q.q_types(state_vector, actions)  # [N, K]
            scores = (values @ posterior).astype(np.float32)
        else:
            scores = self.q.q(state_vector, actions)
            values = (
                u + (scores - u @ posterior)[:, None]
                if config.myopic_residual
                else np.repeat(scores[:, None], u.shape[1], axis=1)
            )
        mean, optimistic = exploration(self.user_model, state, posterior, self.explore, p)
        scores, values = scores + extra + optimistic, values + (extra + optimistic)[:, None]
        if self.slate == "top":
            return top_per_category(scores, candidates, slate_size), scores
        slate = choice_model_slate(
            values,
            u_adapted + mean[:, None],
            posterior,
            choice_temperature(self.user_model),
            candidates,
            slate_size,
            keep=final_turn_keep(state, candidates),
        )
        return slate, scores
