"""`pasta train user-model --db logs.sqlite`: fit the EM user-type model on any log store (the app's, the
simulator's, or both), choosing K by held-out log-likelihood, and record the model version in the store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from pasta.executors import ExecutorConfig, Scale
from pasta.logbook import LogStore
from pasta.policy.choice_data import choice_data_from_episodes, choice_data_from_pairwise
from pasta.policy.episodes import TextEmbeddingCache, read_episodes
from pasta.policy.user_model import ChoiceData, UserModel, UserModelConfig, select_k


@dataclass
class TrainUserModelConfig:
    db: Path
    """Log store to learn from."""
    out: Path = Path("runs") / "agent" / "user_model"
    """Where the fitted model is saved: where `pasta train q` reads it by default (the shipped agent's
    models/embedded/agent/user_model only when named)."""
    ks: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
    """Numbers of user types to compare by held-out log-likelihood."""
    validation_fraction: float = 0.2
    """Share of users held out to choose K."""
    k_selection_users: int = 2500
    """At most this many users (drawn at random; 0: all) for choosing K; the chosen K is then fitted on every user.
    Each candidate K costs a whole EM fit, so on 10,000 simulated sessions choosing among 8 Ks on all users took
    most of a closed loop's time."""
    source: str | None = None
    """Only sessions from this source (app, simulator); all when unset."""
    pairwise: bool = False
    """Also learn from the store's pairwise preferences (Pick-a-Pic-style rows imported with `pasta logs import
    pairs.parquet`, with image embeddings), as two-column choices in the same EM likelihood: large non-sequential
    preference data shaping the utilities, as in the paper. Off by default: on simulated users, 20,000 pairs of
    2,000 extra users did not raise held-out accuracy on sequential choices (0.736 vs 0.742 without)."""
    model: UserModelConfig = field(default_factory=UserModelConfig)
    seed: int = 0
    scale: Scale = field(default_factory=ExecutorConfig)
    """Where the fits that choose K run: `--executor processes` fits the Ks side by side on this machine's cores
    (each an independent EM fit: 8 Ks on 2,000 users 195 s -> 134 s on 2 cores), `--executor ray` on a cluster."""


def load_choice_data(
    store: LogStore,
    source: str | None = None,
    known_texts: dict | None = None,
    pairwise: bool = False,
    embed_text: TextEmbeddingCache | None = None,
):
    """(sequential choices, their user ids, pairwise choices or None, pairwise row counts). `embed_text`: a cache
    shared with the Q-network's training (`pasta retrain`), so each text is embedded once."""
    if embed_text is None:
        from pasta.backends.minilm import shared_minilm

        embed_text = TextEmbeddingCache(shared_minilm().embed, known=known_texts)
    cache = embed_text
    data, user_ids = choice_data_from_episodes(read_episodes(store.episodes(source=source), cache))
    if not pairwise:
        return data, user_ids, None, {}
    pairs, _, counts = choice_data_from_pairwise(store.pairwise_rows(), cache)
    if counts["used"] == 0:
        raise ValueError(
            f"--pairwise: {store.path} has no usable pairwise preferences ({counts['ties']} ties, "
            f"{counts['no_embeddings']} rows without image embeddings)"
        )
    return data, user_ids, pairs, counts


def train_user_model(
    cfg: TrainUserModelConfig, known_texts: dict | None = None, embed_text: TextEmbeddingCache | None = None
) -> dict:
    if cfg.k_selection_users < 0 or 0 < cfg.k_selection_users < 2 * max(cfg.ks):
        raise ValueError(
            f"k_selection_users must be 0 (all users) or at least {2 * max(cfg.ks)} for Ks up to {max(cfg.ks)}, "
            f"got {cfg.k_selection_users}"
        )
    store = LogStore(cfg.db, create=False)
    data, user_ids, pairs, pair_counts = load_choice_data(store, cfg.source, known_texts, cfg.pairwise, embed_text)
    if data.n_users < 2 * max(cfg.ks):
        raise ValueError(f"{cfg.db} has choices from {data.n_users} users: too few to fit up to {max(cfg.ks)} types")
    with_pairs = (lambda d: ChoiceData.concat([d, pairs])) if pairs is not None else (lambda d: d)  # noqa: E731
    rng = np.random.default_rng(cfg.seed)
    users = rng.permutation(data.n_users)
    if cfg.k_selection_users:
        users = users[: cfg.k_selection_users]
    n_val = max(1, int(cfg.validation_fraction * len(users)))
    # K is chosen on held-out sequential users only: they are what the model must predict
    best_k, table, _ = select_k(
        with_pairs(data.subset_users(users[n_val:])),
        data.subset_users(users[:n_val]),
        list(cfg.ks),
        cfg.model,
        cfg.scale,
    )
    model = UserModel(data.X.shape[2], UserModelConfig(**{**asdict(cfg.model), "n_types": best_k}))
    t0 = time.perf_counter()
    trace = model.fit(with_pairs(data))
    fit_seconds = time.perf_counter() - t0
    metrics = {
        "k": best_k,
        "k_selection": table,
        "k_selection_users": len(users),
        "turns": len(data.X),
        "users": data.n_users,
        "log_likelihood_per_turn": trace["log_likelihood_per_turn"][-1],
        "fit_seconds": fit_seconds,
    }
    if pairs is not None:
        metrics["pairwise"] = pair_counts
    model.save(cfg.out, metrics)
    store.record_model_version(
        "user_model",
        f"em-k{best_k}",
        str(cfg.out),
        metrics=metrics,
        trained_on={
            "db": str(cfg.db),
            "source": cfg.source,
            "users": data.n_users,
            "pairwise_choices": pair_counts.get("used", 0),
        },
    )
    return metrics


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(TrainUserModelConfig, args=argv, prog="pasta train user-model")
    metrics = train_user_model(cfg)
    print(f"{'K':>3} {'held-out LL/turn':>17} {'train LL/turn':>14}")
    for row in metrics["k_selection"]:
        print(
            f"{row['k']:>3} {row['held_out_log_likelihood_per_turn']:>17.4f} "
            f"{row['train_log_likelihood_per_turn']:>14.4f}"
        )
    print(
        f"chose K={metrics['k']} on {metrics['k_selection_users']} users; fitted on {metrics['turns']} turns of {metrics['users']} users in "
        f"{metrics['fit_seconds']:.1f} s; saved to {cfg.out}"
    )
    if "pairwise" in metrics:
        p = metrics["pairwise"]
        print(
            f"with {p['used']} pairwise preferences ({p['ties']} ties and {p['no_embeddings']} rows without image "
            "embeddings skipped)"
        )
    return 0
