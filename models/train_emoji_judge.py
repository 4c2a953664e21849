"""Train the emoji world's judge, the independent reader of `pasta eval t2i --world emoji` (one file, top to bottom).

    python models/train_emoji_judge.py --minutes 40                      # writes runs/emoji_judge/model
    python models/train_emoji_judge.py --out models/embedded/emoji_judge  # ship: write the evaluation's weights

Scenes are composed on the fly from the real emoji artwork (pasta.worlds.emoji_world), of both splits (the judge
must read every combination, unlike the generator, which never sees the held-out ones), then lightly degraded
(brightness and contrast, blur, noise) so that slightly imperfect generated images are still read. It never sees a
generated image. Its accuracy on a fixed set of real held-out scenes (other seeds than training) is the ceiling of
what the evaluation can measure; metrics.json beside the weights records it. Resumes from its checkpoint.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pasta.console import progress_bar  # noqa: E402
from pasta.worlds.emoji_judge import EmojiJudge, EmojiJudgeConfig, loss, read_scenes, summarize_reading, targets  # noqa: E402
from pasta.worlds.emoji_world import EmojiWorld  # noqa: E402


@dataclass
class TrainEmojiJudgeConfig:
    out: Path = Path("runs/emoji_judge/model")
    """Where the judge (safetensors + config.json) and metrics.json are written; shipped weights only when named."""
    checkpoint: Path = Path("runs/emoji_judge/checkpoint.pt")
    """Full training state for resuming (not committed)."""
    steps: int = 2500
    """Total optimizer steps (a resumed run counts from where it stopped); the LR schedule spans them."""
    minutes: float = 1e9
    """Stop cleanly after this many minutes of training in this run (evaluation and export still run)."""
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    eval_share: float = 0.2
    """Share of training scenes drawn from the held-out (subject, scene, style) combinations."""
    augment: bool = True
    eval_images: int = 2000
    """Real held-out scenes the judge is scored on at the end."""
    save_every: int = 200
    seed: int = 1
    threads: int = 1
    channels: tuple[int, ...] = (24, 48, 96, 192)


def degrade(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Brightness/contrast jitter, a light blur on a third of the images and Gaussian noise, in [-1, 1]."""
    n = len(x)
    gain = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 1, 1, 1)).astype(np.float32))
    shift = torch.from_numpy(rng.uniform(-0.1, 0.1, (n, 1, 1, 1)).astype(np.float32))
    x = x * gain + shift
    blur = torch.from_numpy(rng.random(n) < 0.33)
    if blur.any():
        x[blur] = F.avg_pool2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x = x + torch.from_numpy(rng.normal(0, 0.04, x.shape).astype(np.float32))
    return x.clamp(-1, 1)


def evaluate(judge: EmojiJudge, world: EmojiWorld, n: int, seed: int) -> dict:
    images, specs = world.scenes(np.random.default_rng([seed, 99]), n, "eval")
    return {"images": n, **summarize_reading(read_scenes(judge, images, specs))}


def main(cfg: TrainEmojiJudgeConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    world = EmojiWorld()
    subjects = list(world.concepts)
    judge = EmojiJudge(EmojiJudgeConfig(subjects=subjects, channels=tuple(cfg.channels)))
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, rng, losses = 0, np.random.default_rng(cfg.seed), []
    if cfg.checkpoint.exists():
        state = torch.load(cfg.checkpoint, weights_only=False)
        if state["subjects"] != subjects:
            raise ValueError(
                f"{cfg.checkpoint} was trained on other subjects ({len(state['subjects'])}): move it aside"
            )
        judge.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, rng, losses = state["step"], state["rng"], state["losses"]
        print(f"resumed from {cfg.checkpoint} at step {step}")
    print(f"judge parameters: {sum(p.numel() for p in judge.parameters()) / 1e6:.2f}M over {len(subjects)} subjects")

    def save() -> None:
        cfg.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "model": judge.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "rng": rng,
                "losses": losses,
                "subjects": subjects,
            },
            cfg.checkpoint.with_suffix(".tmp"),
        )
        cfg.checkpoint.with_suffix(".tmp").replace(cfg.checkpoint)

    start = time.time()
    judge.train()
    bar = progress_bar(total=cfg.steps, initial=step, desc="train emoji judge")
    while step < cfg.steps and time.time() - start < cfg.minutes * 60:
        n_eval = int(rng.binomial(cfg.batch_size, cfg.eval_share))
        parts = [
            world.scenes(rng, n, split) for n, split in ((cfg.batch_size - n_eval, "train"), (n_eval, "eval")) if n
        ]
        images, specs = np.concatenate([p[0] for p in parts]), [s for p in parts for s in p[1]]
        x = EmojiJudge.as_tensor(images)
        if cfg.augment:
            x = degrade(x, rng)
        progress = min(1.0, (step + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * progress
        value = loss(judge(x), targets(specs, subjects))
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        step += 1
        losses.append(value.item())
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if step % cfg.save_every == 0:
            save()
    bar.close()
    save()
    metrics = {
        "steps": step,
        "final_loss": float(np.mean(losses[-100:])) if losses else None,
        "held_out_real_scenes": evaluate(judge, world, cfg.eval_images, cfg.seed),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "loss_curve": [float(np.mean(losses[i : i + 50])) for i in range(0, len(losses), 50)],
    }
    judge.save(cfg.out)
    (cfg.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    m = metrics["held_out_real_scenes"]
    print(
        f"step {step}: on {m['images']} real held-out scenes: subject top-1 {m['subject_top1']:.3f}, top-5 "
        f"{m['subject_top5']:.3f}, scene {m['scene']:.3f}, style {m['style']:.3f}, pairs both present "
        f"{m['pairs_both_present']}, left/right {m['pairs_left_right']}; saved to {cfg.out}"
    )
    return metrics


if __name__ == "__main__":
    main(tyro.cli(TrainEmojiJudgeConfig))
