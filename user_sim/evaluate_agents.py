"""`pasta eval agents`: does the value-based agent help? Every policy against the same held-out simulated users
with the same seeds.

1. log behaviour sessions (random slates) of training users with planted types;
2. fit the EM user model on those logs, build IQL transitions (model-based rewards), train the Q-network;
3. run LMM-order, random, greedy-myopic, IQL and the oracle (knows the planted type) on held-out users;
4. report mean final-turn utility, cumulative utility, improvement over turn 0 and a per-type breakdown, with
   bootstrap 95% confidence intervals; write JSON and a plot of utility by turn per policy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pasta.executors import ExecutorConfig, Scale
from pasta.policy.episodes import LoggedEpisode, LoggedTurn
from pasta.policy.iql import IQLConfig, train_iql, transitions
from pasta.policy.qnet import QNetConfig
from pasta.policy.session_estimate import EXPLORE_STRENGTH, SESSION_STRENGTH
from pasta.policy.slate import GreedyMyopicPolicy, QPolicy, SlatePolicy
from pasta.policy.user_model import ChoiceData, UserModel, UserModelConfig, column_features
from user_sim.bayes_reference import BayesPolicy
from user_sim.policies import NO_KEEP, check_policy_names, make_policy, policy_factory, trained_agent
from user_sim.populations import population
from user_sim.rollout import Episode, play, play_many
from user_sim.world import EmbeddingWorld

PAIRED = ("greedy", "greedy-slate", "oracle")
"""Policies the agent is compared with turn by turn on the same users (paired differences)."""
BASELINES = ("lmm-order", "random", "greedy", "greedy-slate", "greedy-slate+adapt")
"""Policies that know no Q-network: what agents are compared with (and the oracle above them)."""
REFERENCES = ("bayes", "bayes-ahead")
"""The Bayesian references (`user_sim.bayes_reference`): built by the commands, which know the population."""
AGENTS = ("iql", "iql+adapt", "iql+explore", "shipped", "shipped+adapt", "shipped+explore", "shipped+adapt+explore")
"""Policies with a Q-network: the one trained here (iql) and the shipped one, with and without session estimates."""


def paired_key(other: str) -> str:
    return f"iql_minus_{other.replace('-', '_')}_final"


TARGETS = {
    "iql_vs_lmm_order_relative_final": 0.15,
    "iql_minus_greedy_final": 0.0,
    "iql_share_of_oracle_improvement": 0.8,
}


@dataclass
class EvalAgentsConfig:
    train_users: int = 10_000
    """Behaviour sessions to learn from (x turns = transitions; 10,000 x 5 = 50,000)."""
    eval_users: int = 1000
    """Held-out users every policy plays against (same users, same seeds)."""
    turns: int = 5
    population: str = "planted"
    """Who the simulated users are (`user_sim.populations`): planted, target, small-steps, interaction, flat,
    mixture. Training and held-out users come from the same population."""
    types: int = 4
    """Planted types (population "planted")."""
    temperature: float = 0.3
    behaviour: str = "random"
    """Policy that chose the logged slates."""
    user_model: UserModelConfig = field(default_factory=lambda: UserModelConfig(n_types=4))
    iql: IQLConfig = field(default_factory=IQLConfig)
    policies: tuple[str, ...] = (
        *BASELINES,
        "iql",
        "iql+adapt",
        "iql+explore",
        "shipped",
        "shipped+adapt",
        "shipped+explore",
        "oracle",
    )
    """greedy: best myopic candidate per category; greedy-slate: myopic values with the agent's slate construction
    (SlateQ choice model), the agent without what IQL learned; "+adapt": with the session's own preference estimate
    (`pasta.policy.session_estimate`); "+explore": with the session's edit utility and an optimism bonus where the
    types do not explain the picks; shipped: the agent in models/embedded/agent, trained on the planted
    population; oracle: knows the user's true utilities (oracle-top: best true candidate per category);
    bayes, bayes-ahead: know the population's form and prior and the world's tuples, not the person
    (`user_sim.bayes_reference`; bayes-ahead looks a turn further). Any
    name ending in ":no-keep" ("shipped:no-keep"): that policy without the last-turn rule (`final_turn_keep`)."""
    adapt: float = SESSION_STRENGTH
    """Strength of the session estimate for the "+adapt" policies."""
    explore: float = EXPLORE_STRENGTH
    """Optimism of the "+explore" policies (the session's edit utility, `pasta.policy.session_estimate`)."""
    bootstrap: int = 1000
    out: Path = Path("runs/eval_agents")
    seed: int = 0
    scale: Scale = field(default_factory=ExecutorConfig)


def logged_episode(world: EmbeddingWorld, episode: Episode) -> LoggedEpisode:
    turns = []
    for step in episode.turns:
        columns = np.array(step.column_indices)
        turns.append(
            LoggedTurn(
                world.embeddings[columns],
                world.embeddings[columns],
                [step.candidates[i].category for i in step.slate],
                step.choice,
                step.rating,
            )
        )
    return LoggedEpisode(world.embeddings[episode.initial_index], turns, episode.user_id)


def choice_data(world: EmbeddingWorld, episodes: list[Episode]) -> ChoiceData:
    X, choice, user = [], [], []
    for u, episode in enumerate(episodes):
        for step in episode.turns:
            E = world.embeddings[np.array(step.column_indices)]
            X.append(column_features(E, E[:, None, :]))
            choice.append(step.choice)
            user.append(u)
    return ChoiceData(np.stack(X), np.array(choice), np.array(user))


def bootstrap_ci(values: np.ndarray, n: int, rng: np.random.Generator) -> list[float]:
    means = values[rng.integers(0, len(values), (n, len(values)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def evaluate_policies(
    factories: dict[str, Callable[[], SlatePolicy]],
    world: EmbeddingWorld,
    users: list,
    group_names: list[str],
    seed: int,
    turns: int,
    bootstrap: int,
    scale: Scale,
) -> tuple[dict, dict, dict]:
    """Every policy against the same users with the same seeds: (results per policy, mean utility by turn per
    policy, final-turn utility per user per policy for paired comparisons)."""
    rng = np.random.default_rng(seed)
    seeds = [seed * 7_000_003 + i for i in range(len(users))]
    results, curves, finals = {}, {}, {}
    policies = {name: factory() for name, factory in factories.items()}
    for name, policy in policies.items():
        policy.name = name
    played = play_many(policies, world, users, seeds, scale, turns=turns, desc=f"evaluate {len(policies)} policies")
    for name, episodes in played.items():
        U = np.stack([e.utilities() for e in episodes])  # [users, turns]
        groups = np.array([e.type_index for e in episodes])
        curves[name] = U.mean(0).tolist()
        finals[name] = U[:, -1]
        results[name] = {
            "final_turn_utility": float(U[:, -1].mean()),
            "final_turn_ci95": bootstrap_ci(U[:, -1], bootstrap, rng),
            "cumulative_utility": float(U.sum(1).mean()),
            "cumulative_ci95": bootstrap_ci(U.sum(1), bootstrap, rng),
            "improvement_over_turn0": float((U[:, -1] - U[:, 0]).mean()),
            "improvement_ci95": bootstrap_ci(U[:, -1] - U[:, 0], bootstrap, rng),
            "final_turn_by_type": {
                group: float(U[groups == k, -1].mean()) for k, group in enumerate(group_names) if (groups == k).any()
            },
            "episodes_per_second_one_worker": len(episodes) / max(sum(e.seconds for e in episodes), 1e-9),
            "select_ms_median": 1000 * float(np.median([t for e in episodes for t in e.select_seconds])),
        }
    return results, curves, finals


def paired_summary(finals: dict[str, np.ndarray], agents: tuple[str, ...]) -> dict:
    """Each agent (or Bayesian reference) minus each baseline, the other references, the oracle, for an agent with
    a session estimate ("shipped+explore") the agent without it, and the agent played without the last-turn rule
    where it played (`NO_KEEP`), on the same users (mean, paired se); and every policy's share of the oracle's gain
    over LMM order."""
    agents = tuple(a for a in agents if a in finals)
    others = [b for b in (*BASELINES, *REFERENCES, "oracle") if b in finals]

    def compared_with(agent: str) -> list[str]:  # an agent with a session estimate ("iql+explore") also vs its base
        base = agent.split("+")[0]
        extra = ([base] if base != agent else []) + [agent + NO_KEEP]
        return [b for b in others if b != agent] + [b for b in extra if b in finals]

    out: dict = {
        "paired": {
            agent: {
                other: {
                    "mean": float((finals[agent] - finals[other]).mean()),
                    "se": float((finals[agent] - finals[other]).std() / np.sqrt(len(finals[agent]))),
                }
                for other in compared_with(agent)
            }
            for agent in agents
        }
    }
    if "lmm-order" in finals and "oracle" in finals:
        gain = float((finals["oracle"] - finals["lmm-order"]).mean())
        out["share_of_oracle_gain"] = {
            name: float((finals[name] - finals["lmm-order"]).mean()) / gain if gain else None
            for name in finals
            if name not in ("lmm-order", "oracle")
        }
    return out


def unpaired_shares(summary: dict) -> str:
    """A line with the share of the oracle's gain of every policy `paired_summary` did not list with its own
    differences (the baselines, or a reference played alone); empty where there are none."""
    paired = summary.get("paired", {})
    shares = summary.get("share_of_oracle_gain", {})
    others = [f"{n} {s:.0%}" for n, s in shares.items() if n not in paired and s is not None]
    return "share of the oracle's gain over LMM order: " + ", ".join(others) if others else ""


def evaluate_agents(cfg: EvalAgentsConfig, progress: bool = True) -> dict:
    people = population(cfg.population)
    check_policy_names(cfg.policies, (*BASELINES, *AGENTS, *REFERENCES))
    cfg.out.mkdir(parents=True, exist_ok=True)
    world = EmbeddingWorld()
    group_names = people.group_names(cfg.types)  # what Episode.type_index names
    timings = {}

    def users(n: int, seed: int):
        return people.users(world, n, seed, cfg.temperature, types_seed=cfg.seed, planted_types=cfg.types)

    t0 = time.perf_counter()
    behaviour = make_policy(cfg.behaviour, cfg.seed)
    train_users = users(cfg.train_users, cfg.seed + 1)
    seeds = [cfg.seed * 10_000_019 + i for i in range(len(train_users))]
    logs = play(behaviour, world, train_users, seeds, cfg.scale, turns=cfg.turns, desc=f"behaviour {behaviour.name}")
    timings["behaviour_rollouts_s"] = time.perf_counter() - t0
    timings["episodes_per_second"] = len(logs) / timings["behaviour_rollouts_s"]

    t0 = time.perf_counter()
    data = choice_data(world, logs)
    user_model = UserModel(data.X.shape[2], cfg.user_model)
    user_model.fit(data, progress=progress)
    timings["user_model_fit_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    iql_cfg = IQLConfig(
        **{
            **asdict(cfg.iql),
            "qnet": QNetConfig(**{**asdict(cfg.iql.qnet), "n_types": cfg.user_model.n_types, "horizon": cfg.turns}),
        }
    )
    dataset = transitions([logged_episode(world, e) for e in logs], user_model, iql_cfg)
    timings["transitions_s"] = time.perf_counter() - t0
    q, iql_stats = train_iql(dataset, iql_cfg, progress=progress)
    timings["iql_train_s"] = iql_stats["seconds"]

    policies = {
        "greedy": lambda: GreedyMyopicPolicy(user_model),
        "greedy-slate": lambda: GreedyMyopicPolicy(user_model, "choice-model"),
        "greedy-slate+adapt": lambda: GreedyMyopicPolicy(user_model, "choice-model", adapt=cfg.adapt),
        "iql": lambda: QPolicy(q, user_model),
        "iql+adapt": lambda: QPolicy(q, user_model, adapt=cfg.adapt),
        "iql+explore": lambda: QPolicy(q, user_model, explore=cfg.explore),
        "shipped": lambda: trained_agent(adapt=0.0),
        "shipped+adapt": lambda: trained_agent(adapt=cfg.adapt),
        "shipped+explore": lambda: trained_agent(explore=cfg.explore),
        "shipped+adapt+explore": lambda: trained_agent(adapt=cfg.adapt, explore=cfg.explore),
        "bayes": lambda: BayesPolicy(people, world, cfg.seed, types_seed=cfg.seed, planted_types=cfg.types),
        "bayes-ahead": lambda: BayesPolicy(
            people, world, cfg.seed, types_seed=cfg.seed, planted_types=cfg.types, ahead=True
        ),
    }
    eval_users = users(cfg.eval_users, cfg.seed + 2)
    factories = {name: policy_factory(name, policies, cfg.seed) for name in cfg.policies}
    results, curves, finals = evaluate_policies(
        factories, world, eval_users, group_names, cfg.seed, cfg.turns, cfg.bootstrap, cfg.scale
    )
    summary = {}
    if {"iql", "lmm-order", "greedy", "oracle"} <= set(results):
        iql, base = results["iql"], results["lmm-order"]
        summary = {
            "iql_vs_lmm_order_relative_final": (iql["final_turn_utility"] - base["final_turn_utility"])
            / abs(base["final_turn_utility"]),
            "iql_minus_greedy_final": iql["final_turn_utility"] - results["greedy"]["final_turn_utility"],
            "iql_share_of_oracle_improvement": (iql["final_turn_utility"] - base["final_turn_utility"])
            / (results["oracle"]["final_turn_utility"] - base["final_turn_utility"]),
        }
    for other in PAIRED:
        if {"iql", other} <= set(finals):  # paired: the same users and seeds
            d = finals["iql"] - finals[other]
            summary[paired_key(other) + "_paired_se"] = float(d.std() / np.sqrt(len(d)))
            summary.setdefault(paired_key(other), float(d.mean()))
    summary.update(paired_summary(finals, (*AGENTS, *REFERENCES)))
    timings["iql_select_25_candidates_ms_median"] = results.get("iql", {}).get("select_ms_median")
    out = {
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "policies": results,
        "utility_by_turn": curves,
        "summary": summary,
        "iql": iql_stats,
        "timings": timings,
        "targets": {
            k: {"target": t, "value": summary.get(k), "met": summary.get(k) is not None and summary[k] >= t}
            for k, t in TARGETS.items()
        },
    }
    (cfg.out / "metrics.json").write_text(json.dumps(out, indent=2) + "\n")
    q.save(cfg.out / "qnet", metrics=summary)
    user_model.save(cfg.out / "user_model")
    plot(curves, cfg.out / "utility_by_turn.png")
    return out


def plot(curves: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, "o-", label=name)
    ax.set(xlabel="turn", ylabel="mean utility of the chosen column", title="Utility by turn (held-out users)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(EvalAgentsConfig, args=argv, prog="pasta eval agents")
    r = evaluate_agents(cfg)
    print(
        f"{'policy':<12} {'final':>7} {'95% CI':>17} {'cumulative':>11} {'gain vs t0':>11} {'select ms':>10} "
        f"{'episodes/s/worker':>18}"
    )
    for name, m in r["policies"].items():
        lo, hi = m["final_turn_ci95"]
        print(
            f"{name:<12} {m['final_turn_utility']:>7.3f} [{lo:>6.3f}, {hi:>6.3f}] {m['cumulative_utility']:>11.3f} "
            f"{m['improvement_over_turn0']:>11.3f} {m['select_ms_median']:>10.3f} {m['episodes_per_second_one_worker']:>18.1f}"
        )
    t = r["timings"]
    print(
        f"IQL on {r['iql']['transitions']} transitions: {r['iql']['seconds']:.1f} s for {r['iql']['steps']} steps; "
        f"behaviour simulator {t['episodes_per_second']:.0f} episodes/s"
    )
    for other in PAIRED:
        if paired_key(other) + "_paired_se" in r["summary"]:
            print(
                f"iql - {other}: {r['summary'][paired_key(other)]:+.3f} final-turn utility "
                f"(paired se {r['summary'][paired_key(other) + '_paired_se']:.3f})"
            )
    for agent, rows in r["summary"].get("paired", {}).items():
        cells = ", ".join(f"{other} {d['mean']:+.2f} ({d['se']:.2f})" for other, d in rows.items())
        share = r["summary"].get("share_of_oracle_gain", {}).get(agent)
        print(f"{agent} minus: {cells}" + ("" if share is None else f"; share of oracle gain {share:.0%}"))
    if line := unpaired_shares(r["summary"]):
        print(line)
    for name, t in r["targets"].items():
        value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        verdict = (
            "not measured: iql, lmm-order, greedy and oracle must all play"
            if t["value"] is None
            else ("met" if t["met"] else "NOT met")
        )
        print(f"{name:<36} {value:>8} (target {t['target']}) {verdict}")
    print(f"wrote {cfg.out / 'metrics.json'} and {cfg.out / 'utility_by_turn.png'}")
    return 0
