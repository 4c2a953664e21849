"""`pasta align dpok | rwr | focus | reward`: train an aligned LoRA adapter (or the alignment reward).

    pasta align reward                                         # the learned alignment reward (Lee et al. 2023)
    pasta align dpok  --reward alignment --prompts train:256 --minutes 12
    pasta align rwr   --reward alignment --prompts train:64  --minutes 12
    pasta align focus --reward alignment --prompts train:64  --minutes 12
    pasta eval align  --adapters models/embedded/align/dpok models/embedded/align/rwr models/embedded/align/focus

--reward: alignment | alignment=DIR | user-type=DIR#K (the EM user model's type K) | redness.
--prompts: train:N (training prompts, disjoint from the held-out evaluation prompts) | a text file.
The adapter folder gets adapter_config.json + adapter_model.safetensors (peft) and model_card.json + README.md.
Method options are the fields of each method's config (`pasta align dpok --help`); DPOK starts from the embedded
preset (`DPOKConfig.embedded()`), whose paper defaults live in `DPOKConfig()`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro

from pasta.align.dpok import DPOKConfig
from pasta.align.focus_n_fix import FocusNFixConfig
from pasta.align.rewards import ALIGN_DIR
from pasta.align.rwr import RWRConfig

METHODS = ("dpok", "rwr", "focus", "reward")


@dataclass
class _Common:
    reward: str = "alignment"
    """Reward: alignment | alignment=DIR | user-type=DIR#K | redness."""
    prompts: str = "train:256"
    """Training prompts: train:N[:SEED] or a text file with one prompt per line."""
    model_dir: Path | None = None
    """Embedded text-to-image weights (default models/embedded/t2i); read only."""
    threads: int = 1
    """torch threads."""


@dataclass
class DPOKArgs(_Common):
    out: Path = ALIGN_DIR / "dpok"
    """Adapter folder to write."""
    resume: bool = False
    """Continue from the trainer state saved in --out (with --save-every, a run that was stopped loses at most that
    many rounds); the config must match, except --rounds, --minutes and --save-every."""
    config: tyro.conf.OmitArgPrefixes[DPOKConfig] = field(default_factory=DPOKConfig.embedded)


@dataclass
class RWRArgs(_Common):
    prompts: str = "train:64"
    out: Path = ALIGN_DIR / "rwr"
    config: tyro.conf.OmitArgPrefixes[RWRConfig] = field(default_factory=RWRConfig)


@dataclass
class FocusArgs(_Common):
    prompts: str = "train:64"
    out: Path = ALIGN_DIR / "focus"
    config: tyro.conf.OmitArgPrefixes[FocusNFixConfig] = field(default_factory=FocusNFixConfig)


def run(method: str, argv: list[str]) -> int:
    import torch

    from pasta.align.diffusion import EmbeddedDiffusion
    from pasta.align.prompts import load_prompts
    from pasta.align.rewards import make_reward

    kind = {"dpok": DPOKArgs, "rwr": RWRArgs, "focus": FocusArgs}[method]
    args = tyro.cli(kind, args=argv, prog=f"pasta align {method}")
    torch.set_num_threads(max(1, args.threads))
    model = EmbeddedDiffusion(args.model_dir, device="cpu")
    prompts = load_prompts(args.prompts, model.config.world)
    reward = make_reward(args.reward)
    card = {"prompts": {"spec": args.prompts, "count": len(prompts), "examples": prompts[:3]}}
    if method == "dpok":
        from pasta.align.dpok import train_dpok

        summary = train_dpok(model, reward, prompts, args.config, args.out, card=card, resume=args.resume)
        print(
            f"DPOK: {summary['rounds']} rounds, {summary['images_seen']} images, reward "
            f"{summary['reward_first_rounds']:.4f} -> {summary['reward_last_rounds']:.4f} (training rollouts), "
            f"KL {summary['kl_trajectory_last_rounds']:.4g}, median round {summary['round_seconds_median']:.1f} s"
        )
    elif method == "rwr":
        from pasta.align.rwr import train_rwr

        summary = train_rwr(model, reward, prompts, args.config, args.out, card=card)
        print(
            f"RWR: {summary['gradient_steps']} steps on {summary['images_seen']} generated images, "
            f"pre-training loss {summary['pretrain_loss_last']:.4f}"
        )
    else:
        from pasta.align.focus_n_fix import train_focus_n_fix

        summary = train_focus_n_fix(model, reward, prompts, args.config, args.out, card=card)
        print(
            f"Focus-N-Fix: {summary['gradient_steps']} steps, reward gain on training items "
            f"{summary['reward_gain_last_steps']:+.4f}, change outside the mask {summary['outside_abs_last_steps']:.4f}"
        )
    print(f"wrote {args.out} (see its README.md); compare with `pasta eval align --adapters {args.out}`")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in METHODS:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__)
            return 0
        given = repr(argv[0]) if argv else "nothing"
        print(f"pasta align: error: expected one of {', '.join(METHODS)}, got {given}", file=sys.stderr)
        return 2
    method, rest = argv[0], argv[1:]
    if method == "reward":
        from pasta.align.train_reward import main as train_reward_main

        return train_reward_main(rest)
    try:
        return run(method, rest)
    except (FileNotFoundError, ValueError) as error:
        print(f"pasta align {method}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
