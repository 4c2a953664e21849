"""Simulator-only baseline: the oracle that knows the user's planted type (an upper reference for agents)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pasta.contracts import Candidate
from pasta.slate import LMMOrderPolicy, RandomPolicy, top_per_category


class OraclePolicy:
    """Top candidate per category by the user's true (planted) utility, read from the simulator's state."""

    name = "oracle"

    def select(self, state: dict, candidates: Sequence[Candidate], slate_size: int) -> tuple[list[int], np.ndarray]:
        scores = np.asarray(state["planted_utilities"], np.float32)
        return top_per_category(scores, candidates, slate_size), scores


BASELINES = {"random": RandomPolicy, "lmm-order": LMMOrderPolicy, "oracle": OraclePolicy}


def make_policy(name: str, seed: int = 0):
    if name not in BASELINES:
        raise ValueError(f"unknown policy {name!r}: choose one of {', '.join(BASELINES)}")
    return BASELINES[name](seed) if name == "random" else BASELINES[name]()
