"""Reward-weighted likelihood fine-tuning (Lee et al. 2023, "Aligning text-to-image models using human
feedback"), as a LoRA adapter. One file, top to bottom.

1. Generate `images_per_prompt` images per training prompt with the model as the app samples it, and score each
   (prompt, image) pair with the reward r.
2. Minimize the reward-weighted denoising loss on those samples plus beta times the ordinary denoising loss on
   pre-training data (here: composed attribute-world images with captions, as models/train_t2i.py trains on):

       L = E_{(x, z) ~ generated} [ w(x, z) ||eps - eps_theta(x_t, t, z)||^2 ]
           + beta E_{(x, z) ~ pre-training} [ ||eps - eps_theta(x_t, t, z)||^2 ]

   The paper's weights are its reward in [0, 1] (binary human labels, or a reward model's score). A learned reward
   on an immature model can be negative everywhere, so w is one of: "exp" (default), exp(z / temperature) with z the
   reward standardized over the generated set (reward-weighted regression, Peters & Schaal 2007); "linear", the
   reward minus its minimum; "binary", 1 where the reward passes a threshold (the paper's labels). Weights are
   normalized to mean 1, so beta weighs like against like.
3. Optionally repeat with samples from the fine-tuned model (`rounds` > 1; the paper uses one offline round).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from pasta.align.adapters import LoraSettings, add_lora, save_adapter, trainable_parameters
from pasta.align.diffusion import EmbeddedDiffusion
from pasta.align.rewards import Reward
from pasta.backends.embedded_t2i import images_to_tensor
from pasta.console import progress_bar
from pasta.worlds import load_world
from pasta.worlds.world import World


@dataclass
class RWRConfig:
    """Reward-weighted fine-tuning; the paper's recipe with LoRA, sizes chosen for a CPU budget of minutes."""

    images_per_prompt: int = 4
    """Generated images per training prompt and round."""
    max_prompts: int = 64
    """Training prompts used per round (the first ones of the prompt list, then cycled by round)."""
    weighting: Literal["exp", "linear", "binary"] = "exp"
    """exp(standardized r / temperature), r - min(r), or 1[r > threshold]; all normalized to mean 1."""
    temperature: float = 1.0
    """Temperature of the exp weighting, in standard deviations of the reward."""
    threshold: float = 0.5
    """Reward threshold of the binary weighting."""
    pretrain_weight: float = 1.0
    """beta, the weight of the pre-training denoising loss (the regularizer)."""
    uncond_prob: float = 0.1
    """Share of empty captions in the pre-training batches (keeps classifier-free guidance working)."""
    batch_size: int = 16
    """Generated samples per step (and as many pre-training samples)."""
    steps: int = 2000
    """Gradient steps per round (at most)."""
    rounds: int = 1
    """Generate-then-fine-tune rounds (Lee et al.: 1)."""
    lr: float = 1e-4
    grad_clip: float = 1.0
    lora: LoraSettings = field(default_factory=LoraSettings)
    minutes: float = math.inf
    """Wall-time budget for the whole run (generation included)."""
    seed: int = 0

    def __post_init__(self) -> None:
        bad = []
        if self.images_per_prompt < 1:
            bad.append(f"images_per_prompt={self.images_per_prompt} (>= 1)")
        if self.max_prompts < 1:
            bad.append(f"max_prompts={self.max_prompts} (>= 1)")
        if self.weighting not in ("exp", "linear", "binary"):
            bad.append(f"weighting={self.weighting!r} (exp, linear or binary)")
        if self.temperature <= 0:
            bad.append(f"temperature={self.temperature} (> 0)")
        if self.pretrain_weight < 0:
            bad.append(f"pretrain_weight={self.pretrain_weight} (>= 0)")
        if self.batch_size < 1 or self.steps < 1 or self.rounds < 1:
            bad.append("batch_size, steps and rounds must be >= 1")
        if self.lr <= 0 or self.grad_clip <= 0 or self.minutes <= 0:
            bad.append("lr, grad_clip and minutes must be > 0")
        if not 0 <= self.uncond_prob < 1:
            bad.append(f"uncond_prob={self.uncond_prob} (in [0, 1))")
        if bad:
            raise ValueError("invalid RWR config: " + "; ".join(bad))


