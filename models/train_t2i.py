"""Train the embedded text-to-image model on a world (one file, top to bottom).

    python models/train_t2i.py --world emoji --minutes 120     # resumes from runs/t2i-emoji/checkpoint.pt
    python models/train_t2i.py --world emoji --out models/embedded/t2i_emoji   # ship: write the app's weights

Data are composed on the fly. Garments (pasta.worlds.fashion): a random training garment, random attributes (never a
held-out (garment, colour, pattern) triple), a caption naming a random subset of them. Emoji scenes
(pasta.worlds.emoji_scenes): one or two of 1,191 emoji subjects on a scene in a style, never a held-out (subject, scene,
style) combination or an evaluation phrasing. Both: 10% empty captions for classifier-free guidance, and sometimes
an unrelated prompt modifier so that LMM expansions do not derail the conditioning.

Nothing shipped is overwritten unless --out names it: a run writes its weights to runs/t2i-WORLD/model, its
checkpoint and loss log beside them. On a fresh machine (no checkpoint) a run warm-starts from the world's shipped
weights when they exist. v-prediction on a cosine schedule (an epsilon model can be switched: its weights warm-start the
v model); EMA weights are exported in the diffusers layout to --out as training goes, so the app can use them at
any time.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pasta.backends.embedded_t2i import (  # noqa: E402
    WORLD_MODEL_DIRS,
    EmbeddedT2IConfig,
    build_train_scheduler,
    build_unet,
    images_to_tensor,
    prediction_target,
    to_patches,
)
from pasta.backends.minilm import shared_minilm  # noqa: E402
from pasta.candidates.phrase_bank import clip_interrogator_phrases  # noqa: E402
from pasta.console import progress_bar  # noqa: E402
from pasta.worlds import load_world  # noqa: E402

SHIPPED = dict(WORLD_MODEL_DIRS)
"""The weights the app loads per world: a warm start for a fresh run, written only when --out names them."""


@dataclass
class TrainT2IConfig:
    world: Literal["fashion", "emoji"] = "fashion"
    """The world to learn: garments at 32 px or emoji scenes at 64 px."""
    out: Path | None = None
    """Where the EMA weights are exported (diffusers layout); default runs/t2i-WORLD/model."""
    checkpoint: Path | None = None
    """Full training state for resuming (not committed); default runs/t2i-WORLD/checkpoint.pt."""
    init_from: Path | None = None
    """Weights to warm-start from when there is no checkpoint; default the world's shipped weights."""
    steps: int = 20_000
    """Total optimizer steps (resumed runs count from where they stopped)."""
    minutes: float = 1e9
    """Stop cleanly after this many minutes of this run."""
    batch_size: int = 64
    lr: float = 2e-4
    warmup_steps: int = 200
    ema_decay: float = 0.999
    prediction_type: str = "v_prediction"
    """"v_prediction" or "epsilon". A checkpoint or exported model of the other type warm-starts the weights with
    a fresh optimizer and EMA (the output layer relearns its meaning)."""
    min_snr_gamma: float = 0.0
    """Min-SNR-gamma loss weighting (Hang et al. 2023); 0 = plain MSE on the prediction target. It down-weights
    low-noise steps, which left visible residual noise in samples early in training here."""
    uncond_prob: float = 0.1
    """Probability of an empty caption (classifier-free guidance)."""
    modifier_prob: float = 0.15
    """Probability of appending an unrelated prompt modifier to a caption."""
    save_every: int = 250
    seed: int = 0
    threads: int = 2
    device: str = "auto"
    """"auto" (a CUDA GPU when there is one), "cpu" or "cuda". Checkpoints and exports load on either."""


