"""Train the attribute classifier, the independent judge of `pasta eval t2i` (one file, top to bottom).

    python models/train_attribute_classifier.py          # ~10 min on one CPU thread; resumes from a checkpoint

Images are composed on the fly (pasta.worlds.fashion) from Fashion-MNIST *train* garments with random attributes (held-out
(garment, colour, pattern) triples included: the judge must know every combination, unlike the generator), then
lightly degraded (colour gain, brightness/contrast, blur, noise) so that slightly imperfect generated images are
still read correctly. Evaluation composes images from the *test* split: per-head accuracy on random attributes,
and on the attributes of `fashion.evaluation_prompts` (photo/flat, large, centred, held-out triples), which is the
ceiling of what `pasta eval t2i` can measure. Metrics go to <out>/metrics.json.
"""

from __future__ import annotations

import json
import math
import shutil
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
from pasta.paths import EMBEDDED_DIR  # noqa: E402
from pasta.worlds import fashion  # noqa: E402
from pasta.worlds.fashion_judge import (  # noqa: E402
    DEFAULT_CLASSIFIER_DIR,
    AttributeClassifier,
    AttributeClassifierConfig,
    label_indices,
)

HEADS = tuple(fashion.ATTRIBUTE_VALUES)


@dataclass
class TrainAttributeClassifierConfig:
    out: Path = DEFAULT_CLASSIFIER_DIR
    """Where the trained classifier (safetensors + config.json) and metrics.json are exported."""
    checkpoint: Path = EMBEDDED_DIR / "checkpoints_aux" / "attribute_classifier_last.pt"
    """Full training state for resuming (not committed)."""
    steps: int = 2400
    """Total optimizer steps (a resumed run counts from where it stopped); the LR schedule spans them."""
    minutes: float = 1e9
    """Stop cleanly after this many minutes of training in this run (evaluation and export still run)."""
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    label_smoothing: float = 0.05
    augment: bool = True
    """Colour gain, brightness/contrast, blur and noise on training images."""
    held_out_share: float = 0.125
    """Share of training images drawn with a held-out (garment, colour, pattern) triple."""
    eval_images: int = 5000
    """Composed test-split images with random attributes."""
    eval_prompt_images: int = 1000
    """Composed test-split images with the attributes of `fashion.evaluation_prompts`."""
    save_every: int = 200
    seed: int = 1
    threads: int = 1
    """torch threads (the machine's other core is usually busy training the diffusion model)."""


