"""`pasta eval t2i`: does the embedded text-to-image model draw what a prompt asks for, and fast enough?

Prompts are the world's held-out evaluation prompts (`PromptTask.evaluation_prompts`; in the default world,
combinations the model never saw rendered, every attribute named, in a phrasing the training captions do not use).
Each generated image is read by the world's judge (`PromptTask.judge`), a separately trained supervised CNN, never
by the model's own embedder, so the model cannot be graded by something it was shaped to please. Targets: the
world's accuracy targets (`PromptTask.accuracy_targets`: in the default world class and colour >= 85%, pattern
>= 70%), and one turn (4 prompts x 4 images) in <= 3 s median on 2 CPU cores. The emoji world's model has its own
evaluation (pasta.tools.eval_t2i_emoji).

Writes <out_dir>/metrics.json and <out_dir>/contact_sheet.png, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import get_args

import numpy as np
import torch
from PIL import Image

from pasta.config import Guidance, Sampler
from pasta.tools.contact_sheet import contact_sheet
from pasta.tools.turn_speed import TURN_IMAGES, TURN_PROMPTS, TURN_SECONDS_TARGET, time_turn
from pasta.worlds import load_prompt_task

SHORT_NAMES = {"background": "bg"}


def _short(attribute: str, value: str) -> str:
    """How a misread attribute is named under its image on the contact sheet."""
    return f"{SHORT_NAMES.get(attribute, attribute)}:{value}"


def evaluate_t2i(
    model_dir: str | Path | None = None,
    n_prompts: int = 64,
    images_per_prompt: int = 4,
    out_dir: Path = Path("runs/eval_t2i"),
    seed: int = 0,
    repeats: int = 5,
    classifier_dir: str | Path | None = None,
    batch_prompts: int = 4,
    progress: bool = True,
    sampling_steps: int | None = None,
    guidance: str = "auto",
    guidance_adapter: str | Path | None = None,
    sampler: str = "unipc",
) -> dict:
    """Generate images for held-out prompts, read them with the attribute classifier, time a turn; write
    metrics.json and contact_sheet.png to `out_dir` and return the metrics. `sampling_steps`: the sampler's steps
    (None: the weights' own, as `pasta_t2i.json` says); `guidance`, `guidance_adapter`, `sampler`: as `EmbeddedTextToImage`."""
    from pasta.backends.embedded_t2i import EmbeddedTextToImage, tensor_to_images
    from pasta.console import progress_bar

    if n_prompts < 1 or images_per_prompt < 1 or repeats < 1:
        raise ValueError("n_prompts, images_per_prompt and repeats must be at least 1")
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    t2i = EmbeddedTextToImage(
        model_dir,
        num_inference_steps=sampling_steps,
        guidance=guidance,
        guidance_adapter=guidance_adapter,
        sampler=sampler,
    )
    task = load_prompt_task(t2i.config.world)
    classifier = task.judge(classifier_dir)
    load_seconds = time.perf_counter() - t0
    attributes = task.requested

    prompts = task.evaluation_prompts(n_prompts)
    seeds = [seed * 1_000_003 + i for i in range(n_prompts)]
    pixels, gen_seconds = [], 0.0
    for start in progress_bar(range(0, n_prompts, batch_prompts), desc="eval t2i: generate", disable=not progress):
        chunk = prompts[start : start + batch_prompts]
        t1 = time.perf_counter()
        x = t2i.sample_tensor([p for p, _ in chunk], seeds[start : start + batch_prompts], images_per_prompt)
        gen_seconds += time.perf_counter() - t1
        pixels.append(tensor_to_images(x))
    images = np.concatenate(pixels)  # uint8 [n_prompts * images_per_prompt, 32, 32, 3], grouped by prompt
    predicted = classifier.predict(images)
    requested = [task.requested_indices(attrs) for _, attrs in prompts]

    per_image: dict[str, np.ndarray] = {}
    for attribute in attributes:
        want = np.repeat([r[attribute] for r in requested], images_per_prompt)
        per_image[attribute] = predicted[attribute] == want
    accuracy = {a: float(per_image[a].mean()) for a in attributes}
    majority = {a: float((per_image[a].reshape(n_prompts, images_per_prompt).mean(1) > 0.5).mean()) for a in attributes}
    all_correct = np.logical_and.reduce([per_image[a] for a in attributes])

    turn_seconds, times = time_turn(t2i, [p for p, _ in prompts], seed, repeats, progress)

    targets = {}
    for name, (attribute, threshold) in task.accuracy_targets.items():
        targets[name] = {
            "attribute": attribute,
            "value": accuracy[attribute],
            "target": threshold,
            "pass": accuracy[attribute] >= threshold,
        }
    targets["turn_seconds"] = {
        "value": turn_seconds,
        "target": TURN_SECONDS_TARGET,
        "pass": turn_seconds <= TURN_SECONDS_TARGET,
    }

    values = task.attribute_values
    prompt_rows, sheet_rows = [], []
    for i, (text, _) in enumerate(prompts):
        sl = slice(i * images_per_prompt, (i + 1) * images_per_prompt)
        reads = [{a: values[a][int(predicted[a][j])] for a in attributes} for j in range(sl.start, sl.stop)]
        want = {a: values[a][requested[i][a]] for a in attributes}
        errors = [[_short(a, r[a]) for a in attributes if r[a] != want[a]] for r in reads]
        prompt_rows.append({"prompt": text, "seed": seeds[i], "requested": want, "classified": reads})
        sheet_rows.append(
            {"prompt": text, "errors": errors, "images": [Image.fromarray(images[j]) for j in range(sl.start, sl.stop)]}
        )

    judge = None
    judge_metrics = Path(classifier_dir or task.default_judge_dir) / "metrics.json"
    if judge_metrics.exists():
        judge = json.loads(judge_metrics.read_text()).get("evaluation_prompt_accuracy")

    metrics = {
        "model_dir": str(t2i.folder),
        "world": task.world,
        "classifier_dir": str(classifier_dir or task.default_judge_dir),
        "adapter": t2i.adapter,
        "n_prompts": n_prompts,
        "images_per_prompt": images_per_prompt,
        "n_images": int(len(images)),
        "seed": seed,
        "sampling": {
            "sampler": t2i.sampler,
            "num_inference_steps": t2i.config.num_inference_steps,
            "guidance_scale": t2i.config.guidance_scale,
            "guidance": t2i.guidance,
            "guidance_adapter": str(guidance_adapter) if guidance_adapter and t2i.guidance == "distilled" else None,
        },
        "accuracy": accuracy,
        "prompt_majority_accuracy": majority,
        "all_attributes_accuracy": float(all_correct.mean()),
        "turn_seconds": {
            "median": turn_seconds,
            "all": times,
            "repeats": repeats,
            "images": TURN_PROMPTS * TURN_IMAGES,
            "threads": torch.get_num_threads(),
        },
        "generate_seconds_per_image": gen_seconds / len(images),
        "load_seconds": load_seconds,
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets.values()),
        "judge_accuracy_on_real_composed_images": judge,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__},
        "definitions": {
            "accuracy": "share of generated images whose classified attribute equals the requested one",
            "prompt_majority_accuracy": "share of prompts where more than half of the images show the attribute",
            "turn_seconds": f"median wall time of generate() for {TURN_PROMPTS} prompts x {TURN_IMAGES} images "
            "after one warm-up",
            "judge_accuracy_on_real_composed_images": "the classifier's own accuracy on real composed test images "
            "with these attributes (a ceiling for what this evaluation can measure)",
        },
        "prompts": prompt_rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = (
        f"pasta eval t2i: {n_prompts} held-out prompts x {images_per_prompt} images, model {t2i.folder}\n"
        + "  ".join(f"{a} {accuracy[a]:.0%}" for a in attributes)
        + f"  |  turn of 16 images: {turn_seconds:.2f} s median"
    )
    contact_sheet(sheet_rows, title, out_dir / "contact_sheet.png")
    return metrics


