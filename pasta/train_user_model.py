"""`pasta train user-model --db logs.sqlite`: fit the EM user-type model on any log store (the app's, the
simulator's, or both), choosing K by held-out log-likelihood, and record the model version in the store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pasta.embeddings import TextEmbeddingCache, choice_data_from_episodes
from pasta.logbook import LogStore
from pasta.paths import MODELS_DIR
from pasta.user_model import UserModel, UserModelConfig, select_k


@dataclass
class TrainUserModelConfig:
    db: Path
    """Log store to learn from."""
    out: Path = MODELS_DIR / "user_model"
    """Where the fitted model is saved."""
    ks: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    """Numbers of user types to compare by held-out log-likelihood."""
    validation_fraction: float = 0.2
    """Share of users held out to choose K."""
    source: str | None = None
    """Only sessions from this source (app, simulator); all when unset."""
    model: UserModelConfig = field(default_factory=UserModelConfig)
    seed: int = 0


def load_choice_data(store: LogStore, source: str | None = None, known_texts: dict | None = None):
    from pasta.backends.minilm import shared_minilm

    cache = TextEmbeddingCache(shared_minilm().embed, known=known_texts)
    return choice_data_from_episodes(store.episodes(source=source), cache)


def train_user_model(cfg: TrainUserModelConfig, known_texts: dict | None = None) -> dict:
    store = LogStore(cfg.db, create=False)
    data, user_ids = load_choice_data(store, cfg.source, known_texts)
    if data.n_users < 2 * max(cfg.ks):
        raise ValueError(f"{cfg.db} has choices from {data.n_users} users: too few to fit up to {max(cfg.ks)} types")
    rng = np.random.default_rng(cfg.seed)
    users = rng.permutation(data.n_users)
    n_val = max(1, int(cfg.validation_fraction * data.n_users))
    best_k, table, _ = select_k(data.subset_users(users[n_val:]), data.subset_users(users[:n_val]), list(cfg.ks),
                                cfg.model)
    model = UserModel(data.X.shape[2], UserModelConfig(**{**asdict(cfg.model), "n_types": best_k}))
    t0 = time.perf_counter()
    trace = model.fit(data)
    fit_seconds = time.perf_counter() - t0
    metrics = {"k": best_k, "k_selection": table, "turns": len(data.X), "users": data.n_users,
               "log_likelihood_per_turn": trace["log_likelihood_per_turn"][-1], "fit_seconds": fit_seconds}
    model.save(cfg.out, metrics)
    store.record_model_version("user_model", f"em-k{best_k}", str(cfg.out), metrics=metrics,
                               trained_on={"db": str(cfg.db), "source": cfg.source, "users": data.n_users})
    return metrics


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(TrainUserModelConfig, args=argv, prog="pasta train user-model")
    metrics = train_user_model(cfg)
    print(f"{'K':>3} {'held-out LL/turn':>17} {'train LL/turn':>14}")
    for row in metrics["k_selection"]:
        print(f"{row['k']:>3} {row['held_out_log_likelihood_per_turn']:>17.4f} "
              f"{row['train_log_likelihood_per_turn']:>14.4f}")
    print(f"chose K={metrics['k']}; fitted on {metrics['turns']} turns of {metrics['users']} users in "
          f"{metrics['fit_seconds']:.1f} s; saved to {cfg.out}")
    return 0
