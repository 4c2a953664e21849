"""Implicit Q-Learning (Kostrikov et al. 2022) for the PASTA slate agent, offline, from logged sessions.

Each logged turn is one transition (SlateQ decomposition: the slate's value is carried by the item the person
consumed): state s_t, action = the chosen column's candidate, reward r_t = the chosen column's utility under the
EM user model or the person's rating when they gave one, next state s_{t+1}. With per-type values (the default,
pasta.policy.qnet) every type k has its own reward u_k(chosen), Q_k and V_k, and each transition's type-k losses are
weighted by the posterior of type k given the whole session (EM's responsibilities), so Q_k learns from the sessions
of people of type k.

    V   <- expectile_tau( min(Q1', Q2')(s, a) - V(s) )              (tau = 0.7)
    Qi  <- ( r + gamma * (1 - done) * V(s') - Qi(s, a) )^2           (gamma = 0.99)
    Qi' <- (1 - 0.005) Qi' + 0.005 Qi                                (Polyak)

The agent then builds its slate from these values with the user model's choice model (`pasta.policy.slate.
choice_model_slate`, SlateQ: the one-per-category slate whose chosen column is worth most in expectation);
`slate="top"` keeps the older greedy rule (the best candidate per category). Defaults follow the IQL paper.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pasta.policy.episodes import LoggedEpisode
from pasta.policy.qnet import QNetConfig, QNetwork, ValueNetwork, action_features, posterior_weighted, state_features
from pasta.policy.state import PolicyState, ShownSlate
from pasta.policy.user_model import UserModel, column_features
from pasta.weights import read_weights, save_weights


@dataclass
class IQLConfig:
    expectile: float = 0.7
    """tau of the expectile regression for V (IQL paper)."""
    discount: float = 0.99
    """gamma (IQL paper)."""
    polyak: float = 0.005
    """Target-network update rate (IQL paper)."""
    lr: float = 3e-4
    batch_size: int = 256
    steps: int = 10_000
    rating_scale: float = 1.0
    """Ratings 1..5 become rewards (rating - 3) * rating_scale, so they sit on the utilities' scale."""
    reward_posterior: str = "before"
    """Which posterior over types weighs the per-type utilities of a model-based reward: "before" the choice
    (what the agent knew when it showed the slate), "after" it, or "final" (after the whole logged session).
    The person chose this column because they like it, so posteriors that have seen the choice inflate its reward
    by how much it reveals the type (polarizing candidates look good): the Q-network would learn to chase that
    selection effect. "before" keeps the reward on the same footing as the candidates the agent compares."""
    seed: int = 0
    qnet: QNetConfig = field(default_factory=QNetConfig)

    def __post_init__(self) -> None:
        if self.reward_posterior not in ("before", "after", "final"):
            raise ValueError(f"reward_posterior must be 'before', 'after' or 'final', not {self.reward_posterior!r}")
        if not 0 < self.expectile < 1:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile}")
        if not 0 <= self.discount <= 1 or not 0 < self.polyak <= 1:
            raise ValueError("discount must be in [0, 1] and polyak in (0, 1]")


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class Transitions:
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    """[N]: the reward under the posterior (single-output Q-networks)."""
    next_states: np.ndarray
    dones: np.ndarray
    type_rewards: np.ndarray | None = None
    """[N, K]: the reward if the person is of type k (per-type Q-networks; default: `rewards` for every type)."""
    type_weights: np.ndarray | None = None
    """[N, K]: how much each type's losses count for this transition: the posterior over types given the whole
    logged session, as EM's responsibilities (default: uniform)."""

    def __len__(self) -> int:
        return len(self.rewards)

    @classmethod
    def concat(cls, parts: list[Transitions]) -> Transitions:
        def join(name: str):
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return cls(*(join(f.name) for f in fields(cls)))

    def per_type(self, n_types: int) -> tuple[np.ndarray, np.ndarray]:
        """(type_rewards, type_weights), filled in with their defaults where missing."""
        rewards = self.type_rewards if self.type_rewards is not None else np.repeat(self.rewards[:, None], n_types, 1)
        weights = self.type_weights if self.type_weights is not None else np.full((len(self), n_types), 1 / n_types)
        return rewards.astype(np.float32), weights.astype(np.float32)


