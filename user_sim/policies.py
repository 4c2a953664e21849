"""Simulator-only baselines: the oracle that knows the user's planted type (an upper reference for agents), and
the target seekers' Bayesian reference that knows everything but the person."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pasta.contracts import Candidate
from pasta.policy.loader import DEFAULT_AGENT_DIR
from pasta.policy.slate import (
    LMMOrderPolicy,
    QPolicy,
    RandomPolicy,
    check_slate,
    choice_model_slate,
    final_turn_keep,
    top_per_category,
)
from pasta.policy.state import PolicyState


class OraclePolicy:
    """Knows the user's true (planted) utilities and choice noise, read from the simulator's state: by default the
    slate with the highest expected true utility of the chosen column (`choice_model_slate` with one known type);
    `slate="top"` ("oracle-top") the best candidate per category."""

    def __init__(self, slate: str = "choice-model") -> None:
        self.slate = check_slate(slate)
        self.name = "oracle" if slate == "choice-model" else "oracle-top"

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        scores = np.asarray(state.planted_utilities, np.float32)
        if self.slate == "top":
            return top_per_category(scores, candidates, slate_size), scores
        u = scores[:, None]
        return choice_model_slate(u, u, np.ones(1), state.planted_temperature, candidates, slate_size), scores


class TargetBayesPolicy:
    """A reference for target seekers (`user_sim.populations`, family "target"): what an agent reaches that knows
    the family's form (utility = sum of weight_a * [attribute a equals the target's], weights uniform in
    `TARGET_WEIGHTS`, softmax choices at the planted temperature) and the world tuple of every prompt, but not the
    person's target or weights. It keeps the exact posterior over (target tuple, weights from a fixed sample of
    `n_weights` vectors) from the session's picks and shows the choice-model slate under `samples` draws from it
    (the one-per-category slate, as the agents, with the current prompt kept on the last turn).

    Why: the oracle knows the target, so its gain over LMM order is not what finding the target out from four
    columns a turn can reach; this says how much of it an agent that knew everything but the person could."""

    name = "bayes-target"

    def __init__(self, seed: int = 0, n_weights: int = 8, samples: int = 400) -> None:
        from user_sim.populations import TARGET_WEIGHTS
        from user_sim.world import EmbeddingWorld

        world = EmbeddingWorld()
        self.tuples = world.tuples.astype(np.int64)
        self.weights = np.random.default_rng([seed, 23]).uniform(*TARGET_WEIGHTS, (n_weights, self.tuples.shape[1]))
        self.samples = samples
        self._index = {e.tobytes(): i for i, e in enumerate(world.embeddings)}
        self._dim = world.embeddings.shape[1]

    def _tuples_of(self, embeddings: np.ndarray) -> np.ndarray:
        """World tuple indices of prompts given by their (world) embeddings."""
        keys = [np.asarray(e[: self._dim], np.float32).tobytes() for e in embeddings]
        if not all(k in self._index for k in keys):
            raise ValueError("bayes-target plays only in the simulator's world (a prompt is not one of its tuples)")
        return np.array([self._index[k] for k in keys])

    def _utilities(self, columns: np.ndarray) -> np.ndarray:
        """[hypotheses, len(columns)]: each column's utility under every (target tuple, weight vector)."""
        match = self.tuples[columns][None, :, :] == self.tuples[:, None, :]  # [targets, C, A]
        return np.einsum("tca,wa->twc", match, self.weights).reshape(-1, len(columns))

    def _utilities_under(self, hypotheses: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """[len(hypotheses), len(columns)]: `_utilities` for the given hypotheses only (the drawn few hundred of
        the 89,600), without computing the rest."""
        n = len(self.weights)
        match = self.tuples[columns][None, :, :] == self.tuples[hypotheses // n][:, None, :]  # [H, C, A]
        return np.einsum("hca,ha->hc", match, self.weights[hypotheses % n])

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        drawn, p = self.posterior(state)
        U = self._utilities_under(drawn, self._tuples_of(state.candidate_embeddings)).T  # [N, drawn]
        keep = final_turn_keep(state, candidates)
        slate = choice_model_slate(U, U, p, float(state.planted_temperature), candidates, slate_size, keep=keep)
        return slate, (U @ p).astype(np.float32)

    def posterior(self, state: PolicyState) -> tuple[np.ndarray, np.ndarray]:
        """(hypotheses, probabilities): `samples` draws from the exact posterior after the session's picks, as
        distinct hypotheses and their shares of the draws; hypothesis h is target tuple h // n_weights with weight
        vector h % n_weights."""
        T = float(state.planted_temperature)
        log_p = np.zeros(len(self.tuples) * len(self.weights))
        for features, choice in state.history_slates:
            logits = self._utilities(self._tuples_of(features)) / T
            logits -= logits.max(1, keepdims=True)
            log_p += logits[:, choice] - np.log(np.exp(logits).sum(1))
        p = np.exp(log_p - log_p.max())
        rng = np.random.default_rng([int(state.seed), int(state.turn), 29])
        drawn, counts = np.unique(rng.choice(len(p), size=self.samples, p=p / p.sum()), return_counts=True)
        return drawn, counts / self.samples


BASELINES = {
    "random": RandomPolicy,
    "lmm-order": LMMOrderPolicy,
    "oracle": OraclePolicy,
    "oracle-top": lambda: OraclePolicy("top"),
    "bayes-target": TargetBayesPolicy,
}


NO_KEEP = ":no-keep"
"""Policy-name ending: that policy played as before the last-turn rule (`WithoutFinalKeep`)."""


class WithoutFinalKeep:
    """A slate policy played as before the last-turn rule: its states do not tell the session's length, so
    `final_turn_keep` never applies. For measuring the rule on the same users (`--policies shipped
    shipped:no-keep`)."""

    def __init__(self, policy) -> None:
        self.policy, self.name = policy, policy.name + NO_KEEP

    def select(
        self, state: PolicyState, candidates: Sequence[Candidate], slate_size: int
    ) -> tuple[list[int], np.ndarray]:
        return self.policy.select(dataclasses.replace(state, turns=None), candidates, slate_size)


def policy_factory(name: str, factories: dict[str, Callable], seed: int = 0) -> Callable:
    """What builds the policy `name`: one of `factories` (the command's own agents) or a baseline, either of them
    with `NO_KEEP` after its name for `WithoutFinalKeep`."""
    base = name.removesuffix(NO_KEEP)
    make = factories.get(base) or (lambda: make_policy(base, seed))
    return (lambda: WithoutFinalKeep(make())) if name.endswith(NO_KEEP) else make


def check_policy_names(names, known) -> None:
    """Refuse unknown policy names before any work (a run simulates and trains for minutes before it plays them);
    `known` are the command's own names, the simulator's baselines are always known, any may end in `NO_KEEP`."""
    known = tuple(dict.fromkeys((*known, *BASELINES)))
    unknown = [name for name in names if name.removesuffix(NO_KEEP) not in known]
    if unknown:
        raise ValueError(f"unknown policies {', '.join(unknown)}: choose from {', '.join(known)}")


def make_policy(name: str, seed: int = 0):
    if name not in BASELINES:
        raise ValueError(f"unknown policy {name!r}: choose one of {', '.join(BASELINES)}")
    return BASELINES[name](seed) if name in ("random", "bayes-target") else BASELINES[name]()


def trained_agent(folder: Path = DEFAULT_AGENT_DIR, adapt: float = 0.0, explore: float = 0.0) -> QPolicy:
    """The IQL agent saved in `folder` (default: the shipped one), as the simulator plays it (`adapt`, `explore`:
    the strengths of its session estimates, `pasta.policy.session_estimate`)."""
    from pasta.policy.iql import TwinQ
    from pasta.policy.user_model import UserModel

    q, user_model = TwinQ.load(Path(folder) / "qnet"), UserModel.load(Path(folder) / "user_model")
    return QPolicy(q, user_model, adapt=adapt, explore=explore)
