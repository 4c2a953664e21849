"""Plot a training run's loss curve (the `loss_curve.jsonl` a trainer ships beside its weights: one JSON object per
line with `step` and `loss`), so that a README can show what the shipped weights went through.

    python -m pasta.tools.loss_curve models/embedded/t2i_emoji/loss_curve.jsonl docs/emoji_t2i_loss.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_curve(path: Path) -> tuple[list[int], list[float]]:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path} holds no loss values")
    return [int(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def plot(path: Path, out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = read_curve(path)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot(steps, losses, lw=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (50-step mean)")
    ax.set_title(title or f"{path.parent.name}: {steps[-1]:,} steps")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pasta.tools.loss_curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("curve", type=Path, help="a loss_curve.jsonl")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    print(f"wrote {plot(args.curve, args.out, args.title)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