def export(
    ema_unet,
    scheduler,
    config: EmbeddedT2IConfig,
    out: Path,
    step: int,
    seconds: dict[str, float] | None = None,
    losses: Path | None = None,
) -> None:
    """Write fp16 EMA weights atomically (a half-written folder never replaces a good one), with what they cost:
    steps, training seconds on each kind of device, and the loss curve so far (loss_curve.jsonl)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ema_unet.to(torch.float16).save_pretrained(tmp / "unet")
    ema_unet.to(torch.float32)
    scheduler.save_pretrained(tmp / "scheduler")
    config.save(tmp)
    state = {
        "step": step,
        "prediction_type": scheduler.config.prediction_type,
        "train_seconds": {k: round(v, 1) for k, v in (seconds or {}).items()},
    }
    (tmp / "train_state.json").write_text(json.dumps(state) + "\n")
    if losses is not None and losses.exists():
        shutil.copy2(losses, tmp / "loss_curve.jsonl")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(cfg: TrainT2IConfig) -> None:
    from diffusers.training_utils import EMAModel, compute_snr

    if cfg.prediction_type not in ("v_prediction", "epsilon"):
        raise ValueError(f"prediction_type must be 'v_prediction' or 'epsilon', got {cfg.prediction_type!r}")
    run = Path("runs") / f"t2i-{cfg.world}"
    cfg.out = cfg.out or run / "model"
    cfg.checkpoint = cfg.checkpoint or run / "checkpoint.pt"
    init_from = cfg.init_from or SHIPPED[cfg.world]
    t2i_config = EmbeddedT2IConfig.for_world(cfg.world)
    losses_path = cfg.checkpoint.with_name("losses.jsonl")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    world = load_world(cfg.world)
    text = shared_minilm()
    modifiers = clip_interrogator_phrases().get("flavors", ())
    scheduler = build_train_scheduler(cfg.prediction_type)
    unet = build_unet(t2i_config).to(device)
    ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.01)
    step, rng, seconds = 0, np.random.default_rng(cfg.seed), {}
    """seconds: training time so far per kind of device ("cpu", "cuda"), carried through checkpoints and exports."""
    state = torch.load(cfg.checkpoint, weights_only=False, map_location=device) if cfg.checkpoint.exists() else None
    if state is not None and state.get("prediction_type", "epsilon") == cfg.prediction_type:
        unet.load_state_dict(state["unet"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, rng, seconds = state["step"], state["rng"], dict(state.get("train_seconds", {}))
        torch.set_rng_state(state["torch_rng"].cpu())
        print(f"resumed from {cfg.checkpoint} at step {step}")
    elif state is not None:
        unet.load_state_dict(state["unet"])
        ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3)
        step, rng = state["step"], np.random.default_rng([cfg.seed, state["step"]])
        print(
            f"warm start of a {cfg.prediction_type} model from the {state.get('prediction_type', 'epsilon')} "
            f"checkpoint {cfg.checkpoint} (step {step}); optimizer and EMA are new"
        )
    elif (init_from / "unet" / "config.json").exists():
        # A fresh machine has no checkpoint (it is not committed), but the committed EMA weights are a warm start.
        from diffusers import UNet2DConditionModel

        warm = UNet2DConditionModel.from_pretrained(init_from / "unet", torch_dtype=torch.float32)
        unet.load_state_dict(warm.state_dict())
        ema = EMAModel(unet.parameters(), decay=cfg.ema_decay, use_ema_warmup=True, power=2 / 3)
        shipped = (
            json.loads((init_from / "train_state.json").read_text())
            if (init_from / "train_state.json").exists()
            else {}
        )
        step, seconds = int(shipped.get("step", 0)), dict(shipped.get("train_seconds", {}))
        rng = np.random.default_rng([cfg.seed, step])
        if (init_from / "loss_curve.jsonl").exists() and not losses_path.exists():  # one curve across machines
            losses_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(init_from / "loss_curve.jsonl", losses_path)
        print(f"warm start from the exported weights in {init_from} (step {step}); optimizer state is new")
    print(f"UNet parameters on {device}: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M")

    def save() -> None:
        spent = {**seconds, device.type: seconds.get(device.type, 0.0) + time.time() - start}
        cfg.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "unet": unet.state_dict(),
            "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "rng": rng,
            "torch_rng": torch.get_rng_state(),
            "prediction_type": cfg.prediction_type,
            "train_seconds": spent,
        }
        torch.save(state, cfg.checkpoint.with_suffix(".tmp"))
        cfg.checkpoint.with_suffix(".tmp").replace(cfg.checkpoint)
        ema_unet = build_unet(t2i_config)
        ema.copy_to(ema_unet.parameters())
        export(ema_unet, scheduler, t2i_config, cfg.out, step, spent, losses_path)

    start, losses = time.time(), []
    bar = progress_bar(total=cfg.steps, initial=step, desc="train t2i")
    while step < cfg.steps and time.time() - start < cfg.minutes * 60:
        batch, captions = world.training_batch(rng, cfg.batch_size)
        for i, text_i in enumerate(captions):
            if modifiers and rng.random() < cfg.modifier_prob:
                text_i += ", " + modifiers[int(rng.integers(len(modifiers)))]
            captions[i] = "" if rng.random() < cfg.uncond_prob else text_i
        pooled, tokens, mask = (v.to(device) for v in text.encode(captions))
        x0 = to_patches(images_to_tensor(batch), t2i_config.patch_size).to(device)
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),)).to(device)
        xt = scheduler.add_noise(x0, noise, t)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
        target = prediction_target(scheduler, x0, noise, t)
        pred = unet(xt, t, encoder_hidden_states=tokens, class_labels=pooled, encoder_attention_mask=mask).sample
        weight = torch.ones(len(t), device=device)
        if cfg.min_snr_gamma > 0:
            snr = compute_snr(scheduler, t)
            weight = torch.clamp(snr, max=cfg.min_snr_gamma) / (snr if cfg.prediction_type == "epsilon" else snr + 1)
        loss = (weight * (pred - target).pow(2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema.step(unet.parameters())
        step += 1
        losses.append(loss.item())
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            losses_path.parent.mkdir(parents=True, exist_ok=True)
            with losses_path.open("a") as f:  # the loss curve, 50-step means, across resumed runs
                f.write(json.dumps({"step": step, "loss": float(np.mean(losses[-50:])), "time": time.time()}) + "\n")
        if step % cfg.save_every == 0:
            save()
    bar.close()
    save()
    print(
        f"stopped at step {step}; mean loss of the last 200 steps {np.mean(losses[-200:]) if losses else math.nan:.4f}"
    )


if __name__ == "__main__":
    main(tyro.cli(TrainT2IConfig))