def episode_states(
    episode: LoggedEpisode, user_model: UserModel, qnet: QNetConfig, posteriors: np.ndarray | None = None
) -> list[np.ndarray]:
    """The state vector before each turn and after the last one (len = turns + 1), from the same `PolicyState` the
    live agent and the simulator build. `posteriors`: the user model's `live_posteriors` of the episode's slates,
    when the caller has them."""
    shown = [ShownSlate.of(t.text_embeddings, t.image_embeddings, t.choice) for t in episode.turns]
    if posteriors is None:
        whole = PolicyState.build(episode.initial_embedding, shown, seed=0)
        posteriors = user_model.live_posteriors(whole.history_slates)
    states = []
    for t in range(len(shown) + 1):
        state = PolicyState.build(episode.initial_embedding, shown[:t], seed=0)
        states.append(
            state_features(
                qnet,
                state.initial_embedding,
                state.current_embedding,
                state.chosen_image_embeddings,
                t,
                posteriors[t],
            )
        )
    return states


def transitions(episodes: list[LoggedEpisode], user_model: UserModel, cfg: IQLConfig) -> Transitions:
    """One transition per logged turn; rewards from ratings when present, else the user model's utility of the
    chosen column under the posterior over types (see `IQLConfig.reward_posterior`)."""
    parts = []
    for episode in episodes:
        if not episode.turns:
            continue
        slates = [(column_features(t.text_embeddings, t.image_embeddings[:, None, :]), t.choice) for t in episode.turns]
        every = user_model.live_posteriors(slates)  # [turns + 1, K]: before any choice, then after each
        states = episode_states(episode, user_model, cfg.qnet, every)
        posteriors = {"final": every[-1]}
        S, A, R, RK = [], [], [], []
        for t, turn in enumerate(episode.turns):
            x = slates[t][0]
            if turn.rating is not None:
                reward = (turn.rating - 3) * cfg.rating_scale
                RK.append(np.full(len(posteriors["final"]), reward, np.float32))
            else:
                seen = {"before": t, "after": t + 1}.get(cfg.reward_posterior)
                posterior = posteriors["final"] if seen is None else every[seen]
                with torch.no_grad():
                    u = user_model.utilities(torch.as_tensor(x[turn.choice])).numpy()  # [K]
                reward = float(u @ posterior)
                RK.append(u)
            with torch.no_grad():
                u_action = user_model.utilities(
                    torch.as_tensor(column_features(turn.text_embeddings[[turn.choice]], None))
                ).numpy()  # as the policy sees it: before rendering
            S.append(states[t])
            A.append(action_features(turn.text_embeddings[[turn.choice]], [turn.categories[turn.choice]], u_action)[0])
            R.append(reward)
        n = len(episode.turns)
        parts.append(
            Transitions(
                np.stack(S),
                np.stack(A),
                np.array(R, np.float32),
                np.stack(states[1 : n + 1]),
                np.array([0.0] * (n - 1) + [1.0], np.float32),
                np.stack(RK).astype(np.float32),
                np.repeat(posteriors["final"][None].astype(np.float32), n, 0),
            )
        )
    return Transitions.concat(parts)


# ---------------------------------------------------------------------------------------------- training