def compose_random(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, n: int, held_out_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """n composed images (uint8 [n,32,32,3]) and their labels (int64 [n, len(HEADS)])."""
    pick = rng.integers(0, len(images), n)
    out = np.empty((n, 32, 32, 3), np.uint8)
    y = np.empty((n, len(HEADS)), np.int64)
    for k, i in enumerate(pick):
        attrs = fashion.sample_attributes(rng, fashion.CLASSES[labels[i]], held_out=rng.random() < held_out_share)
        out[k] = fashion.compose(images[i], attrs, rng)
        idx = label_indices(attrs)
        y[k] = [idx[h] for h in HEADS]
    return out, y


def compose_prompt_like(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images with exactly the attributes that `pasta eval t2i` requests, on test-split garments."""
    by_class = [np.flatnonzero(labels == c) for c in range(len(fashion.CLASSES))]
    out = np.empty((n, 32, 32, 3), np.uint8)
    y = np.empty((n, len(HEADS)), np.int64)
    for k, (_, attrs) in enumerate(fashion.evaluation_prompts(n)):
        pool = by_class[fashion.CLASSES.index(attrs.garment)]
        out[k] = fashion.compose(images[pool[int(rng.integers(len(pool)))]], attrs, rng)
        idx = label_indices(attrs)
        y[k] = [idx[h] for h in HEADS]
    return out, y


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Light, label-preserving degradations of [-1, 1] images: small enough that brown stays brown and stripes stay
    stripes, wide enough to cover a diffusion model's slight colour casts, softness and residual noise."""
    n = len(x)
    u = (x + 1) / 2

    def rand(*shape: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    u = u * rand(n, 3, 1, 1, lo=0.94, hi=1.06)  # per-channel gain (colour cast)
    mean = u.mean(dim=(1, 2, 3), keepdim=True)
    u = (u - mean) * rand(n, 1, 1, 1, lo=0.88, hi=1.12) + mean + rand(n, 1, 1, 1, lo=-0.05, hi=0.05)
    blur = torch.rand(n, generator=g) < 0.3
    if blur.any():
        sigma = float(rand(1, lo=0.4, hi=0.8))
        k1 = torch.exp(-(torch.tensor([-1.0, 0.0, 1.0]) ** 2) / (2 * sigma**2))
        k = (k1[:, None] * k1[None, :]) / k1.sum() ** 2
        weight = k.expand(3, 1, 3, 3).contiguous()
        u[blur] = F.conv2d(F.pad(u[blur], (1, 1, 1, 1), mode="replicate"), weight, groups=3)
    noisy = (torch.rand(n, 1, 1, 1, generator=g) < 0.5).float()
    u = u + noisy * rand(n, 1, 1, 1, lo=0.0, hi=0.04) * torch.randn(u.shape, generator=g)
    return u.clamp(0, 1) * 2 - 1


@torch.inference_mode()
def accuracy(model: AttributeClassifier, images: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> dict:
    pred = model.predict(images)
    keep = np.ones(len(y), bool) if mask is None else mask
    return {h: float((pred[h][keep] == y[keep, j]).mean()) for j, h in enumerate(HEADS)}


def evaluate(
    model: AttributeClassifier,
    images: np.ndarray,
    labels: np.ndarray,
    cfg: TrainAttributeClassifierConfig,
) -> dict:
    rng = np.random.default_rng([cfg.seed, 2])
    test_x, test_y = compose_random(rng, images, labels, cfg.eval_images, held_out_share=0.25)
    style = test_y[:, HEADS.index("style")]
    filled = style <= fashion.STYLES.index("flat")
    prompt_x, prompt_y = compose_prompt_like(rng, images, labels, cfg.eval_prompt_images)
    g = torch.Generator().manual_seed(cfg.seed)
    degraded = ((augment(to_tensor(prompt_x), g) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return {
        "test_accuracy": accuracy(model, test_x, test_y),
        "test_accuracy_by_style": {
            s: accuracy(model, test_x, test_y, style == k) for k, s in enumerate(fashion.STYLES)
        },
        "test_accuracy_photo_flat": accuracy(model, test_x, test_y, filled),
        "evaluation_prompt_accuracy": accuracy(model, prompt_x, prompt_y),
        "evaluation_prompt_accuracy_degraded": accuracy(model, degraded, prompt_y),
        "eval_images": cfg.eval_images,
        "eval_prompt_images": cfg.eval_prompt_images,
        "eval_set": "Fashion-MNIST test-split garments composed with random attributes (1 in 4 a held-out triple); "
        "evaluation_prompt_*: the attributes of fashion.evaluation_prompts, i.e. what `pasta eval t2i` asks for "
        "(degraded: with the training augmentation applied)",
    }


def print_metrics(metrics: dict) -> None:
    cols = {
        "test_accuracy": "random attrs",
        "test_accuracy_photo_flat": "photo/flat",
        "evaluation_prompt_accuracy": "eval prompts",
        "evaluation_prompt_accuracy_degraded": "eval, degraded",
    }
    print(f"\naccuracy on composed test-split images\n{'head':<12}" + "".join(f"{n:>16}" for n in cols.values()))
    for h in HEADS:
        print(f"{h:<12}" + "".join(f"{metrics[c][h]:>16.4f}" for c in cols))
    print(
        "garment accuracy by style: "
        + ", ".join(f"{s} {v['garment']:.3f}" for s, v in metrics["test_accuracy_by_style"].items())
    )


def lr_at(cfg: TrainAttributeClassifierConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def export(model: AttributeClassifier, out: Path, metrics: dict) -> None:
    """Write weights atomically (a half-written folder never replaces a good one), then the metrics."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(
    cfg: TrainAttributeClassifierConfig,
    train_data: tuple[np.ndarray, np.ndarray] | None = None,
    test_data: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Train, evaluate, export; returns the metrics. `train_data`/`test_data` let tests inject small stand-ins
    (defaults: the Fashion-MNIST train and test splits)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    started = time.time()
    images, labels = train_data if train_data is not None else fashion.load_fashion_mnist("train")
    test_images, test_labels = test_data if test_data is not None else fashion.load_fashion_mnist("test")
    model = AttributeClassifier(AttributeClassifierConfig()).to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    step, rng, train_seconds = 0, np.random.default_rng([cfg.seed, 1]), 0.0
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.checkpoint.exists():
        state = torch.load(cfg.checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, rng, train_seconds = state["step"], state["rng"], state.get("train_seconds", 0.0)
        g.set_state(state["aug_rng"])
        print(f"resumed from {cfg.checkpoint} at step {step}")
    print(f"attribute classifier parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")

    def save() -> None:
        cfg.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "rng": rng,
            "aug_rng": g.get_state(),
            "train_seconds": train_seconds,
        }
        torch.save(state, cfg.checkpoint.with_suffix(".tmp"))
        cfg.checkpoint.with_suffix(".tmp").replace(cfg.checkpoint)

    start, losses = time.time(), []
    bar = progress_bar(total=cfg.steps, initial=step, desc="train attribute classifier")
    model.train()
    while step < cfg.steps and time.time() - start < cfg.minutes * 60:
        t_step = time.time()
        batch, y = compose_random(rng, images, labels, cfg.batch_size, cfg.held_out_share)
        x = to_tensor(batch)
        if cfg.augment:
            x = augment(x, g)
        logits = model(x.contiguous(memory_format=torch.channels_last))
        y_t = torch.from_numpy(y)
        loss = sum(
            F.cross_entropy(logits[h], y_t[:, j], label_smoothing=cfg.label_smoothing) for j, h in enumerate(HEADS)
        )
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        train_seconds += time.time() - t_step
        losses.append(loss.item())
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if step % cfg.save_every == 0:
            save()
    bar.close()
    save()

    t0 = time.time()
    model.eval()
    metrics = evaluate(model, test_images, test_labels, cfg)
    metrics["train"] = {
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "threads": cfg.threads,
        "wall_seconds_this_run": round(time.time() - started, 1),
        "eval_seconds": round(time.time() - t0, 1),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
    }
    print_metrics(metrics)
    export(model.to(memory_format=torch.contiguous_format), cfg.out, metrics)
    print(
        f"exported to {cfg.out}; {step} steps, {train_seconds / 60:.1f} min of training, "
        f"{(time.time() - started) / 60:.1f} min in this run"
    )
    return metrics


if __name__ == "__main__":
    main(tyro.cli(TrainAttributeClassifierConfig))