class PretrainingData:
    """The base model's world's training images with captions (`World.training_batch`, as models/train_t2i.py
    draws them), some captions emptied as in training for classifier-free guidance."""

    def __init__(self, world: World, seed: int, uncond_prob: float) -> None:
        self.world = world
        self.rng = np.random.default_rng(seed)
        self.uncond_prob = uncond_prob

    def batch(self, n: int) -> tuple[torch.Tensor, list[str]]:
        images, captions = self.world.training_batch(self.rng, n)
        captions = ["" if self.rng.random() < self.uncond_prob else text for text in captions]
        return images_to_tensor(images), captions


def sample_weights(r: torch.Tensor, c: RWRConfig) -> torch.Tensor:
    """Per-sample weights of the generated set, mean 1 (all zero when no sample passes the binary threshold)."""
    if c.weighting == "binary":
        w = (r > c.threshold).float()
    elif c.weighting == "linear":
        w = r - r.min()
    else:
        z = (r - r.mean()) / r.std().clamp_min(1e-8) if len(r) > 1 else torch.zeros_like(r)
        w = torch.exp(z / c.temperature)
    return w / w.mean() if w.sum() > 0 else w


def denoising_loss(
    model: EmbeddedDiffusion, unet, x0: torch.Tensor, prompts: list[str], generator: torch.Generator
) -> torch.Tensor:
    """[N]: the training loss at uniform random t (||eps - eps_theta||^2, or the v target for a v model), mean over
    dimensions."""
    t = torch.randint(0, model.num_train_timesteps, (len(x0),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    x_t = model.train_scheduler.add_noise(x0, noise, t)
    out = model.output(unet, x_t, t, model.condition(prompts))
    return (out - model.target(x0, noise, t)).pow(2).mean(dim=(1, 2, 3))


@torch.no_grad()
def generate(
    model: EmbeddedDiffusion, unet, prompts: list[str], seeds: list[int], n: int, batch_prompts: int = 4
) -> torch.Tensor:
    """The app's samples (UNet space, clamped to the image range) for each prompt, n per prompt."""
    out = []
    for b in range(0, len(prompts), batch_prompts):
        chunk = prompts[b : b + batch_prompts]
        noise = model.initial_noise(seeds[b : b + batch_prompts], n)
        out.append(model.app_sample(unet, noise, model.condition(chunk).repeat_interleave(n)).clamp(-1, 1))
    return torch.cat(out)


def train_rwr(
    model: EmbeddedDiffusion,
    reward: Reward,
    prompts: list[str],
    config: RWRConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    card: dict | None = None,
) -> dict:
    """Run reward-weighted fine-tuning and write the adapter (with its model card) to `out`."""
    c = config or RWRConfig()
    if not prompts:
        raise ValueError("reward-weighted fine-tuning needs at least one training prompt")
    torch.manual_seed(c.seed)
    generator = torch.Generator().manual_seed(c.seed)
    start = time.perf_counter()
    deadline = start + c.minutes * 60
    unet = add_lora(model.unet, c.lora)
    optimizer = torch.optim.Adam(trainable_parameters(unet), lr=c.lr)
    world = load_world(model.config.world)
    pretraining = PretrainingData(world, c.seed, c.uncond_prob) if c.pretrain_weight > 0 else None
    history, rounds, steps_done, images_seen = [], [], 0, 0
    for round_index in range(c.rounds):
        if time.perf_counter() > deadline:
            break
        # 1. generate and score (with the current adapter: the base model in round one)
        offset = (round_index * c.max_prompts) % len(prompts)
        chosen = [prompts[(offset + i) % len(prompts)] for i in range(min(c.max_prompts, len(prompts)))]
        seeds = [c.seed * 1_000_003 + round_index * 10_007 + i for i in range(len(chosen))]
        unet.eval()
        t0 = time.perf_counter()
        x0 = generate(model, unet, chosen, seeds, c.images_per_prompt)
        sample_prompts = [p for p in chosen for _ in range(c.images_per_prompt)]
        with torch.no_grad():
            r = torch.cat(
                [
                    reward(model.to_pixels(x0[i : i + 64]), sample_prompts[i : i + 64]).float()
                    for i in range(0, len(x0), 64)
                ]
            )
        images_seen += len(x0)
        weights = sample_weights(r, c)
        rounds.append(
            {
                "round": round_index + 1,
                "generated": len(x0),
                "reward_mean": float(r.mean()),
                "reward_std": float(r.std()),
                "share_weight_positive": float((weights > 0).float().mean()),
                "generate_seconds": time.perf_counter() - t0,
            }
        )
        if not weights.sum() > 0:
            raise ValueError(
                f"no generated sample passes the reward threshold {c.threshold}: lower --threshold or "
                "use --weighting exp"
            )
        # 2. reward-weighted denoising + pre-training regularizer
        unet.train()
        bar = progress_bar(range(c.steps), desc=f"rwr round {round_index + 1}", disable=not progress)
        for _ in bar:
            if time.perf_counter() > deadline:
                break
            idx = torch.randint(0, len(x0), (c.batch_size,), generator=generator)
            weighted = (
                weights[idx] * denoising_loss(model, unet, x0[idx], [sample_prompts[int(i)] for i in idx], generator)
            ).mean()
            loss = weighted
            pre = torch.zeros(())
            if pretraining is not None:
                images, captions = pretraining.batch(c.batch_size)
                pre = denoising_loss(model, unet, model.from_pixels(images), captions, generator).mean()
                loss = weighted + c.pretrain_weight * pre
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable_parameters(unet), c.grad_clip)
            optimizer.step()
            steps_done += 1
            history.append({"step": steps_done, "weighted_loss": weighted.item(), "pretrain_loss": pre.item()})
            if steps_done % 20 == 0:
                bar.set_postfix(
                    weighted=f"{np.mean([h['weighted_loss'] for h in history[-20:]]):.4f}",
                    pre=f"{np.mean([h['pretrain_loss'] for h in history[-20:]]):.4f}",
                )
        bar.close()
    unet.eval()
    seconds = time.perf_counter() - start
    tail = history[-max(1, len(history) // 10) :]
    summary = {
        "rounds": rounds,
        "gradient_steps": steps_done,
        "images_seen": images_seen,
        "weighted_loss_last": float(np.mean([h["weighted_loss"] for h in tail])) if tail else math.nan,
        "pretrain_loss_last": float(np.mean([h["pretrain_loss"] for h in tail])) if tail else math.nan,
        "train_seconds": seconds,
        "threads": torch.get_num_threads(),
    }
    if out:
        from pasta.align.ddim_policy import estimate_kl

        full = {
            "method": "rwr",
            "summary": "Reward-weighted likelihood fine-tuning (Lee et al. 2023): the denoising loss on generated "
            "samples weighted by the reward, plus a pre-training denoising regularizer.",
            "reward": reward.spec,
            "reward_held_out_accuracy": reward.held_out_accuracy(),
            "steps": {"rounds": len(rounds), "gradient_steps": steps_done},
            "images_seen": images_seen,
            "kl": estimate_kl(model, unet, prompts[:8], seed=c.seed),
            "train_seconds": seconds,
            "threads": summary["threads"],
            "base_model": model.describe(),
            "metrics": summary,
            "history": history[::10],
            "config": json.loads(json.dumps(asdict(c), default=str)),
            **(card or {}),
        }
        save_adapter(unet, out, full)
    return summary
