"""Distil classifier-free guidance into a LoRA adapter (one file, top to bottom).

    python models/distill_guidance.py --minutes 60          # resumes from runs/guidance-fashion/checkpoint.pt
    python models/distill_guidance.py --out models/embedded/t2i/guidance_lora   # ship: the app's fast sampler

Why: with guidance every sampling step runs the UNet on twice the images (the prompt's and the empty caption's
rows); on a 2-core CPU that is most of a turn. After Meng et al. 2023 ("On distillation of guided diffusion
models", stage one), a student learns to output in one forward what the teacher's two give combined at the app's
guidance scale w: v_u + w (v_c - v_u). The student is the shipped UNet plus a LoRA adapter on its convolutions,
attention and feed-forward layers, so the teacher is the same weights with the adapter switched off (no second
copy) and the shipped base stays untouched for alignment adapters.

Training states are the world's own training images noised at a uniform random timestep (as in training the model)
or, for half of each batch, at one of the timesteps the app's sampler visits; captions as in training (10% empty:
the target is then the unconditional output itself; sometimes an unrelated modifier). Nothing shipped is overwritten unless --out names it: a run writes its adapter to
runs/guidance-WORLD/adapter, its checkpoint and loss log beside it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pasta.align.adapters import LoraSettings, add_lora, save_adapter, trainable_parameters  # noqa: E402
from pasta.backends.embedded_t2i import (  # noqa: E402
    WORLD_MODEL_DIRS,
    EmbeddedT2IConfig,
    build_train_scheduler,
    guided_output,
    images_to_tensor,
    new_sampler,
    to_patches,
    weights_fingerprint,
)
from pasta.backends.minilm import shared_minilm  # noqa: E402
from pasta.candidates.phrase_bank import clip_interrogator_phrases  # noqa: E402
from pasta.console import progress_bar  # noqa: E402
from pasta.worlds import load_world  # noqa: E402

GUIDANCE_LORA_TARGETS = (
    "conv1",
    "conv2",
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
    "proj_in",
    "proj_out",
    "time_emb_proj",
)
"""Every resnet convolution, attention projection and feed-forward layer: guidance changes the output everywhere in
the image, not only through the cross-attention."""


@dataclass
class DistillGuidanceConfig:
    world: Literal["fashion", "emoji"] = "fashion"
    teacher: Path | None = None
    """The guided model to distil (diffusers layout); default the world's shipped weights."""
    out: Path | None = None
    """Where the adapter is written; default runs/guidance-WORLD/adapter."""
    checkpoint: Path | None = None
    """Adapter + optimizer state for resuming (not committed); default runs/guidance-WORLD/checkpoint.pt."""
    guidance_scale: float | None = None
    """The w the student learns to reproduce; default the teacher's pasta_t2i.json (what the app samples with)."""
    steps: int = 3000
    """Total optimizer steps (a resumed run counts from where it stopped); the learning rate decays over them."""
    minutes: float = 1e9
    """Stop cleanly after this many minutes of this run."""
    batch_size: int = 32
    lr: float = 5e-4
    warmup_steps: int = 100
    rank: int = 16
    sampler_steps: int = 6
    """Half of each batch is noised at the timesteps the app's sampler visits at this many steps (the app's default),
    where the student's output is what counts; the other half at uniform random timesteps. 0: all uniform."""
    uncond_prob: float = 0.1
    modifier_prob: float = 0.15
    save_every: int = 100
    seed: int = 0
    threads: int = 2


def guided_target(model, xt, t, cond, uncond, w: float) -> torch.Tensor:
    """The teacher's guided output: the same weights with the adapter off, through the app's own `guided_output`."""
    with torch.no_grad(), model.disable_adapter():
        return guided_output(model, xt, t, cond, uncond, w)


def readme(card: dict) -> str:
    """The adapter's card for people: what it is, what it was distilled from, how the app uses it."""
    base = card["base_model"]
    return "\n".join(
        [
            "# PASTA distilled-guidance adapter",
            "",
            f"{card['summary']} A LoRA on {base['folder']} (unet sha256 {base['unet_sha256_16']}), trained by",
            f"`python models/distill_guidance.py` for {card['steps']:,} steps ({card['images_seen']:,} images,",
            f"{card['train_seconds'] / 3600:.1f} h on {card['threads']} CPU threads); distillation MSE of the last 200",
            f"steps {card['metrics']['distill_mse_last_200_steps']}.",
            "",
            "`EmbeddedTextToImage` merges it into the UNet and samples with one forward a step where it lies in the",
            "weights' folder as `guidance_lora/` (`--guidance auto`, the default) and was distilled from those very",
            "weights at the sampler's guidance scale; `--guidance cfg` samples with classifier-free guidance instead.",
            "Measure it with `pasta eval t2i --guidance distilled` against `--guidance cfg`.",
            "",
        ]
    )


