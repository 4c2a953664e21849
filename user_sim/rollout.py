"""Episodes of a slate policy against a simulated user, at embedding level (no rendering).

`run_episode` is a pure function of (policy, user, world, seed): the same arguments give the same episode, so
rollouts run through any executor (`play`: this process, local processes or Ray actors, `pasta.executors`)
without touching the algorithms, and give the same episodes wherever they ran.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pasta.executors import ExecutorConfig, map_jobs
from pasta.policy.slate import SlatePolicy
from pasta.policy.state import PolicyState, ShownSlate
from pasta.session import Turn
from user_sim.users import SimulatedUser
from user_sim.world import EmbeddingWorld, SimCandidate


@dataclass
class SimulatedTurn(Turn):
    """A turn of a simulated session: the app's `Turn` (the prompt it expanded, the candidates, the slate, the
    policy's scores, the chosen column, a rating; no images are rendered) with what only the simulator knows: the
    world tuple of the prompt and of every candidate, and each column's planted utility."""

    prompt_index: int = 0
    """World tuple of the prompt this turn expanded."""
    candidate_indices: list[int] = field(default_factory=list, repr=False)
    """World tuple of every candidate (parallel to `candidates`)."""
    column_utilities: list[float] = field(default_factory=list)
    """The user's (planted) utility of each column: the reward signal of evaluations."""

    @property
    def column_indices(self) -> list[int]:
        """World tuples of the slate's columns, left to right."""
        return [self.candidate_indices[i] for i in self.slate]

    @property
    def chosen_index(self) -> int:
        return self.candidate_indices[self.slate[self.choice]]


@dataclass
class Episode:
    user_id: str
    type_index: int
    seed: int
    policy: str
    initial_index: int
    turns: list[SimulatedTurn]
    select_seconds: list[float] = field(default_factory=list, compare=False, repr=False)
    """Wall time of the policy's `select` per turn (how long the agent took to score a turn's candidates)."""
    seconds: float = field(default=0.0, compare=False, repr=False)
    """Wall time of the whole episode in the process that played it."""

    def utilities(self) -> np.ndarray:
        """[turns]: utility of the chosen column per turn."""
        return np.array([s.column_utilities[s.choice] for s in self.turns], np.float32)


def policy_state(
    world: EmbeddingWorld,
    user: SimulatedUser,
    seed: int,
    history: list[int],
    candidates: list[SimCandidate],
    turn: int,
    turns: list[SimulatedTurn],
    total_turns: int | None = None,
) -> PolicyState:
    """What a policy sees, built as the live agent builds it (`PolicyState.build`): the world's embedding of each
    shown prompt stands in for its images. `planted_utilities` and `planted_temperature` are the simulator's
    secrets: only the oracle baselines read them."""
    E = world.embeddings
    indices = np.array([c.index for c in candidates])
    shown = [ShownSlate.of(E[s.column_indices], None, s.choice) for s in turns]
    return PolicyState.build(
        E[history[0]],
        shown,
        seed=seed,
        turn=turn,
        turns=total_turns,
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
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    prompt = world.random_prompt(rng) if initial_index is None else int(initial_index)
    user = user.for_session(world, prompt)
    history, turns_played, select_seconds = [prompt], [], []
    for turn in range(turns):
        candidates = world.propose(history[-1], rng, n_candidates)
        state = policy_state(world, user, seed, history, candidates, turn, turns_played, turns)
        t0 = time.perf_counter()
        slate, scores = policy.select(state, [c.candidate for c in candidates], slate_size)
        select_seconds.append(time.perf_counter() - t0)
        columns = [candidates[i].index for i in slate]
        choice = user.choose(columns, rng)
        utilities = [float(user.utilities[j]) for j in columns]
        rating = user.rate(columns[choice], rng) if rate else None
        turns_played.append(
            SimulatedTurn(
                index=turn,
                prompt=world.captions[history[-1]],
                candidates=[c.candidate for c in candidates],
                slate=list(slate),
                scores=np.asarray(scores, np.float32).tolist(),
                seeds=[],
                images=[],
                choice=choice,
                rating=rating,
                policy=policy.name,
                prompt_index=history[-1],
                candidate_indices=[c.index for c in candidates],
                column_utilities=utilities,
            )
        )
        history.append(columns[choice])
    seconds = time.perf_counter() - started
    return Episode(user.user_id, user.type_index, seed, policy.name, prompt, turns_played, select_seconds, seconds)


@dataclass
class Rollouts:
    """The workload of simulated sessions: what every worker receives once (the policies by name, the world, the
    users), then plays any chunk of (policy name, user index, seed) jobs with."""

    policies: dict[str, SlatePolicy]
    world: EmbeddingWorld
    users: list[SimulatedUser]
    turns: int = 5
    rate: bool = False

    def __call__(self, jobs: list[tuple[str, int, int]]) -> list[Episode]:
        return [
            run_episode(self.policies[name], self.users[u], self.world, seed=seed, turns=self.turns, rate=self.rate)
            for name, u, seed in jobs
        ]


def play_many(
    policies: dict[str, SlatePolicy],
    world: EmbeddingWorld,
    users: list[SimulatedUser],
    seeds: Sequence[int],
    executor: ExecutorConfig | None = None,
    turns: int = 5,
    rate: bool = False,
    desc: str | None = None,
) -> dict[str, list[Episode]]:
    """Every policy against every user (user i with seeds[i]), in one map over the executor: worker processes start
    and receive the world once for all the policies (a pool per policy cost 4-5 s of start-up each on 2 cores).
    Episodes per policy, in the users' order; the same seeds give the same episodes on every executor."""
    if len(seeds) != len(users):
        raise ValueError(f"{len(seeds)} seeds for {len(users)} users")
    workload = Rollouts(dict(policies), world, list(users), turns, rate)
    jobs = [(name, i, int(seed)) for name in policies for i, seed in enumerate(seeds)]
    episodes = map_jobs(workload, jobs, executor or ExecutorConfig(), desc=desc or f"simulate {', '.join(policies)}")
    n = len(users)
    return {name: episodes[k * n : (k + 1) * n] for k, name in enumerate(policies)}


def play(
    policy: SlatePolicy,
    world: EmbeddingWorld,
    users: list[SimulatedUser],
    seeds: Sequence[int],
    executor: ExecutorConfig | None = None,
    turns: int = 5,
    rate: bool = False,
    desc: str | None = None,
) -> list[Episode]:
    """One episode per user (user i with seeds[i]), in the users' order, on the executor `executor` names (default:
    this process). The same seeds give the same episodes on every executor."""
    name = policy.name
    return play_many({name: policy}, world, users, seeds, executor, turns, rate, desc or f"simulate {name}")[name]
