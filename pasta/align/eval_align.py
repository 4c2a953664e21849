"""`pasta eval align`: what each aligned adapter does, next to the base model, on held-out prompts.

For the held-out prompts of the model's world (`PromptTask.evaluation_prompts`: combinations no training prompt
uses), the base model and each adapter render the same seeds through the app's own path
(`EmbeddedTextToImage.load_adapter`, DPM-Solver++), and for each model this measures:
- the reward (the adapters' reward, by default the alignment reward): mean, gain over the base, relative gain, and
  the share of the gap to real composed images of the same prompts that the gain closes;
- attribute accuracy read by the world's independent judge (`PromptTask.judge`), on the requested attributes,
  and its change in points over the base (no collapse);
- distance to the base: mean absolute pixel change from the same noise, inside and outside the problem mask (the
  reward's saliency mask of the base image, as Focus-N-Fix uses), and the KL of the DDIM (eta = 1) chains;
- one DPOK round (sample + update, 16 images) timed on `--bench-threads` threads.
Writes <out>/metrics.json, <out>/summary.png and <out>/contact_sheet.png, and prints a table with the targets.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import tyro

from pasta.align.rewards import ALIGN_DIR
from pasta.config import Sampler
from pasta.worlds import load_prompt_task
from pasta.worlds.world import PromptTask

TARGETS = {
    "dpok_reward_gain_relative": 0.10,
    "dpok_accuracy_drop_points": 2.0,
    "focus_outside_change_vs_dpok": 0.25,
    "dpok_round_seconds": 20.0,
}


@dataclass
class EvalAlignConfig:
    adapters: tuple[Path, ...] = ()
    """Adapter folders to compare (default: every adapter under models/embedded/align)."""
    reward: str | None = None
    """Reward spec (default: the reward named in the first adapter's model card, else alignment)."""
    model_dir: Path | None = None
    """Embedded text-to-image weights (default models/embedded/t2i)."""
    classifier_dir: Path | None = None
    """The world's judge (default its shipped one: models/embedded/attribute_classifier)."""
    n_prompts: int = 32
    """Held-out evaluation prompts."""
    subjects: Annotated[tuple[str, ...], tyro.conf.arg(aliases=("--garments",))] = ()
    """Only the held-out prompts of these subjects (values of the world's subject axis, e.g. coat shirt pullover,
    the ones the base model gets wrong most often); default all."""
    images_per_prompt: int = 4
    seed: int = 0
    sampler: Sampler = "unipc"
    """The solver the images are rendered with, as the app's `--sampler` (the shipped adapters' README figures:
    dpm-solver++)."""
    mask_fraction: float = 0.25
    """Share of pixels in the saliency mask (as Focus-N-Fix's default)."""
    mask_smoothing: int = 5
    kl_prompts: int = 8
    """Prompts (x 2 chains) for the KL estimate; 0 skips it."""
    bench_round: bool = True
    """Time DPOK rounds (sample + update of 16 images)."""
    bench_threads: int = 2
    bench_repeats: int = 3
    threads: int = 1
    """torch threads for the evaluation itself."""
    out_dir: Path = Path("runs/eval_align")
    strict: bool = False
    """Exit with status 1 when a target is missed."""

    def __post_init__(self) -> None:
        if self.n_prompts < 1 or self.images_per_prompt < 1:
            raise ValueError("n_prompts and images_per_prompt must be at least 1")
        if not 0 < self.mask_fraction < 1:
            raise ValueError(f"mask_fraction must be in (0, 1), got {self.mask_fraction}")


def default_adapters() -> list[Path]:
    return sorted(p.parent for p in ALIGN_DIR.glob("*/adapter_config.json"))


def attribute_accuracy(classifier, pixels: torch.Tensor, wanted: list[dict[str, int]]) -> dict[str, np.ndarray]:
    """Per image and requested attribute: does the judge read the requested value?"""
    from pasta.backends.embedded_t2i import tensor_to_images

    predicted = classifier.predict(tensor_to_images(pixels))
    return {a: predicted[a] == np.array([w[a] for w in wanted]) for a in wanted[0]}


def real_image_reward(reward, task: PromptTask, prompts: list[tuple[str, object]], seed: int = 0) -> float | None:
    """Mean reward of real images of the world with each prompt's attributes: the reward's ceiling."""
    images = task.real_images(prompts, seed)
    if images is None:
        return None
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        return float(reward(x, [text for text, _ in prompts]).mean())


def bench_dpok_round(model_dir: Path | None, reward, prompts: list[str], threads: int, repeats: int) -> dict:
    """Median wall time of a DPOK round (16 images: sample + value and policy updates), embedded preset."""
    from pasta.align.diffusion import EmbeddedDiffusion
    from pasta.align.dpok import DPOK, DPOKConfig

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trainer = DPOK(EmbeddedDiffusion(model_dir), reward, prompts, DPOKConfig.embedded())
        trainer.round()  # warm-up
        logs = [trainer.round() for _ in range(repeats)]
    finally:
        torch.set_num_threads(previous)
    return {
        "median_seconds": statistics.median(r["round_seconds"] for r in logs),
        "sample_seconds": statistics.median(r["sample_seconds"] for r in logs),
        "update_seconds": statistics.median(r["update_seconds"] for r in logs),
        "images": trainer.config.prompts_per_round * trainer.config.images_per_prompt,
        "policy_steps": trainer.config.policy_steps,
        "policy_batch": trainer.config.policy_batch,
        "num_inference_steps": trainer.config.num_inference_steps,
        "threads": threads,
        "repeats": repeats,
    }


def evaluate_align(cfg: EvalAlignConfig, progress: bool = True) -> dict:
    from pasta.align.adapters import load_adapter, read_card
    from pasta.align.ddim_policy import estimate_kl
    from pasta.align.diffusion import EmbeddedDiffusion
    from pasta.align.focus_n_fix import problem_mask
    from pasta.align.rewards import make_reward
    from pasta.backends.embedded_t2i import EmbeddedTextToImage
    from pasta.console import progress_bar

    adapters = [Path(a) for a in cfg.adapters] or default_adapters()
    for a in adapters:
        if not (a / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{a} is not a LoRA adapter folder (no adapter_config.json)")
    cards = {}
    for a in adapters:
        try:
            cards[str(a)] = read_card(a)
        except FileNotFoundError:
            cards[str(a)] = {"method": a.name}
    spec = cfg.reward or next((c["reward"] for c in cards.values() if "reward" in c), "alignment")
    reward = make_reward(spec)
    t2i = EmbeddedTextToImage(cfg.model_dir, guidance="cfg", sampler=cfg.sampler)  # base and adapters alike
    task = load_prompt_task(t2i.config.world)
    classifier = task.judge(cfg.classifier_dir)
    diffusion = EmbeddedDiffusion(cfg.model_dir, text=t2i.text) if cfg.kl_prompts > 0 else None

    prompts = task.evaluation_prompts(cfg.n_prompts, subjects=task.check_subjects(cfg.subjects))
    texts = [p for p, _ in prompts]
    seeds = [cfg.seed * 1_000_003 + i for i in range(cfg.n_prompts)]
    per_image_texts = [t for t in texts for _ in range(cfg.images_per_prompt)]
    wanted = [task.requested_indices(a) for _, a in prompts for _ in range(cfg.images_per_prompt)]

    def render(label: str) -> torch.Tensor:
        chunks = []
        for b in progress_bar(range(0, len(texts), 4), desc=f"eval align: {label}", disable=not progress):
            chunks.append(t2i.sample_tensor(texts[b : b + 4], seeds[b : b + 4], cfg.images_per_prompt))
        return torch.cat(chunks).clamp(-1, 1)

    def score(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat(
                [reward(pixels[i : i + 64], per_image_texts[i : i + 64]) for i in range(0, len(pixels), 64)]
            )

    base = render("base")
    base_reward = score(base)
    base_acc = attribute_accuracy(classifier, base, wanted)
    mask = (
        problem_mask(reward, base, per_image_texts, cfg.mask_fraction, cfg.mask_smoothing)
        if reward.differentiable
        else torch.zeros_like(base[:, :1])
    )
    ceiling = real_image_reward(reward, task, prompts, cfg.seed)

    def describe(pixels: torch.Tensor, r: torch.Tensor, acc: dict[str, np.ndarray]) -> dict:
        diff = (pixels - base).abs()
        outside = (diff * (1 - mask)).sum(dim=(1, 2, 3)) / (3 * (1 - mask).sum(dim=(1, 2, 3))).clamp_min(1)
        inside = (diff * mask).sum(dim=(1, 2, 3)) / (3 * mask.sum(dim=(1, 2, 3))).clamp_min(1)
        gain = float(r.mean() - base_reward.mean())
        mean_acc = float(np.mean([acc[a].mean() for a in task.requested]))
        base_mean_acc = float(np.mean([base_acc[a].mean() for a in task.requested]))
        return {
            "reward_mean": float(r.mean()),
            "reward_std": float(r.std()),
            "reward_gain": gain,
            "reward_gain_relative": gain / max(abs(float(base_reward.mean())), 1e-8),
            "reward_gap_closed": gain / (ceiling - float(base_reward.mean()))
            if ceiling is not None and ceiling > float(base_reward.mean())
            else None,
            "share_images_improved": float((r > base_reward).float().mean()),
            "attribute_accuracy": {a: float(acc[a].mean()) for a in task.requested},
            "attribute_accuracy_mean": mean_acc,
            "attribute_accuracy_change_points": 100 * (mean_acc - base_mean_acc),
            "all_five_correct": float(np.logical_and.reduce([acc[a] for a in task.requested]).mean()),
            "pixel_change_abs": float(diff.mean()),
            "pixel_change_inside_mask_abs": float(inside.mean()),
            "pixel_change_outside_mask_abs": float(outside.mean()),
            "outside_change_per_reward_gain": float(outside.mean()) / gain if gain > 0 else None,
        }

    results = {"base": {**describe(base, base_reward, base_acc), "adapter": None, "method": "base"}}
    images = {"base": base}
    for a in adapters:
        t0 = time.perf_counter()
        t2i.load_adapter(a)  # the app's path; replaces the previous adapter
        pixels = render(a.name)
        r = score(pixels)
        entry = {
            **describe(pixels, r, attribute_accuracy(classifier, pixels, wanted)),
            "adapter": str(a),
            "method": cards[str(a)].get("method", a.name),
            "card_reward": cards[str(a)].get("reward"),
            "render_seconds": time.perf_counter() - t0,
        }
        if diffusion is not None:
            peft_unet = load_adapter(diffusion.unet, a)
            entry["kl"] = estimate_kl(diffusion, peft_unet, texts[: cfg.kl_prompts], seed=cfg.seed)
            diffusion.unet = peft_unet.unload()
        name = a.name if a.name not in results else str(a)
        results[name] = entry
        images[name] = pixels

    bench = None
    if cfg.bench_round:
        from pasta.align.prompts import load_prompts

        bench = bench_dpok_round(
            cfg.model_dir, reward, load_prompts("train:64", task.world), cfg.bench_threads, cfg.bench_repeats
        )

    targets = compute_targets(results, bench)
    agreement = reward_judge_agreement(base_reward, base_acc)
    metrics = {
        "model_dir": str(t2i.folder),
        "base_model": diffusion.describe() if diffusion else None,
        "reward": reward.spec,
        "reward_metrics": reward.metrics(),
        "reward_real_image_ceiling": ceiling,
        "world": task.world,
        "n_prompts": cfg.n_prompts,
        "images_per_prompt": cfg.images_per_prompt,
        "seed": cfg.seed,
        "mask_fraction": cfg.mask_fraction,
        "reward_judge_agreement_on_base_images": agreement,
        "results": results,
        "dpok_round": bench,
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets.values() if t["pass"] is not None),
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "definitions": {
            "reward_gain_relative": "(mean reward of the adapter - of the base) / |mean reward of the base|",
            "reward_gap_closed": "gain / (reward of real composed images with the prompts' attributes - base reward)",
            "attribute_accuracy_change_points": "100 x change of the mean accuracy over the requested "
            "attributes, read by the world's judge",
            "pixel_change_*_abs": "mean |adapter - base| per pixel and channel in [-1, 1] units, same noise, inside "
            "or outside the reward-saliency mask of the base image",
            "kl": "DDIM (eta = 1) chain KL(adapter || base), see pasta.align.ddim_policy.estimate_kl",
        },
    }
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    (cfg.out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n")
    plot_summary(results, ceiling, cfg.out_dir / "summary.png")
    contact_sheet(images, mask, texts, cfg.images_per_prompt, cfg.out_dir / "contact_sheet.png")
    return metrics


def reward_judge_agreement(reward: torch.Tensor, accuracy: dict[str, np.ndarray]) -> dict:
    """How well the reward tracks the independent judge on generated images: Spearman correlation of the reward
    with the number of requested attributes the classifier reads correctly, per image."""
    from scipy.stats import spearmanr

    correct = np.sum(list(accuracy.values()), axis=0)
    rho = spearmanr(reward.numpy(), correct).statistic if len(np.unique(correct)) > 1 else float("nan")
    by_count = {int(k): float(reward[torch.as_tensor(correct == k)].mean()) for k in np.unique(correct)}
    return {
        "spearman_reward_vs_correct_attributes": float(rho),
        "mean_reward_by_correct_attributes": by_count,
        "images": int(len(correct)),
    }


def _by_method(results: dict, method: str) -> dict | None:
    return next((r for r in results.values() if r.get("method") == method), None)


def compute_targets(results: dict, bench: dict | None) -> dict:
    dpok, focus = _by_method(results, "dpok"), _by_method(results, "focus")
    t: dict[str, dict] = {}

    def target(name: str, value, ok) -> None:
        t[name] = {"value": value, "target": TARGETS[name], "pass": ok}

    if dpok:
        g = dpok["reward_gain_relative"]
        target("dpok_reward_gain_relative", g, g >= TARGETS["dpok_reward_gain_relative"])
        drop = -dpok["attribute_accuracy_change_points"]
        target("dpok_accuracy_drop_points", drop, drop <= TARGETS["dpok_accuracy_drop_points"])
    if dpok and focus:
        ratio = focus["pixel_change_outside_mask_abs"] / max(dpok["pixel_change_outside_mask_abs"], 1e-12)
        target("focus_outside_change_vs_dpok", ratio, ratio <= TARGETS["focus_outside_change_vs_dpok"])
        t["focus_outside_change_vs_dpok"]["reward_gains"] = {"dpok": dpok["reward_gain"], "focus": focus["reward_gain"]}
        per_gain = [r["outside_change_per_reward_gain"] for r in (focus, dpok)]
        t["focus_outside_change_vs_dpok"]["per_unit_reward_gain_ratio"] = (
            per_gain[0] / per_gain[1] if None not in per_gain and per_gain[1] > 0 else None
        )
    if bench:
        s = bench["median_seconds"]
        target("dpok_round_seconds", s, s <= TARGETS["dpok_round_seconds"])
        t["dpok_round_seconds"]["threads"] = bench["threads"]
    return t


def plot_summary(results: dict, ceiling: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    colours = ["#888888", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ax.bar(names, [results[n]["reward_mean"] for n in names], color=colours[: len(names)])
    if ceiling is not None:
        ax.axhline(ceiling, ls="--", c="k", lw=1, label="real composed images")
        ax.legend(fontsize=8)
    ax.set_title("reward on held-out prompts")
    ax = axes[1]
    ax.bar(names, [100 * results[n]["attribute_accuracy_mean"] for n in names], color=colours[: len(names)])
    ax.set_title("attribute accuracy, mean of requested (%)")
    ax = axes[2]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [results[n]["pixel_change_inside_mask_abs"] for n in names], 0.4, label="inside mask")
    ax.bar(x + 0.2, [results[n]["pixel_change_outside_mask_abs"] for n in names], 0.4, label="outside mask")
    ax.set_xticks(x, names)
    ax.set_title("mean |change| vs base (same noise)")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def contact_sheet(
    images: dict[str, torch.Tensor],
    mask: torch.Tensor,
    texts: list[str],
    per_prompt: int,
    path: Path,
    rows: int = 8,
    cell: int = 96,
) -> None:
    """One row per prompt (first image): base, its problem mask, then each adapter."""
    from PIL import Image, ImageDraw

    from pasta.backends.embedded_t2i import tensor_to_images

    names = list(images)
    cols = ["base", "mask"] + names[1:]
    rows = min(rows, len(texts))
    label_h, text_w = 18, 260
    sheet = Image.new("RGB", (text_w + len(cols) * (cell + 4), label_h + rows * (cell + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, col in enumerate(cols):
        draw.text((text_w + j * (cell + 4), 2), col[:16], fill="black")
    for i in range(rows):
        k = i * per_prompt
        y = label_h + i * (cell + 4)
        draw.text((4, y + 4), texts[i][:44], fill="black")
        if len(texts[i]) > 44:
            draw.text((4, y + 18), texts[i][44:88], fill="black")
        tiles = [tensor_to_images(images["base"][k : k + 1])[0]]
        overlay = tiles[0].astype(np.float32) * 0.35
        overlay[..., 0] += 160 * mask[k, 0].numpy()
        tiles.append(np.clip(overlay, 0, 255).astype(np.uint8))
        tiles += [tensor_to_images(images[n][k : k + 1])[0] for n in names[1:]]
        for j, tile in enumerate(tiles):
            sheet.paste(Image.fromarray(tile).resize((cell, cell), Image.NEAREST), (text_w + j * (cell + 4), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def print_table(metrics: dict) -> None:
    res = metrics["results"]
    print(
        f"\n{'model':<10}{'reward':>9}{'gain %':>9}{'gap %':>8}{'attr acc':>10}{'d pts':>8}"
        f"{'|d| in':>9}{'|d| out':>9}{'KL':>10}"
    )
    for name, r in res.items():
        gap = r["reward_gap_closed"]
        kl = r.get("kl", {}).get("trajectory_kl_per_dim") if r.get("kl") else None
        print(
            f"{name:<10}{r['reward_mean']:>9.4f}{100 * r['reward_gain_relative']:>9.1f}"
            f"{(100 * gap if gap is not None else float('nan')):>8.1f}{100 * r['attribute_accuracy_mean']:>10.1f}"
            f"{r['attribute_accuracy_change_points']:>8.1f}{r['pixel_change_inside_mask_abs']:>9.4f}"
            f"{r['pixel_change_outside_mask_abs']:>9.4f}{(kl if kl is not None else float('nan')):>10.4g}"
        )
    print("\ntargets:")
    for name, t in metrics["targets"].items():
        status = "yes" if t["pass"] else "NO"
        print(f"  {name:<32} {t['value']:.4g} (target {'>=' if 'gain' in name else '<='} {t['target']}): {status}")


def main(argv: list[str] | None = None) -> int:
    import tyro

    cfg = tyro.cli(EvalAlignConfig, args=argv, prog="pasta eval align", description=__doc__.split("\n\n")[0])
    torch.set_num_threads(max(1, cfg.threads))
    try:
        metrics = evaluate_align(cfg)
    except (FileNotFoundError, ValueError) as error:
        print(f"pasta eval align: error: {error}", file=sys.stderr)
        return 2
    print_table(metrics)
    print(
        f"wrote {cfg.out_dir / 'metrics.json'}, {cfg.out_dir / 'summary.png'} and {cfg.out_dir / 'contact_sheet.png'}"
    )
    return 1 if cfg.strict and not metrics["all_targets_pass"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
