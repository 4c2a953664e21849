"""Focus-N-Fix: region-aware fine-tuning (Xing et al. 2025), as a LoRA adapter. One file, top to bottom.

The fine-tuned model starts from the same initial noise as the base model and is trained to raise the reward of its
image while keeping the image close to the base model's outside the problem region:

    L = -E[ r(I_theta, z) ] + lambda * E[ ||(1 - M) * (I_theta - I_base)||^2 / |1 - M| ]

I_theta and I_base are the app's samples (DPM-Solver++, classifier-free guidance) of the adapted and base models
from the same noise; the reward is differentiated through sampling (DRaFT-style, optionally only through the last
K steps). M is the problem mask of the base image, from the reward's saliency: |d r / d pixels| summed over
colour channels, smoothed, and the top `mask_fraction` of pixels taken (the paper uses a localized reward's
heatmap; the gradient of our alignment reward is the localized signal available here). The mask is computed once
per (prompt, seed) and kept fixed while training.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pasta.align.adapters import LoraSettings, add_lora, save_adapter, trainable_parameters
from pasta.align.diffusion import EmbeddedDiffusion
from pasta.align.rewards import Reward
from pasta.console import progress_bar


@dataclass
class FocusNFixConfig:
    """Focus-N-Fix on the embedded model; the loss is the paper's, sizes are chosen for a CPU budget of minutes."""

    mask_fraction: float = 0.25
    """Share of pixels in the problem mask (the most salient ones)."""
    mask_smoothing: int = 5
    """Side of the box filter that smooths the saliency map before thresholding (pixels, odd)."""
    outside_weight: float = 100.0
    """lambda, the weight of the squared change outside the mask (mean over outside pixels)."""
    batch_size: int = 4
    """Prompts (one image each) per gradient step."""
    seeds_per_prompt: int = 2
    """Fixed noise seeds per training prompt (the same noise for base and fine-tuned model)."""
    max_prompts: int = 64
    """Training prompts used (the first ones of the list)."""
    grad_last_steps: int = 0
    """Backpropagate through the last K sampling steps only (DRaFT-K); 0: through all of them."""
    lr: float = 3e-4
    grad_clip: float = 1.0
    steps: int = 2000
    """Gradient steps (at most)."""
    minutes: float = math.inf
    lora: LoraSettings = field(default_factory=LoraSettings)
    seed: int = 0

    def __post_init__(self) -> None:
        bad = []
        if not 0 < self.mask_fraction < 1:
            bad.append(f"mask_fraction={self.mask_fraction} (in (0, 1))")
        if self.mask_smoothing < 1 or self.mask_smoothing % 2 == 0:
            bad.append(f"mask_smoothing={self.mask_smoothing} (odd, >= 1)")
        if self.outside_weight < 0:
            bad.append(f"outside_weight={self.outside_weight} (>= 0)")
        if self.batch_size < 1 or self.seeds_per_prompt < 1 or self.max_prompts < 1 or self.steps < 1:
            bad.append("batch_size, seeds_per_prompt, max_prompts and steps must be >= 1")
        if self.grad_last_steps < 0:
            bad.append(f"grad_last_steps={self.grad_last_steps} (>= 0)")
        if self.lr <= 0 or self.grad_clip <= 0 or self.minutes <= 0:
            bad.append("lr, grad_clip and minutes must be > 0")
        if bad:
            raise ValueError("invalid Focus-N-Fix config: " + "; ".join(bad))


