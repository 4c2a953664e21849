"""`pasta eval t2i --world emoji`: does the emoji-world model draw the subject, scene and style a prompt names?

Prompts are held-out (subject, scene, style) combinations the model never saw, captioned in training phrasings and
in evaluation phrasings it never saw (`pasta.worlds.emoji_scenes`). The judge (pasta.worlds.emoji_judge), trained
only on real composed scenes, reads each generated image; the same specs composed from the real artwork are read
too, which is the judge's own ceiling on exactly these prompts. Targets (issue 18): subject top-1 >= 0.60 and
top-5 >= 0.85 over every concept, scene and style >= 0.90, both subjects of a pair present >= 0.50, and 16 images
in <= 3 s median on 2 CPU threads.

Writes <out_dir>/metrics.json and <out_dir>/contact_sheet.png, and prints a table.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pasta.tools.contact_sheet import contact_sheet
from pasta.tools.turn_speed import TURN_IMAGES, TURN_PROMPTS, TURN_SECONDS_TARGET, time_turn

TARGETS = {"subject_top1": 0.60, "subject_top5": 0.85, "scene": 0.90, "style": 0.90, "pairs_both_present": 0.50}


def evaluate_emoji_t2i(
    model_dir: str | Path | None = None,
    judge_dir: str | Path | None = None,
    n_prompts: int = 200,
    images_per_prompt: int = 2,
    out_dir: Path = Path("runs/eval_t2i_emoji"),
    seed: int = 0,
    repeats: int = 3,
    batch_prompts: int = 8,
    progress: bool = True,
    sampling_steps: int | None = None,
    guidance: str = "auto",
    guidance_adapter: str | Path | None = None,
    sampler: str = "unipc",
) -> dict:
    from pasta.backends.embedded_t2i import WORLD_MODEL_DIRS, EmbeddedTextToImage, tensor_to_images
    from pasta.console import progress_bar
    from pasta.worlds.emoji_judge import EmojiJudge, read_scenes, summarize_reading
    from pasta.worlds.emoji_scenes import EVAL_TEMPLATES, SCENES, STYLES, TEMPLATES, caption, compose, sample_spec
    from pasta.worlds.emoji_world import EmojiWorld

    if n_prompts < 1 or images_per_prompt < 1 or repeats < 1:
        raise ValueError("n_prompts, images_per_prompt and repeats must be at least 1")
    judge = EmojiJudge.load(judge_dir)
    t2i = EmbeddedTextToImage(
        model_dir or WORLD_MODEL_DIRS["emoji"],
        num_inference_steps=sampling_steps,
        guidance=guidance,
        guidance_adapter=guidance_adapter,
        sampler=sampler,
    )
    if t2i.config.world != "emoji":
        raise ValueError(f"{t2i.folder} holds a {t2i.config.world!r} model, not one of the emoji world")
    world = EmojiWorld()
    if judge.config.subjects != list(world.concepts):
        raise ValueError(
            f"the judge knows {len(judge.config.subjects)} subjects, the world {len(world.concepts)}: "
            "retrain the judge on this world"
        )
    rng = np.random.default_rng([seed, 18])
    specs = [sample_spec(rng, list(world.concepts), "eval") for _ in range(n_prompts)]
    held_out_phrasing = np.arange(n_prompts) % 2 == 1  # every other prompt in a phrasing training never used
    prompts = [
        caption(spec, rng, "eval", EVAL_TEMPLATES if odd else TEMPLATES)
        for spec, odd in zip(specs, held_out_phrasing, strict=True)
    ]
    seeds = [seed * 1_000_003 + i for i in range(n_prompts)]
    chunks, gen_seconds = [], 0.0
    for start in progress_bar(
        range(0, n_prompts, batch_prompts), desc="eval t2i emoji: generate", disable=not progress
    ):
        t1 = time.perf_counter()
        x = t2i.sample_tensor(
            prompts[start : start + batch_prompts], seeds[start : start + batch_prompts], images_per_prompt
        )
        gen_seconds += time.perf_counter() - t1
        chunks.append(tensor_to_images(x))
    images = np.concatenate(chunks)
    per_image_specs = [s for s in specs for _ in range(images_per_prompt)]
    read = read_scenes(judge, images, per_image_specs)
    real = np.stack([compose(s, world.artwork(s.subjects), world.image_size, seeds[i]) for i, s in enumerate(specs)])
    ceiling = summarize_reading(read_scenes(judge, real, specs))
    generated = summarize_reading(read)
    eval_phrasing = np.repeat(held_out_phrasing, images_per_prompt)

    turn_seconds, times = time_turn(t2i, prompts, seed, repeats)

    targets = {
        k: {"value": generated[k], "target": t, "pass": generated[k] is not None and generated[k] >= t}
        for k, t in TARGETS.items()
    }
    targets["turn_seconds"] = {
        "value": turn_seconds,
        "target": TURN_SECONDS_TARGET,
        "pass": turn_seconds <= TURN_SECONDS_TARGET,
    }
    names = judge.config.subjects
    sheet_rows, prompt_rows = [], []
    for i, (text, spec) in enumerate(zip(prompts, specs, strict=True)):
        rows = range(i * images_per_prompt, (i + 1) * images_per_prompt)
        errors = [
            [f"read: {names[read['subject_read'][j]]}"] * bool(read["single"][j] and not read["subject_top1"][j])
            + [f"scene: {SCENES[read['scene_read'][j]]}"] * (not read["scene"][j])
            + [f"style: {STYLES[read['style_read'][j]]}"] * (not read["style"][j])
            for j in rows
        ]
        prompt_rows.append(
            {
                "prompt": text,
                "seed": seeds[i],
                "subjects": list(spec.subjects),
                "scene": spec.scene,
                "style": spec.style,
                "read_subjects": [names[read["subject_read"][j]] for j in rows],
            }
        )
        if i < 48:
            sheet_rows.append({"prompt": text, "errors": errors, "images": [Image.fromarray(images[j]) for j in rows]})
    metrics = {
        "model_dir": str(t2i.folder),
        "judge_dir": str(judge_dir or "models/embedded/emoji_judge"),
        "sampling": {
            "sampler": t2i.sampler,
            "num_inference_steps": t2i.config.num_inference_steps,
            "guidance_scale": t2i.config.guidance_scale,
            "guidance": t2i.guidance,
            "guidance_adapter": str(guidance_adapter) if guidance_adapter and t2i.guidance == "distilled" else None,
        },
        "concepts": len(names),
        "n_prompts": n_prompts,
        "images_per_prompt": images_per_prompt,
        "seed": seed,
        "generated": generated,
        "judge_on_real_scenes_of_these_prompts": ceiling,
        "generated_by_phrasing": {
            "training_phrasings": summarize_reading({k: v[~eval_phrasing] for k, v in read.items()}),
            "held_out_phrasings": summarize_reading({k: v[eval_phrasing] for k, v in read.items()}),
        },
        "turn_seconds": {
            "median": turn_seconds,
            "all": times,
            "images": TURN_PROMPTS * TURN_IMAGES,
            "threads": torch.get_num_threads(),
        },
        "generate_seconds_per_image": gen_seconds / len(images),
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets.values()),
        "train_state": json.loads((t2i.folder / "train_state.json").read_text())
        if (t2i.folder / "train_state.json").exists()
        else None,
        "machine": {"platform": platform.platform(), "torch": torch.__version__},
        "prompts": prompt_rows,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = (
        f"pasta eval t2i --world emoji: {n_prompts} held-out prompts x {images_per_prompt}, model {t2i.folder}\n"
        + "  ".join(f"{k} {v:.0%}" for k, v in generated.items() if v is not None)
        + f"  |  16 images: {turn_seconds:.2f} s median"
    )
    contact_sheet(sheet_rows, title, out_dir / "contact_sheet.png", cell=96)
    return metrics


def print_table(metrics: dict) -> None:
    generated, ceiling = metrics["generated"], metrics["judge_on_real_scenes_of_these_prompts"]
    print(f"\n{'measure':<22}{'generated':>10}{'real (judge ceiling)':>22}{'target':>8}{'pass':>6}")
    for key in ("subject_top1", "subject_top5", "scene", "style", "pairs_both_present", "pairs_left_right"):
        target = metrics["targets"].get(key)
        value = "-" if generated[key] is None else f"{generated[key]:.3f}"
        real = "-" if ceiling[key] is None else f"{ceiling[key]:.3f}"
        wanted = f"{target['target']:.2f}" if target else "-"
        passed = ("yes" if target["pass"] else "NO") if target else "-"
        print(f"{key:<22}{value:>10}{real:>22}{wanted:>8}{passed:>6}")
    ts = metrics["targets"]["turn_seconds"]
    print(
        f"16 images: {ts['value']:.2f} s median on {metrics['turn_seconds']['threads']} threads "
        f"(target <= {ts['target']:.1f} s: {'yes' if ts['pass'] else 'NO'}); {metrics['concepts']} concepts"
    )
