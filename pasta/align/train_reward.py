"""Train the prompt-image alignment reward (Lee et al. 2023) on preference data from an attribute world.

    pasta align reward --out models/embedded/align/alignment_reward

Data. Lee et al. label (prompt, image) pairs as aligned or not, with prompts that differ from the truth in one
word (colour, count, background). Here the images are real images of the world composed with known attributes
(the world's `PromptTask.preference_data`), so the truth is known: each image gets its true caption (label 1) and
`negatives` perturbed captions, each with one requested attribute swapped (label 0), in the same phrasing.
Training images come from the data's train split; held-out images from its test split, half of them with
combinations that no training image shows (the evaluation prompts').

Objective. MSE of r(x, z) to the 0/1 label, plus the auxiliary prompt-classification cross-entropy: the rewards of
one image's true and perturbed captions (divided by a temperature) are the logits, the true caption the class
(Lee et al. 2023).
The reward is an MLP on the frozen image encoder's and MiniLM's embeddings (pasta.align.rewards.AlignmentHead).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from pasta.align.rewards import DEFAULT_ALIGNMENT_REWARD_DIR, AlignmentHead, AlignmentReward, AlignmentRewardConfig
from pasta.console import progress_bar
from pasta.worlds import load_prompt_task


@dataclass
class TrainRewardConfig:
    out: Path = DEFAULT_ALIGNMENT_REWARD_DIR
    """Where the reward head, its config and metrics.json are written."""
    world: str = "fashion"
    """The world whose images and captions the reward learns (its prompt-following task)."""
    images: int = 6_000
    """Training images (the world's train split), each with 1 true and `negatives` perturbed captions."""
    held_out_images: int = 2_000
    """Held-out images (test split; half with held-out triples)."""
    negatives: int = 4
    """Perturbed captions per image (one attribute swapped each, distinct attributes)."""
    eval_like: float = 0.5
    """Share of images drawn like the evaluation prompts (photo/flat, large, centred); the rest any attributes."""
    augment: float = 0.5
    """Share of images degraded (noise, blur) before encoding, so the reward also reads imperfect generations."""
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    aux_weight: float = 0.5
    """Weight of the auxiliary prompt-classification cross-entropy."""
    aux_temperature: float = 0.25
    """The reward divided by this is the logit of the prompt-classification task."""
    head: AlignmentRewardConfig = field(default_factory=AlignmentRewardConfig)
    encoder_dir: Path | None = None
    """Image encoder (default models/embedded/image_encoder)."""
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.images < 1 or self.held_out_images < 1:
            raise ValueError("images and held_out_images must be at least 1")
        requested = load_prompt_task(self.world).requested
        if not 1 <= self.negatives <= len(requested):
            raise ValueError(f"negatives must be in [1, {len(requested)}] (one swapped attribute each)")


@torch.no_grad()
def embed_data(
    data: dict, reward: AlignmentReward, batch: int = 512, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image embeddings [n,384] and caption embeddings [n, 1+K, 384]."""
    x = torch.from_numpy(data["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    image_emb = torch.cat([reward.features(x[i : i + batch]) for i in range(0, len(x), batch)])
    flat = [c for row in data["captions"] for c in row]
    unique = list(dict.fromkeys(flat))
    for i in progress_bar(range(0, len(unique), 256), desc="embed captions", disable=not progress):
        reward.text(unique[i : i + 256])
    text_emb = reward.text(flat).view(len(x), -1, image_emb.shape[1])
    return image_emb, text_emb


@torch.no_grad()
def evaluate(
    head: AlignmentHead,
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    swapped: list[list[str]],
    requested: tuple[str, ...],
) -> dict:
    """Pairwise, prompt-classification and label accuracy of the head on embedded data; pairwise accuracy per
    swapped attribute in `requested`'s order."""
    head.eval()
    n, k1, d = text_emb.shape
    r = head(image_emb[:, None].expand(n, k1, d).reshape(-1, d), text_emb.reshape(-1, d)).view(n, k1)
    cosine = (image_emb[:, None] * text_emb).sum(-1)
    labels = torch.zeros(n, k1)
    labels[:, 0] = 1
    wins = r[:, :1] > r[:, 1:]
    per_attribute = {}
    for a in requested:
        mask = torch.tensor([[s == a for s in row] for row in swapped])
        if mask.any():
            per_attribute[a] = float(wins[mask].float().mean())
    return {
        "pairwise_accuracy": float(wins.float().mean()),
        "pairwise_accuracy_by_swapped_attribute": per_attribute,
        "prompt_classification_accuracy": float((r.argmax(1) == 0).float().mean()),
        "label_accuracy": float(((r > 0.5).float() == labels).float().mean()),
        "mse": float(F.mse_loss(r, labels)),
        "mean_reward_true_caption": float(r[:, 0].mean()),
        "mean_reward_perturbed_caption": float(r[:, 1:].mean()),
        "zero_shot_cosine_pairwise_accuracy": float((cosine[:, :1] > cosine[:, 1:]).float().mean()),
    }


def train_reward(cfg: TrainRewardConfig, progress: bool = True) -> dict:
    from pasta.backends.image_encoder import DEFAULT_IMAGE_ENCODER_DIR, ImageEncoder

    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    encoder_dir = cfg.encoder_dir or DEFAULT_IMAGE_ENCODER_DIR
    head = AlignmentHead(cfg.head)
    reward = AlignmentReward(head, ImageEncoder.load(encoder_dir))
    task = load_prompt_task(cfg.world)
    train = task.preference_data(cfg.images, "train", cfg.negatives, cfg.seed, cfg.eval_like, cfg.augment)
    held = task.preference_data(
        cfg.held_out_images, "test", cfg.negatives, cfg.seed + 1, cfg.eval_like, 0.0, held_out_share=0.5
    )
    train_i, train_t = embed_data(train, reward, progress=progress)
    held_i, held_t = embed_data(held, reward, progress=progress)
    data_seconds = time.perf_counter() - t0

    head.requires_grad_(True)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n, k1, d = train_t.shape
    labels = torch.zeros(k1)
    labels[0] = 1
    steps = cfg.epochs * ((n + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(cfg.seed)
    history = []
    for epoch in progress_bar(range(cfg.epochs), desc="train alignment reward", disable=not progress):
        head.train()
        order = torch.randperm(n, generator=g)
        total = 0.0
        for b in range(0, n, cfg.batch_size):
            idx = order[b : b + cfg.batch_size]
            bi, bt = train_i[idx], train_t[idx]
            r = head(bi[:, None].expand(-1, k1, d).reshape(-1, d), bt.reshape(-1, d)).view(len(idx), k1)
            mse = F.mse_loss(r, labels.expand_as(r))
            aux = F.cross_entropy(r / cfg.aux_temperature, torch.zeros(len(idx), dtype=torch.long))
            loss = mse + cfg.aux_weight * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if epoch % 5 == 4 or epoch == cfg.epochs - 1:
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": total / n,
                    "held_out_pairwise_accuracy": evaluate(head, held_i, held_t, held["swapped"], task.requested)[
                        "pairwise_accuracy"
                    ],
                }
            )
    head.eval().requires_grad_(False)
    triples = torch.as_tensor(held["held_out_triple"])
    metrics = {
        "method": "Lee et al. 2023 reward: MSE on aligned/misaligned labels + auxiliary prompt classification",
        "held_out": evaluate(head, held_i, held_t, held["swapped"], task.requested),
        "train": evaluate(head, train_i, train_t, train["swapped"], task.requested),
        "held_out_triples_only": evaluate(
            head,
            held_i[triples],
            held_t[triples],
            [s for s, keep in zip(held["swapped"], triples) if keep],
            task.requested,
        ),
        "data": {
            "train_images": cfg.images,
            "held_out_images": cfg.held_out_images,
            "negatives": cfg.negatives,
            "world": cfg.world,
            **task.splits,
        },
        "definitions": {
            "pairwise_accuracy": "share of (true caption, perturbed caption) pairs of one image with r(true) > r(perturbed)",
            "prompt_classification_accuracy": "share of images whose true caption has the highest reward of 1 + K",
            "label_accuracy": "share of (image, caption) pairs with (r > 0.5) == aligned",
        },
        "history": history,
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
        "image_encoder_dir": str(encoder_dir),
        "data_seconds": data_seconds,
        "train_seconds": time.perf_counter() - t0 - data_seconds,
        "threads": torch.get_num_threads(),
    }
    reward.save(cfg.out, metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    import tyro

    cfg = tyro.cli(TrainRewardConfig, args=argv, prog="pasta align reward", description=__doc__.split("\n\n")[0])
    torch.set_num_threads(cfg.threads)
    try:
        metrics = train_reward(cfg)
    except FileNotFoundError as error:
        print(f"pasta align reward: error: {error}", file=sys.stderr)
        return 2
    h = metrics["held_out"]
    print(
        f"held-out pairwise accuracy {h['pairwise_accuracy']:.3f} (zero-shot cosine "
        f"{h['zero_shot_cosine_pairwise_accuracy']:.3f}), prompt classification "
        f"{h['prompt_classification_accuracy']:.3f}, label accuracy {h['label_accuracy']:.3f}"
    )
    print(
        "by swapped attribute: "
        + ", ".join(f"{a} {v:.3f}" for a, v in h["pairwise_accuracy_by_swapped_attribute"].items())
    )
    print(f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
