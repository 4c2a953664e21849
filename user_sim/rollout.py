"""Episodes of a slate policy against a simulated user, at embedding level (no rendering).

`run_episode` is a pure function of (policy, user, world, seed): the same arguments give the same episode, so
rollouts can run through any executor (`map_episodes` here uses a process pool; Ray's `map` fits the same
shape) without touching the algorithms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from pasta.policy.slate import SlatePolicy
from pasta.policy.state import PolicyState, ShownSlate
from user_sim.users import SimulatedUser
from user_sim.world import EmbeddingWorld, SimCandidate


@dataclass
class Step:
    turn: int
    prompt_index: int
    """World tuple of the prompt this turn expanded."""
    candidates: list[SimCandidate] = field(repr=False)
    slate: list[int]
    """Indices into candidates, one per column."""
    scores: np.ndarray = field(repr=False)
    choice: int
    """Chosen column."""
    column_utilities: list[float]
    """The user's (planted) utility of each column: the reward signal of evaluations."""
    rating: int | None = None

    @property
    def chosen_index(self) -> int:
        return self.candidates[self.slate[self.choice]].index


@dataclass
class Episode:
    user_id: str
    type_index: int
    seed: int
    policy: str
    initial_index: int
    steps: list[Step]

    def utilities(self) -> np.ndarray:
        """[turns]: utility of the chosen column per turn."""
        return np.array([s.column_utilities[s.choice] for s in self.steps], np.float32)


def policy_state(
    world: EmbeddingWorld,
    user: SimulatedUser,
    seed: int,
    history: list[int],
    candidates: list[SimCandidate],
    turn: int,
    steps: list[Step],
) -> PolicyState:
    """What a policy sees, built as the live agent builds it (`PolicyState.build`): the world's embedding of each
    shown prompt stands in for its images. `planted_utilities` and `planted_temperature` are the simulator's
    secrets: only the oracle baselines read them."""
    E = world.embeddings
    indices = np.array([c.index for c in candidates])
    shown = [ShownSlate.of(E[[s.candidates[i].index for i in s.slate]], None, s.choice) for s in steps]
    return PolicyState.build(
        E[history[0]],
        shown,
        seed=seed,
        turn=turn,
        candidate_embeddings=E[indices],
        candidate_categories=[c.candidate.category for c in candidates],
        planted_utilities=user.utilities[indices],
        planted_temperature=user.temperature,
    )


def run_episode(
    policy: SlatePolicy,
    user: SimulatedUser,
    world: EmbeddingWorld,
    seed: int,
    turns: int = 5,
    n_candidates: int = 25,
    slate_size: int = 4,
    rate: bool = False,
    initial_index: int | None = None,
) -> Episode:
    rng = np.random.default_rng(seed)
    prompt = world.random_prompt(rng) if initial_index is None else int(initial_index)
    history, steps = [prompt], []
    for turn in range(turns):
        candidates = world.propose(history[-1], rng, n_candidates)
        state = policy_state(world, user, seed, history, candidates, turn, steps)
        slate, scores = policy.select(state, [c.candidate for c in candidates], slate_size)
        columns = [candidates[i].index for i in slate]
        choice = user.choose(columns, rng)
        utilities = [float(user.utilities[j]) for j in columns]
        rating = user.rate(columns[choice], rng) if rate else None
        steps.append(Step(turn, history[-1], candidates, list(slate), np.asarray(scores), choice, utilities, rating))
        history.append(columns[choice])
    return Episode(user.user_id, user.type_index, seed, policy.name, prompt, steps)


def map_episodes(fn: Callable[..., Episode], jobs: Iterable[tuple], executor: Executor | None = None) -> list[Episode]:
    """Run fn(*job) for every job, in order, locally or through an executor (processes, Ray, ...)."""
    jobs = list(jobs)
    if executor is None:
        return [fn(*job) for job in jobs]
    return list(executor.map(fn, *zip(*jobs, strict=True)))
