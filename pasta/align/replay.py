"""DPOK's memory and baseline (pasta.align.dpok): the replay buffer of recent trajectories, the minibatches of
transitions drawn from it, and the value network V(x_t, prompt, t) whose estimate is subtracted from the reward."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class ValueNet(nn.Module):
    """V(x_t, prompt, t): flattened sample + prompt text embedding + per-step embedding -> expected final reward."""

    def __init__(self, sample_numel: int, text_dim: int, num_steps: int, hidden: int = 256) -> None:
        super().__init__()
        self.sample_proj = nn.Linear(sample_numel, hidden)
        self.text_proj = nn.Linear(text_dim, hidden)
        self.step_embedding = nn.Embedding(num_steps, hidden)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)  # a constant baseline at first: a random one would only add noise to A
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x_t: torch.Tensor, text: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        h = self.sample_proj(x_t.flatten(1)) + self.text_proj(text) + self.step_embedding(step)
        return self.mlp(h).squeeze(-1)


@dataclass
class Transitions:
    """A minibatch of transitions: x_t, x_{t-1}, step index, old log-prob, final reward, prompt, and the reward minus
    its round's mean for the same prompt."""

    x_t: torch.Tensor
    x_prev: torch.Tensor
    step: torch.Tensor
    log_prob_old: torch.Tensor
    reward: torch.Tensor
    prompts: list[str]
    prompt_advantage: torch.Tensor


class ReplayBuffer:
    """The last `size` trajectories: states [S+1, C, H, W], log-probs [S'], reward, prompt, and the reward minus the
    mean reward of the same prompt in the same round (the per-prompt advantage)."""

    def __init__(self, size: int, stochastic_steps: list[int]) -> None:
        self.size = size
        self.steps = torch.as_tensor(stochastic_steps)
        self.items: list[tuple[torch.Tensor, torch.Tensor, float, str, float]] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, states: torch.Tensor, log_probs: torch.Tensor, rewards: torch.Tensor, prompts: list[str]) -> None:
        means = {p: float(np.mean([float(r) for r, q in zip(rewards, prompts) if q == p])) for p in set(prompts)}
        for n, prompt in enumerate(prompts):
            self.items.append(
                (
                    states[:, n].clone(),
                    log_probs[:, n].clone(),
                    float(rewards[n]),
                    prompt,
                    float(rewards[n]) - means[prompt],
                )
            )
        del self.items[: max(0, len(self.items) - self.size)]

    def sample(self, batch: int, generator: torch.Generator, newest: int | None = None) -> Transitions:
        """Uniform (trajectory, stochastic step) pairs; only the `newest` trajectories when given."""
        lo = 0 if newest is None else max(0, len(self.items) - newest)
        traj = torch.randint(lo, len(self.items), (batch,), generator=generator)
        k = torch.randint(0, len(self.steps), (batch,), generator=generator)
        step = self.steps[k]
        items = [self.items[int(i)] for i in traj]
        return Transitions(
            x_t=torch.stack([it[0][int(s)] for it, s in zip(items, step)]),
            x_prev=torch.stack([it[0][int(s) + 1] for it, s in zip(items, step)]),
            step=step,
            log_prob_old=torch.stack([it[1][int(j)] for it, j in zip(items, k)]),
            reward=torch.tensor([it[2] for it in items]),
            prompts=[it[3] for it in items],
            prompt_advantage=torch.tensor([it[4] for it in items]),
        )