def repo_relative(path: Path) -> str:
    """A path as the card records it: relative to the checkout where it lies inside it (cards are committed)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def learning_rate(cfg: DistillGuidanceConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth by `cfg.steps`: at a constant rate the loss stopped falling
    (0.023-0.026 over steps 300-450 here) while the images kept improving as the rate's noise averaged out."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    progress = min(1.0, step / max(1, cfg.steps))
    return cfg.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def main(cfg: DistillGuidanceConfig) -> None:
    from diffusers import UNet2DConditionModel

    run = Path("runs") / f"guidance-{cfg.world}"
    teacher_dir = cfg.teacher or WORLD_MODEL_DIRS[cfg.world]
    out = cfg.out or run / "adapter"
    checkpoint = cfg.checkpoint or run / "checkpoint.pt"
    losses_path = checkpoint.with_name("losses.jsonl")
    t2i_config = EmbeddedT2IConfig.load(teacher_dir)
    w = t2i_config.guidance_scale if cfg.guidance_scale is None else cfg.guidance_scale
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    world = load_world(cfg.world)
    text = shared_minilm()
    modifiers = clip_interrogator_phrases().get("flavors", ())
    scheduler = build_train_scheduler(
        json.loads((teacher_dir / "scheduler" / "scheduler_config.json").read_text()).get(
            "prediction_type", "v_prediction"
        )
    )
    unet = UNet2DConditionModel.from_pretrained(teacher_dir / "unet", torch_dtype=torch.float32).eval()
    model = add_lora(unet, LoraSettings(rank=cfg.rank, alpha=float(cfg.rank), targets=GUIDANCE_LORA_TARGETS))
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    step, rng, seconds = 0, np.random.default_rng(cfg.seed), 0.0
    teacher_sha = weights_fingerprint(teacher_dir / "unet")
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        made_for = (state.get("teacher_unet_sha256_16", teacher_sha), state.get("rank", cfg.rank))
        if made_for != (teacher_sha, cfg.rank):
            raise ValueError(
                f"{checkpoint} was made for teacher unet {made_for[0]} at rank {made_for[1]}, not {teacher_sha} at "
                f"rank {cfg.rank}: name another --checkpoint, or the teacher and rank it was made for"
            )
        for p, saved in zip(params, state["lora"]):
            p.data.copy_(saved)
        opt.load_state_dict(state["opt"])
        step, rng, seconds = state["step"], state["rng"], state["train_seconds"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {checkpoint} at step {step}")
    print(f"distil guidance w={w} of {teacher_dir}: {sum(p.numel() for p in params) / 1e6:.2f}M LoRA parameters")
    uncond = text.encode([""])
    visited = torch.empty(0, dtype=torch.long)
    if cfg.sampler_steps > 0:
        sampler = new_sampler(teacher_dir)
        sampler.set_timesteps(cfg.sampler_steps)
        visited = sampler.timesteps.long()

    def save() -> None:
        spent = seconds + time.time() - start
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "lora": [p.detach().clone() for p in params],
            "opt": opt.state_dict(),
            "step": step,
            "rng": rng,
            "torch_rng": torch.get_rng_state(),
            "train_seconds": spent,
            "teacher_unet_sha256_16": teacher_sha,
            "rank": cfg.rank,
        }
        torch.save(state, checkpoint.with_suffix(".tmp"))
        checkpoint.with_suffix(".tmp").replace(checkpoint)
        recent = (
            [json.loads(line)["loss"] for line in losses_path.read_text().splitlines()[-4:]]
            if (losses_path.exists())
            else []
        )
        card = {
            "method": "guidance distillation (Meng et al. 2023, stage one)",
            "summary": f"One UNet forward a sampling step gives the teacher's classifier-free guidance at w = {w}.",
            "guidance_scale": w,
            "steps": step,
            "images_seen": step * cfg.batch_size,
            "train_seconds": round(spent, 1),
            "threads": cfg.threads,
            "base_model": {
                "folder": repo_relative(teacher_dir),
                "unet_sha256_16": teacher_sha,
            },
            "metrics": {"distill_mse_last_200_steps": float(np.mean(recent)) if recent else None},
            "config": {k: str(v) for k, v in vars(cfg).items()},
        }
        save_adapter(model, out, card, readme_text=readme(card))

    start, losses = time.time(), []
    bar = progress_bar(total=cfg.steps, initial=step, desc="distil guidance")
    while step < cfg.steps and time.time() - start < cfg.minutes * 60:
        batch, captions = world.training_batch(rng, cfg.batch_size)
        for i, caption in enumerate(captions):
            if modifiers and rng.random() < cfg.modifier_prob:
                caption += ", " + modifiers[int(rng.integers(len(modifiers)))]
            captions[i] = "" if rng.random() < cfg.uncond_prob else caption
        cond = text.encode(captions)
        x0 = to_patches(images_to_tensor(batch), t2i_config.patch_size)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),))
        if len(visited):
            half = len(x0) // 2
            t[:half] = visited[torch.randint(0, len(visited), (half,))]
        xt = scheduler.add_noise(x0, torch.randn_like(x0), t)
        target = guided_target(model, xt, t, cond, tuple(u.expand(len(x0), *u.shape[1:]) for u in uncond), w)
        pooled, tokens, mask = cond
        pred = model(xt, t, encoder_hidden_states=tokens, class_labels=pooled, encoder_attention_mask=mask).sample
        loss = (pred - target).pow(2).mean()
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}")
            losses_path.parent.mkdir(parents=True, exist_ok=True)
            with losses_path.open("a") as f:
                f.write(json.dumps({"step": step, "loss": float(np.mean(losses[-50:])), "time": time.time()}) + "\n")
        if step % cfg.save_every == 0:
            save()
    bar.close()
    save()
    print(f"stopped at step {step}; mean loss of the last 200 steps {np.mean(losses[-200:]) if losses else 0:.5f}")


if __name__ == "__main__":
    main(tyro.cli(DistillGuidanceConfig))
