"""The Q-network of the PASTA agent: how good is it to show candidate a in state s?

State features (from the interaction so far): the initial prompt's embedding, the current prompt's embedding,
the mean embedding of the images chosen so far, the turn index (one-hot) and the EM user-type posterior.
Action features: the candidate's text embedding, its category (one-hot) and its utility under each EM user type.
Candidate sets change every turn, so Q scores (state, candidate) pairs rather than a fixed action list (RL over
changing action spaces).

Q is a residual on the user model's myopic value, one value per user type: Q_k(s, a) = u_k(a) + f_k(s, a), what
candidate a is worth if the person is of type k (its utility to that type plus where it leads), and
Q(s, a) = posterior(s) . Q_.(s, a). One residual shared by all types (`per_type_values=False`: Q = posterior . u +
f) has to average continuation values that differ by type, and measured worse. With `myopic_residual=False` the
network outputs Q without the utility term.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from pasta.contracts import CATEGORIES


@dataclass
class QNetConfig:
    embedding_dim: int = 384
    n_types: int = 4
    """Size of the user-type posterior in the state."""
    horizon: int = 5
    """Turns per session (turn index one-hot)."""
    hidden: int = 256
    projection: int = 32
    """Every 384-d embedding in the state and the action goes through one shared linear map to this many
    dimensions before the MLP: four embeddings of raw width would let the network chase noise in directions the
    logged choices say nothing about."""
    myopic_residual: bool = True
    """Add the per-type utilities of the candidate to the network's output (see the module docstring)."""
    per_type_values: bool = True
    """One output per user type, trained on each type's reward weighted by the session's posterior over types
    (pasta.policy.iql); False: a single output."""

    @property
    def n_values(self) -> int:
        return self.n_types if self.per_type_values else 1


def state_dim(c: QNetConfig) -> int:
    return 3 * c.embedding_dim + c.horizon + c.n_types


def action_dim(c: QNetConfig) -> int:
    return c.embedding_dim + len(CATEGORIES) + c.n_types


def state_features(
    c: QNetConfig, initial: np.ndarray, current: np.ndarray, chosen_images: np.ndarray, turn: int, posterior: np.ndarray
) -> np.ndarray:
    """[state_dim]: chosen_images [n_chosen, D] (empty at the first turn -> zeros)."""
    mean_chosen = chosen_images.mean(0) if len(chosen_images) else np.zeros(c.embedding_dim, np.float32)
    turn_one_hot = np.eye(c.horizon, dtype=np.float32)[min(turn, c.horizon - 1)]
    return np.concatenate([initial, current, mean_chosen, turn_one_hot, posterior]).astype(np.float32)


def action_features(embeddings: np.ndarray, categories: list[str], utilities: np.ndarray) -> np.ndarray:
    """[N, action_dim]: candidate embeddings [N, D], category one-hots and per-type utilities [N, K]."""
    one_hot = np.zeros((len(categories), len(CATEGORIES)), np.float32)
    one_hot[np.arange(len(categories)), [CATEGORIES.index(c) for c in categories]] = 1
    return np.concatenate([embeddings.astype(np.float32), one_hot, utilities.astype(np.float32)], axis=1)


def mlp(n_in: int, hidden: int, n_out: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )


class EmbeddingProjection(nn.Module):
    """Maps a feature vector whose first `n_embeddings` blocks are D-d embeddings: each block through one shared
    linear map to `projection` dims, the remaining features passed through."""

    def __init__(self, config: QNetConfig, n_embeddings: int) -> None:
        super().__init__()
        self.d, self.n = config.embedding_dim, n_embeddings
        self.linear = nn.Linear(config.embedding_dim, config.projection, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cut = self.d * self.n
        blocks = x[..., :cut].unflatten(-1, (self.n, self.d))
        return torch.cat([self.linear(blocks).flatten(-2), x[..., cut:]], dim=-1)

    def out_dim(self, in_dim: int) -> int:
        return in_dim - self.n * (self.d - self.linear.out_features)


def posterior_weighted(values: torch.Tensor, state: torch.Tensor, config: QNetConfig) -> torch.Tensor:
    """[B, K] per-type values -> [B]: weighted by the posterior over types held in the state's last K features."""
    return (values * state[..., -config.n_types :]).sum(-1)


class QNetwork(nn.Module):
    """Q(state, candidate): per-type values [B, K] (`values`) or, with `per_type_values=False`, one value [B]."""

    def __init__(self, config: QNetConfig) -> None:
        super().__init__()
        self.config = config
        self.state_projection = EmbeddingProjection(config, 3)  # initial, current, mean chosen image (one shared map)
        self.action_projection = EmbeddingProjection(config, 1)
        n_in = self.state_projection.out_dim(state_dim(config)) + self.action_projection.out_dim(action_dim(config))
        self.net = mlp(n_in, config.hidden, config.n_values)

    def values(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """state [B, S], action [B, A] -> [B, K] per-type values, or [B] for a single-output network."""
        features = torch.cat([self.state_projection(state), self.action_projection(action)], dim=-1)
        out = self.net(features)
        k = self.config.n_types
        if not self.config.per_type_values:
            out = out.squeeze(-1)
            if self.config.myopic_residual:
                out = out + posterior_weighted(action[..., -k:], state, self.config)  # posterior . u(a)
            return out
        return out + action[..., -k:] if self.config.myopic_residual else out  # u_k(a) + f_k(s, a)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """[B]: the value under the state's posterior over types."""
        out = self.values(state, action)
        return posterior_weighted(out, state, self.config) if self.config.per_type_values else out

    @torch.no_grad()
    def q(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """One state [S], candidates [N, A] -> [N] values."""
        s = torch.as_tensor(state, dtype=torch.float32).expand(len(candidates), -1)
        return self.forward(s, torch.as_tensor(candidates, dtype=torch.float32)).numpy()


class ValueNetwork(nn.Module):
    """V(state): per-type [B, K] (or [B] for single-output Q-networks)."""

    def __init__(self, config: QNetConfig) -> None:
        super().__init__()
        self.config = config
        self.projection = EmbeddingProjection(config, 3)
        self.net = mlp(self.projection.out_dim(state_dim(config)), config.hidden, config.n_values)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        out = self.net(self.projection(state))
        return out if self.config.per_type_values else out.squeeze(-1)


def config_dict(c: QNetConfig) -> dict:
    return asdict(c)
