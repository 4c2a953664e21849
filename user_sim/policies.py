"""Simulator-only baseline: the oracle that knows the user's planted type (an upper reference for agents)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pasta.contracts import Candidate
from pasta.policy.loader import DEFAULT_AGENT_DIR
from pasta.policy.slate import LMMOrderPolicy, QPolicy, RandomPolicy, check_slate, choice_model_slate, top_per_category
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