class TwinQ(nn.Module):
    """Two Q-networks; the agent scores with their minimum (clipped double-Q)."""

    def __init__(self, config: QNetConfig) -> None:
        super().__init__()
        self.config = config
        self.q1, self.q2 = QNetwork(config), QNetwork(config)

    def values(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """[B, K] per-type values (or [B]): the minimum of the two networks, type by type."""
        return torch.minimum(self.q1.values(state, action), self.q2.values(state, action))

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        values = self.values(state, action)
        return posterior_weighted(values, state, self.config) if self.config.per_type_values else values

    @torch.no_grad()
    def q(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """One state [S], candidates [N, A] -> [N] values: `QNetwork.q` of the DESIGN contract."""
        s = torch.as_tensor(state, dtype=torch.float32).expand(len(candidates), -1)
        return self.forward(s, torch.as_tensor(candidates, dtype=torch.float32)).numpy()

    @torch.no_grad()
    def q_types(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """One state [S], candidates [N, A] -> [N, K]: each candidate's value if the person is of type k."""
        s = torch.as_tensor(state, dtype=torch.float32).expand(len(candidates), -1)
        values = self.values(s, torch.as_tensor(candidates, dtype=torch.float32))
        return (values if self.config.per_type_values else values[:, None].expand(-1, self.config.n_types)).numpy()

    def save(self, folder: str | Path, metrics: dict | None = None) -> None:
        save_weights(self, folder, {"qnet": asdict(self.config), "metrics": metrics or {}})

    @classmethod
    def load(cls, folder: str | Path) -> TwinQ:
        state, meta = read_weights(folder, what="Q-network", how_to_train="pasta train q", legacy="qnet")
        model = cls(QNetConfig(**{"per_type_values": False, **meta["qnet"]}))  # saved before per-type values existed
        model.load_state_dict(state)
        return model.eval()


def expectile_loss(diff: torch.Tensor, expectile: float, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean asymmetric squared error; with per-type `weights` [B, K], summed over types with those weights."""
    loss = torch.where(diff > 0, expectile, 1 - expectile) * diff.pow(2)
    return loss.mean() if weights is None else (weights * loss).sum(-1).mean()


def squared_loss(diff: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    return diff.pow(2).mean() if weights is None else (weights * diff.pow(2)).sum(-1).mean()


def train_iql(data: Transitions, cfg: IQLConfig, progress: bool = False) -> tuple[TwinQ, dict]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    q = TwinQ(cfg.qnet)
    q_target = copy.deepcopy(q).requires_grad_(False)
    v = ValueNetwork(cfg.qnet)
    q_opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
    v_opt = torch.optim.Adam(v.parameters(), lr=cfg.lr)
    per_type = cfg.qnet.per_type_values
    rewards, weights = data.per_type(cfg.qnet.n_types) if per_type else (data.rewards, np.ones(len(data)))
    tensors = [
        torch.as_tensor(x, dtype=torch.float32)
        for x in (data.states, data.actions, rewards, data.next_states, data.dones, weights)
    ]
    log: dict[str, list[float]] = {"q_loss": [], "v_loss": []}
    steps = range(cfg.steps)
    if progress:
        from pasta.console import progress_bar

        steps = progress_bar(steps, desc="IQL")
    t0 = time.perf_counter()
    for step in steps:
        idx = torch.as_tensor(rng.integers(0, len(data), cfg.batch_size))
        s, a, r, s2, done, w = (x[idx] for x in tensors)
        w = w if per_type else None  # per-type: each type's loss weighted by the session's posterior
        if per_type:
            done = done[:, None]
        with torch.no_grad():
            target_q = q_target.values(s, a)
            next_v = v(s2)
        v_loss = expectile_loss(target_q - v(s), cfg.expectile, w)
        v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        v_opt.step()
        target = r + cfg.discount * (1 - done) * next_v
        q_loss = squared_loss(q.q1.values(s, a) - target, w) + squared_loss(q.q2.values(s, a) - target, w)
        q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        q_opt.step()
        with torch.no_grad():
            for p, p_target in zip(q.parameters(), q_target.parameters(), strict=True):
                p_target.lerp_(p, cfg.polyak)
        if step % 100 == 0:
            log["q_loss"].append(q_loss.item())
            log["v_loss"].append(v_loss.item())
    stats = {
        "transitions": len(data),
        "steps": cfg.steps,
        "seconds": time.perf_counter() - t0,
        "final_q_loss": float(np.mean(log["q_loss"][-5:])),
        "final_v_loss": float(np.mean(log["v_loss"][-5:])),
    }
    return q.eval(), stats
