"""`pasta simulate`: run a slate policy against simulated users and write the sessions to a log store, in the same
format as the app's, with a summary of utility by turn."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pasta.executors import ExecutorConfig, Scale
from pasta.logbook import LogStore
from user_sim.policies import make_policy
from user_sim.rollout import play
from user_sim.store import write_episodes
from user_sim.users import make_users, planted_population
from user_sim.world import EmbeddingWorld


@dataclass
class SimulateConfig:
    db: Path
    """Log store to write the simulated sessions to (created if missing)."""
    policy: str = "random"
    """Slate policy: random, lmm-order, oracle or oracle-top."""
    users: int = 1000
    turns: int = 5
    types: int = 4
    """Planted user types (the same seed gives the same types)."""
    temperature: float = 0.3
    """Users' choice noise."""
    ratings: bool = False
    """Also give 1-5 ratings."""
    seed: int = 0
    scale: Scale = field(default_factory=ExecutorConfig)


def simulate(cfg: SimulateConfig) -> dict:
    world = EmbeddingWorld()
    types = planted_population(cfg.types, seed=cfg.seed)
    users = make_users(world, types, cfg.users, seed=cfg.seed + 1, temperature=cfg.temperature)
    policy = make_policy(cfg.policy, cfg.seed)
    t0 = time.perf_counter()
    seeds = [cfg.seed * 10_000_019 + i for i in range(len(users))]
    episodes = play(policy, world, users, seeds, cfg.scale, turns=cfg.turns, rate=cfg.ratings)
    rollout_seconds = time.perf_counter() - t0
    with LogStore(cfg.db) as store:
        write_episodes(store, episodes, world, [t.name for t in types])
    utilities = np.stack([e.utilities() for e in episodes])
    return {
        "episodes": len(episodes),
        "episodes_per_second": len(episodes) / rollout_seconds,
        "mean_utility_by_turn": utilities.mean(0).tolist(),
    }


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(SimulateConfig, args=argv, prog="pasta simulate")
    r = simulate(cfg)
    print(f"{r['episodes']} episodes ({r['episodes_per_second']:.0f}/s) written to {cfg.db}")
    print("mean utility by turn: " + ", ".join(f"{u:.3f}" for u in r["mean_utility_by_turn"]))
    return 0