def print_table(metrics: dict) -> None:
    print(f"\n{'attribute':<12}{'per image':>10}{'per prompt':>12}{'target':>8}{'pass':>6}")
    by_attr = {t["attribute"]: (name, t["target"]) for name, t in metrics["targets"].items() if "attribute" in t}
    for a in metrics["accuracy"]:
        target = by_attr.get(a)
        t_str = f"{target[1]:.2f}" if target else "-"
        p_str = ("yes" if metrics["targets"][target[0]]["pass"] else "NO") if target else "-"
        print(
            f"{a:<12}{metrics['accuracy'][a]:>10.3f}{metrics['prompt_majority_accuracy'][a]:>12.3f}{t_str:>8}{p_str:>6}"
        )
    print(f"{'all':<12}{metrics['all_attributes_accuracy']:>10.3f}")
    ts = metrics["targets"]["turn_seconds"]
    print(
        f"turn of {metrics['turn_seconds']['images']} images: {ts['value']:.2f} s median over "
        f"{metrics['turn_seconds']['repeats']} runs on {metrics['turn_seconds']['threads']} threads "
        f"(target <= {ts['target']:.1f} s: {'yes' if ts['pass'] else 'NO'})"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pasta eval t2i",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--world",
        choices=("fashion", "emoji"),
        default="fashion",
        help="the world the model draws: its prompts, judge and targets (emoji: pasta.tools.eval_t2i_emoji)",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="embedded t2i weights (default: the world's, models/embedded/t2i or t2i_emoji)",
    )
    p.add_argument(
        "--judge-dir",
        type=Path,
        default=None,
        help="emoji world: the judge's weights (default: models/embedded/emoji_judge)",
    )
    p.add_argument(
        "--classifier-dir",
        type=Path,
        default=None,
        help="attribute classifier weights (default: models/embedded/attribute_classifier)",
    )
    p.add_argument("--n-prompts", type=int, default=None, help="held-out prompts to render (default 64; emoji 200)")
    p.add_argument("--images-per-prompt", type=int, default=None, help="images per prompt (default 4; emoji 2)")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where metrics.json and the sheet go (default runs/eval_t2i, emoji runs/eval_t2i_emoji)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of the per-prompt noise")
    p.add_argument("--repeats", type=int, default=5, help="timed turns after one warm-up (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the target is for 2 CPU cores)")
    p.add_argument(
        "--sampling-steps",
        type=int,
        default=0,
        help="diffusion sampling steps (0: the weights' own; the app's --sampling-steps is what a person sees)",
    )
    p.add_argument(
        "--sampler",
        choices=get_args(Sampler),
        default="unipc",
        help="the diffusion solver (the app's default: unipc)",
    )
    p.add_argument(
        "--guidance",
        choices=get_args(Guidance),
        default="auto",
        help="one UNet forward a step with a distilled-guidance adapter, or two (cfg); auto: the weights' own adapter",
    )
    p.add_argument(
        "--guidance-adapter",
        type=Path,
        default=None,
        help="a distilled-guidance adapter to measure (default: the weights' guidance_lora/, where there is one)",
    )
    p.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `pasta eval t2i` (pasta.cli passes the remaining arguments)."""
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    emoji = args.world == "emoji"
    out_dir = args.out_dir or Path("runs/eval_t2i_emoji" if emoji else "runs/eval_t2i")
    try:
        if emoji:
            from pasta.tools.eval_t2i_emoji import evaluate_emoji_t2i
            from pasta.tools.eval_t2i_emoji import print_table as print_emoji_table

            metrics = evaluate_emoji_t2i(
                args.model_dir,
                args.judge_dir,
                args.n_prompts or 200,
                args.images_per_prompt or 2,
                out_dir,
                args.seed,
                args.repeats,
                sampling_steps=args.sampling_steps or None,
                guidance=args.guidance,
                guidance_adapter=args.guidance_adapter,
                sampler=args.sampler,
            )
            print_emoji_table(metrics)
        else:
            metrics = evaluate_t2i(
                args.model_dir,
                args.n_prompts or 64,
                args.images_per_prompt or 4,
                out_dir,
                args.seed,
                args.repeats,
                args.classifier_dir,
                sampling_steps=args.sampling_steps or None,
                guidance=args.guidance,
                guidance_adapter=args.guidance_adapter,
                sampler=args.sampler,
            )
            print_table(metrics)
    except (FileNotFoundError, ValueError) as error:
        print(f"pasta eval t2i: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out_dir / 'metrics.json'} and {out_dir / 'contact_sheet.png'}")
    return 1 if args.strict and not metrics["all_targets_pass"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