def saliency(reward: Reward, pixels: torch.Tensor, prompts: list[str], smoothing: int = 5) -> torch.Tensor:
    """[N,1,H,W]: |d r / d pixels| summed over colour channels and box-smoothed; where the reward looks."""
    if not reward.differentiable:
        raise ValueError(f"the reward {reward.spec!r} is not differentiable: Focus-N-Fix needs its saliency")
    x = pixels.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(reward(x, prompts).sum(), x)
    s = grad.abs().sum(1, keepdim=True)
    return F.avg_pool2d(s, smoothing, stride=1, padding=smoothing // 2, count_include_pad=False)


def problem_mask(
    reward: Reward, pixels: torch.Tensor, prompts: list[str], fraction: float = 0.25, smoothing: int = 5
) -> torch.Tensor:
    """[N,1,H,W] in {0, 1}: the top `fraction` of each image's pixels by reward saliency."""
    s = saliency(reward, pixels, prompts, smoothing).flatten(1)
    k = max(1, int(round(fraction * s.shape[1])))
    threshold = s.topk(k, dim=1).values[:, -1:]
    return (s >= threshold).float().view(len(pixels), 1, *pixels.shape[-2:])


def outside_change(pixels: torch.Tensor, base: torch.Tensor, mask: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """[N]: mean (squared or absolute) pixel change outside the mask, per outside pixel and channel."""
    diff = (pixels - base).pow(2) if squared else (pixels - base).abs()
    outside = (1 - mask).expand_as(diff)
    return (diff * outside).sum(dim=(1, 2, 3)) / outside.sum(dim=(1, 2, 3)).clamp_min(1)


class FocusNFix:
    """The trainer: the LoRA-adapted UNet, and per (prompt, seed) the base image and its problem mask."""

    def __init__(
        self, model: EmbeddedDiffusion, reward: Reward, prompts: list[str], config: FocusNFixConfig | None = None
    ) -> None:
        if not prompts:
            raise ValueError("Focus-N-Fix needs at least one training prompt")
        if not reward.differentiable:
            raise ValueError(
                f"Focus-N-Fix backpropagates through the reward, and {reward.spec!r} is not differentiable"
            )
        self.model, self.reward = model, reward
        self.config = c = config or FocusNFixConfig()
        torch.manual_seed(c.seed)
        self.generator = torch.Generator().manual_seed(c.seed)
        chosen = list(prompts)[: c.max_prompts]
        self.items = [
            (p, c.seed * 1_000_003 + 7919 * i + j) for i, p in enumerate(chosen) for j in range(c.seeds_per_prompt)
        ]
        self.unet = add_lora(model.unet, c.lora)
        self.optimizer = torch.optim.Adam(trainable_parameters(self.unet), lr=c.lr)
        self._base: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}
        self.history: list[dict] = []
        self.steps_done = 0

    def noise(self, index: list[int]) -> torch.Tensor:
        return torch.cat([self.model.initial_noise([self.items[i][1]], 1) for i in index])

    def base(self, index: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Base images, masks and base rewards of items, computed once (adapter disabled) and cached."""
        todo = [i for i in index if i not in self._base]
        if todo:
            prompts = [self.items[i][0] for i in todo]
            with torch.no_grad(), self.unet.disable_adapter():
                x = self.model.app_sample(self.unet, self.noise(todo), self.model.condition(prompts))
                pixels = self.model.to_pixels(x).clamp(-1, 1)
                r = self.reward(pixels, prompts)
            masks = problem_mask(self.reward, pixels, prompts, self.config.mask_fraction, self.config.mask_smoothing)
            for k, i in enumerate(todo):
                self._base[i] = (pixels[k], masks[k], float(r[k]))
        return (
            torch.stack([self._base[i][0] for i in index]),
            torch.stack([self._base[i][1] for i in index]),
            torch.tensor([self._base[i][2] for i in index]),
        )

    def loss(self, index: list[int]) -> tuple[torch.Tensor, dict]:
        c = self.config
        base, mask, base_reward = self.base(index)
        prompts = [self.items[i][0] for i in index]
        steps = c.grad_last_steps or self.model.config.num_inference_steps
        x = self.model.app_sample(self.unet, self.noise(index), self.model.condition(prompts), grad_last_steps=steps)
        pixels = self.model.to_pixels(x).clamp(-1, 1)
        r = self.reward(pixels, prompts)
        outside = outside_change(pixels, base, mask)
        loss = -r.mean() + c.outside_weight * outside.mean()
        with torch.no_grad():
            inside = ((pixels - base).abs() * mask).sum(dim=(1, 2, 3)) / (3 * mask.sum(dim=(1, 2, 3))).clamp_min(1)
        return loss, {
            "reward": r.detach(),
            "base_reward": base_reward,
            "outside_sq": outside.detach(),
            "outside_abs": outside_change(pixels.detach(), base, mask, squared=False),
            "inside_abs": inside,
        }

    def step(self) -> dict:
        c = self.config
        index = torch.randint(0, len(self.items), (c.batch_size,), generator=self.generator).tolist()
        self.unet.train()
        loss, parts = self.loss(index)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable_parameters(self.unet), c.grad_clip)
        self.optimizer.step()
        self.unet.eval()
        self.steps_done += 1
        log = {
            "step": self.steps_done,
            "loss": loss.item(),
            "reward": float(parts["reward"].mean()),
            "reward_gain": float((parts["reward"] - parts["base_reward"]).mean()),
            "outside_abs": float(parts["outside_abs"].mean()),
            "inside_abs": float(parts["inside_abs"].mean()),
        }
        self.history.append(log)
        return log

    def train(self, out: str | Path | None = None, progress: bool = True, card: dict | None = None) -> dict:
        c = self.config
        start = time.perf_counter()
        bar = progress_bar(total=c.steps, desc="focus-n-fix", disable=not progress)
        while self.steps_done < c.steps and time.perf_counter() - start < c.minutes * 60:
            log = self.step()
            bar.update(1)
            bar.set_postfix(gain=f"{log['reward_gain']:.3f}", outside=f"{log['outside_abs']:.4f}")
        bar.close()
        seconds = time.perf_counter() - start
        tail = self.history[-max(1, len(self.history) // 10) :]
        mean = lambda k: float(np.mean([h[k] for h in tail])) if tail else math.nan  # noqa: E731
        summary = {
            "gradient_steps": self.steps_done,
            "items": len(self.items),
            "reward_gain_last_steps": mean("reward_gain"),
            "outside_abs_last_steps": mean("outside_abs"),
            "inside_abs_last_steps": mean("inside_abs"),
            "train_seconds": seconds,
            "threads": torch.get_num_threads(),
        }
        if out:
            from pasta.align.ddim_policy import estimate_kl

            full = {
                "method": "focus",
                "summary": "Focus-N-Fix (region-aware): from the base model's initial noise, raise the reward while "
                "a saliency mask of the problem region restricts change; outside it the image stays close "
                "to the base image.",
                "reward": self.reward.spec,
                "reward_held_out_accuracy": self.reward.held_out_accuracy(),
                "steps": {"gradient_steps": self.steps_done},
                "images_seen": self.steps_done * c.batch_size,
                "kl": estimate_kl(
                    self.model, self.unet, [p for p, _ in self.items[:: c.seeds_per_prompt]][:8], seed=c.seed
                ),
                "train_seconds": seconds,
                "threads": summary["threads"],
                "base_model": self.model.describe(),
                "metrics": summary,
                "history": self.history,
                "config": json.loads(json.dumps(asdict(c), default=str)),
                **(card or {}),
            }
            save_adapter(self.unet, out, full)
        return summary


def train_focus_n_fix(
    model: EmbeddedDiffusion,
    reward: Reward,
    prompts: list[str],
    config: FocusNFixConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    card: dict | None = None,
) -> dict:
    return FocusNFix(model, reward, prompts, config).train(out, progress, card)
