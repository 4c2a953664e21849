"""`pasta eval closed-loop`: the path a deployment takes, per population of simulated users.

For each population: simulate training users through a behaviour policy into a fresh SQLite log store (the app's
format), retrain the user model (K by held-out likelihood) and the Q-network from that store with the same
functions `pasta retrain` runs, then play every policy against held-out users of the same population with the same
seeds. The shipped agent (trained on the planted population) plays too, so the table also says how it serves
people outside its training population. Prints one table per population and writes JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pasta.executors import ExecutorConfig, Scale
from pasta.logbook import LogStore
from pasta.policy.episodes import TextEmbeddingCache
from pasta.policy.iql import IQLConfig
from pasta.policy.session_estimate import EXPLORE_STRENGTH, SESSION_STRENGTH
from pasta.policy.slate import GreedyMyopicPolicy
from pasta.policy.train_q import TrainQConfig, train_q
from pasta.policy.train_user_model import TrainUserModelConfig, train_user_model
from pasta.policy.user_model import UserModel
from user_sim.bayes_reference import BayesPolicy
from user_sim.evaluate_agents import BASELINES, REFERENCES, evaluate_policies, paired_summary, unpaired_shares
from user_sim.policies import BASELINES as SIMULATOR_BASELINES
from user_sim.policies import check_policy_names, make_policy, policy_factory, trained_agent
from user_sim.populations import POPULATIONS, population
from user_sim.rollout import play
from user_sim.store import write_episodes
from user_sim.world import EmbeddingWorld

AGENTS = (
    "retrained",
    "retrained+adapt",
    "retrained+explore",
    "retrained+adapt+explore",
    "shipped",
    "shipped+adapt",
    "shipped+explore",
    "shipped+adapt+explore",
)
"""Every agent the loop can play (`--policies`): the Q-network retrained from the loop's logs and the shipped one,
each with and without the session estimates."""
DEFAULT_POLICIES = (
    *BASELINES,
    "retrained",
    "retrained+explore",
    "retrained+adapt+explore",
    "shipped",
    "shipped+adapt+explore",
    "oracle",
)
"""What a run plays unless told: the baselines; each agent without estimates and as the app runs it (both
estimates); the retrained one with exploring alone (the target seekers' best); the oracle. Three agents fewer than
`AGENTS`: evaluating policies is the loop's third-largest part."""
KNOWN_POLICIES = tuple(dict.fromkeys((*BASELINES, *AGENTS, *SIMULATOR_BASELINES, *REFERENCES)))
"""Every name `--policies` takes (and any of them ending in `NO_KEEP`)."""


@dataclass
class ClosedLoopConfig:
    populations: tuple[str, ...] = tuple(POPULATIONS)
    """Populations to run (`user_sim.populations`), each on its own logs and models."""
    train_users: int = 10_000
    """Simulated sessions logged by the behaviour policy, per population."""
    eval_users: int = 1000
    """Held-out users of the same population every policy plays against."""
    turns: int = 5
    temperature: float = 0.3
    behaviour: str = "random"
    ks: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    """Numbers of user types compared by held-out likelihood, as `pasta retrain` does."""
    k_selection_users: int = 2500
    """At most this many of the logged users choose K (0: all), as `pasta retrain` does; the chosen K is fitted on
    all of them."""
    iql: IQLConfig = field(default_factory=IQLConfig)
    adapt: float = SESSION_STRENGTH
    """Strength of the session estimate of the "+adapt" policies."""
    explore: float = EXPLORE_STRENGTH
    """Optimism of the "+explore" policies."""
    policies: tuple[str, ...] = DEFAULT_POLICIES
    """Policies played against the held-out users (`DEFAULT_POLICIES`; any of `AGENTS`, the baselines, oracle)."""
    bootstrap: int = 1000
    out: Path = Path("runs/closed_loop")
    """Per population: logs.sqlite, agent/ (user_model/, qnet/); metrics.json for all."""
    seed: int = 0
    scale: Scale = field(default_factory=ExecutorConfig)


def run_population(cfg: ClosedLoopConfig, name: str, world: EmbeddingWorld, progress: bool = True) -> dict:
    people = population(name)
    folder = cfg.out / name
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "logs.sqlite"
    db.unlink(missing_ok=True)  # a fresh store: the loop learns from this run's sessions only
    timings = {}

    def users(n: int, seed: int):
        return people.users(world, n, seed, cfg.temperature, types_seed=cfg.seed)

    t0 = time.perf_counter()
    behaviour = make_policy(cfg.behaviour, cfg.seed)
    train_users = users(cfg.train_users, cfg.seed + 1)
    seeds = [cfg.seed * 10_000_019 + i for i in range(len(train_users))]
    logs = play(behaviour, world, train_users, seeds, cfg.scale, turns=cfg.turns, desc=f"{name}: behaviour")
    with LogStore(db) as store:
        write_episodes(store, logs, world, people.group_names())
    timings["simulate_and_log_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    embed_text = TextEmbeddingCache(_minilm_embed, known=world.known_text_embeddings())
    agent_dir = folder / "agent"
    um = train_user_model(
        TrainUserModelConfig(
            db=db,
            out=agent_dir / "user_model",
            ks=cfg.ks,
            k_selection_users=cfg.k_selection_users,
            seed=cfg.seed,
            scale=cfg.scale,
        ),
        embed_text=embed_text,
    )
    timings["user_model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = train_q(
        TrainQConfig(db=db, user_model=agent_dir / "user_model", out=agent_dir / "qnet", iql=cfg.iql),
        embed_text=embed_text,
    )
    timings["q_s"] = time.perf_counter() - t0

    user_model = UserModel.load(agent_dir / "user_model")
    factories = {
        "greedy": lambda: GreedyMyopicPolicy(user_model),
        "greedy-slate": lambda: GreedyMyopicPolicy(user_model, "choice-model"),
        "greedy-slate+adapt": lambda: GreedyMyopicPolicy(user_model, "choice-model", adapt=cfg.adapt),
        "retrained": lambda: trained_agent(agent_dir, adapt=0.0),
        "retrained+adapt": lambda: trained_agent(agent_dir, adapt=cfg.adapt),
        "retrained+explore": lambda: trained_agent(agent_dir, explore=cfg.explore),
        "retrained+adapt+explore": lambda: trained_agent(agent_dir, adapt=cfg.adapt, explore=cfg.explore),
        "shipped": lambda: trained_agent(adapt=0.0),
        "shipped+adapt": lambda: trained_agent(adapt=cfg.adapt),
        "shipped+explore": lambda: trained_agent(explore=cfg.explore),
        "shipped+adapt+explore": lambda: trained_agent(adapt=cfg.adapt, explore=cfg.explore),
        "bayes": lambda: BayesPolicy(people, world, cfg.seed, types_seed=cfg.seed),
        "bayes-ahead": lambda: BayesPolicy(people, world, cfg.seed, types_seed=cfg.seed, ahead=True),
    }
    chosen = {p: policy_factory(p, factories, cfg.seed) for p in cfg.policies}
    t0 = time.perf_counter()
    eval_users = users(cfg.eval_users, cfg.seed + 2)
    results, curves, finals = evaluate_policies(
        chosen, world, eval_users, people.group_names(), cfg.seed, cfg.turns, cfg.bootstrap, cfg.scale
    )
    timings["evaluate_s"] = time.perf_counter() - t0
    return {
        "population": name,
        "description": people.description,
        "user_model": {
            "k": um["k"],
            "turns": um["turns"],
            "users": um["users"],
            "k_selection_users": um["k_selection_users"],
        },
        "iql": {"transitions": q["transitions"], "steps": q["steps"], "seconds": q["seconds"]},
        "policies": results,
        "utility_by_turn": curves,
        "summary": paired_summary(finals, (*AGENTS, *REFERENCES)),
        "timings": timings,
    }


def _minilm_embed(texts: list[str]):
    """Only texts the world does not know are embedded (none, for the simulator's own logs)."""
    from pasta.backends.minilm import shared_minilm

    return shared_minilm().embed(texts)


def closed_loop(cfg: ClosedLoopConfig, progress: bool = True) -> dict:
    cfg.out.mkdir(parents=True, exist_ok=True)
    world = EmbeddingWorld()
    runs = {}
    for name in cfg.populations:
        population(name)  # an unknown name fails before any work
    check_policy_names(cfg.policies, KNOWN_POLICIES)
    for name in cfg.populations:
        runs[name] = run_population(cfg, name, world, progress)
        _write(cfg, runs)
    return {"config": json.loads(json.dumps(asdict(cfg), default=str)), "populations": runs}


def _write(cfg: ClosedLoopConfig, runs: dict) -> None:
    out = {"config": json.loads(json.dumps(asdict(cfg), default=str)), "populations": runs}
    (cfg.out / "metrics.json").write_text(json.dumps(out, indent=2) + "\n")


def table(run: dict) -> str:
    """One population's table: final-turn utility per policy, the agents' paired differences."""
    lines = [
        f"## {run['population']}: {run['description']} (EM K={run['user_model']['k']}, "
        f"IQL on {run['iql']['transitions']} transitions)",
        f"{'policy':<20} {'final':>7} {'95% CI':>17} {'select ms':>10}",
    ]
    for name, m in run["policies"].items():
        lo, hi = m["final_turn_ci95"]
        lines.append(
            f"{name:<20} {m['final_turn_utility']:>7.3f} [{lo:>6.3f}, {hi:>6.3f}] {m['select_ms_median']:>10.2f}"
        )
        if len(m["final_turn_by_type"]) > 1:
            lines.append(" " * 22 + ", ".join(f"{g} {v:.2f}" for g, v in m["final_turn_by_type"].items()))
    shares = run["summary"].get("share_of_oracle_gain", {})
    for agent, rows in run["summary"]["paired"].items():
        cells = ", ".join(f"{o} {d['mean']:+.2f} ({d['se']:.2f})" for o, d in rows.items())
        share = shares.get(agent)
        lines.append(f"{agent} minus: {cells}" + ("" if share is None else f"; {share:.0%} of the oracle's gain"))
    if line := unpaired_shares(run["summary"]):
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(ClosedLoopConfig, args=argv, prog="pasta eval closed-loop")
    result = closed_loop(cfg)
    for run in result["populations"].values():
        print(table(run) + "\n")
    print(f"wrote {cfg.out / 'metrics.json'}")
    return 0
