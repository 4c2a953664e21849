"""`pasta train q --db logs.sqlite`: train the PASTA agent's Q-network by IQL on any log store (the app's, the
simulator's, or a mixture of the two with a ratio), with the EM user model supplying posteriors and rewards, and
record the model version in the store.

`pasta retrain --db logs.sqlite` is the closed loop in one command: refit the user model on the logs, then the
Q-network on top of it, both saved where the app loads its agent from (models/embedded/agent by default).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pasta.executors import ExecutorConfig, Scale
from pasta.logbook import LogStore
from pasta.paths import EMBEDDED_DIR
from pasta.policy.episodes import TextEmbeddingCache, read_episodes
from pasta.policy.iql import IQLConfig, train_iql, transitions
from pasta.policy.qnet import QNetConfig
from pasta.policy.user_model import UserModel

AGENT_DIR = EMBEDDED_DIR / "agent"
"""The shipped agent: written only when a command's --out names it."""
RUN_AGENT_DIR = Path("runs") / "agent"
"""Where the training commands write by default, each step reading what the one before wrote: `pasta train
user-model` -> runs/agent/user_model -> `pasta train q` -> runs/agent/qnet; `pasta app --agent-dir runs/agent` tries
the result."""


@dataclass
class TrainQConfig:
    db: Path
    """Log store to learn from."""
    user_model: Path = RUN_AGENT_DIR / "user_model"
    """A fitted EM user model (what `pasta train user-model` wrote), for posteriors and model-based rewards."""
    out: Path = RUN_AGENT_DIR / "qnet"
    """Where the Q-network is saved (the shipped agent's models/embedded/agent/qnet only when named)."""
    real_source: str = "app"
    """Log source of real sessions."""
    simulated_source: str = "simulator"
    """Log source of simulated sessions."""
    real_fraction: float | None = None
    """Share of real sessions in the training mixture (simulated sessions are subsampled or repeated to match);
    unset: every session once, whatever its source."""
    iql: IQLConfig = field(default_factory=IQLConfig)


def mixture(real: list, simulated: list, real_fraction: float | None, rng: np.random.Generator) -> list:
    """Real and simulated episodes in the requested proportion (all real sessions are always kept)."""
    if real_fraction is None or not real or not simulated:
        return real + simulated
    if not 0 < real_fraction <= 1:
        raise ValueError(f"real_fraction must be in (0, 1], got {real_fraction}")
    n_sim = int(round(len(real) * (1 - real_fraction) / real_fraction))
    picks = rng.choice(len(simulated), n_sim, replace=n_sim > len(simulated))
    return real + [simulated[i] for i in picks]


def train_q(cfg: TrainQConfig, embed_text=None) -> dict:
    store = LogStore(cfg.db, create=False)
    user_model = UserModel.load(cfg.user_model)
    if embed_text is None:
        from pasta.backends.minilm import shared_minilm

        embed_text = TextEmbeddingCache(shared_minilm().embed)
    real = read_episodes(store.episodes(source=cfg.real_source), embed_text)
    simulated = read_episodes(store.episodes(source=cfg.simulated_source), embed_text)
    episodes = mixture(real, simulated, cfg.real_fraction, np.random.default_rng(cfg.iql.seed))
    if not episodes:
        raise ValueError(
            f"{cfg.db} has no sessions with a choice from sources {cfg.real_source!r} or "
            f"{cfg.simulated_source!r}: nothing to learn from"
        )
    qnet = QNetConfig(
        **{
            **asdict(cfg.iql.qnet),
            "n_types": user_model.config.n_types,
            "embedding_dim": episodes[0].initial_embedding.shape[0],
        }
    )
    iql_cfg = IQLConfig(**{**asdict(cfg.iql), "qnet": qnet})
    t0 = time.perf_counter()
    data = transitions(episodes, user_model, iql_cfg)
    build_seconds = time.perf_counter() - t0
    q, stats = train_iql(data, iql_cfg, progress=True)
    metrics = {
        **stats,
        "transitions_seconds": build_seconds,
        "real_sessions": len(real),
        "simulated_sessions": len(simulated),
        "sessions_used": len(episodes),
    }
    q.save(cfg.out, metrics)
    store.record_model_version(
        "qnet",
        f"iql-{len(data)}t",
        str(cfg.out),
        metrics=metrics,
        trained_on={"db": str(cfg.db), "user_model": str(cfg.user_model), "real_fraction": cfg.real_fraction},
    )
    return metrics


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(TrainQConfig, args=argv, prog="pasta train q")
    m = train_q(cfg)
    print(
        f"IQL on {m['transitions']} transitions ({m['real_sessions']} real, {m['simulated_sessions']} simulated "
        f"sessions; {m['sessions_used']} used): {m['steps']} steps in {m['seconds']:.1f} s, "
        f"final Q loss {m['final_q_loss']:.4f}; saved to {cfg.out}"
    )
    return 0


@dataclass
class RetrainConfig:
    db: Path
    """Log store to learn from (e.g. the app's logs, or an import of its export)."""
    out: Path = RUN_AGENT_DIR
    """Agent folder: user_model/ and qnet/ are written here (ship with --out models/embedded/agent)."""
    real_fraction: float | None = None
    k_selection_users: int = 2500
    """At most this many users choose the number of user types (0: all); the chosen K is fitted on all."""
    iql: IQLConfig = field(default_factory=IQLConfig)
    scale: Scale = field(default_factory=ExecutorConfig)
    """Where the fits that choose K run (`--executor processes`: side by side on this machine's cores)."""


def retrain_main(argv: list[str]) -> int:
    """`pasta retrain`: user model, then Q-network, from one log store; both versions recorded in it."""
    import tyro

    from pasta.backends.minilm import shared_minilm
    from pasta.policy.train_user_model import TrainUserModelConfig, train_user_model

    cfg = tyro.cli(RetrainConfig, args=argv, prog="pasta retrain")
    embed_text = TextEmbeddingCache(shared_minilm().embed)  # one embedding per distinct text for both models
    um = train_user_model(
        TrainUserModelConfig(
            db=cfg.db, out=cfg.out / "user_model", k_selection_users=cfg.k_selection_users, scale=cfg.scale
        ),
        embed_text=embed_text,
    )
    print(
        f"user model: K={um['k']} (chosen on {um['k_selection_users']} users) on {um['turns']} turns of {um['users']} users -> {cfg.out / 'user_model'}"
    )
    q = train_q(
        TrainQConfig(
            db=cfg.db,
            user_model=cfg.out / "user_model",
            out=cfg.out / "qnet",
            real_fraction=cfg.real_fraction,
            iql=cfg.iql,
        ),
        embed_text=embed_text,
    )
    print(f"Q-network: IQL on {q['transitions']} transitions in {q['seconds']:.1f} s -> {cfg.out / 'qnet'}")
    return 0
