"""Simulator-only baselines: the oracle that knows the user's planted type (an upper reference for agents); the
Bayesian reference that knows everything but the person is `user_sim.bayes_reference` (it needs the population)."""

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


BASELINES = {
    "random": RandomPolicy,
    "lmm-order": LMMOrderPolicy,
    "oracle": OraclePolicy,
    "oracle-top": lambda: OraclePolicy("top"),
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
    return BASELINES[name](seed) if name == "random" else BASELINES[name]()


def trained_agent(folder: Path = DEFAULT_AGENT_DIR, adapt: float = 0.0, explore: float = 0.0) -> QPolicy:
    """The IQL agent saved in `folder` (default: the shipped one), as the simulator plays it (`adapt`, `explore`:
    the strengths of its session estimates, `pasta.policy.session_estimate`)."""
    from pasta.policy.iql import TwinQ
    from pasta.policy.user_model import UserModel

    q, user_model = TwinQ.load(Path(folder) / "qnet"), UserModel.load(Path(folder) / "user_model")
    return QPolicy(q, user_model, adapt=adapt, explore=explore)
