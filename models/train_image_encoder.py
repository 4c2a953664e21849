"""Train the embedded image encoder into the frozen MiniLM text space (a small CLIP whose text tower never moves).

    python models/train_image_encoder.py                 # ~15 min on one CPU thread; resumes from a checkpoint

Text side: all-MiniLM-L6-v2's pooled sentence embedding, frozen, so `Embedder.text` is MiniLM itself. Because it
never changes, a bank of captions is embedded once (in chunks, cached next to the checkpoint) and the network
only ever trains the image side. Each bank entry keeps the attributes of its image and which of them its caption
names; a training image is composed on the fly from a random Fashion-MNIST *train* garment of the entry's class.

Loss: symmetric InfoNCE as in CLIP, with two changes that the attribute world asks for.
- Multiple positives: captions name random subsets of attributes, so "a red dress" fits many images of a batch.
  Plain InfoNCE would push those apart (false negatives); here every caption whose named attributes all match an
  image counts as a positive for it, and the targets spread uniformly over them (a soft-target cross-entropy).
- Extra text negatives: text vectors are free (precomputed), so each image is also scored against a few thousand
  more bank captions, which gives many more contrasts per (costly) image than a 256-caption batch alone.

Evaluation (printed, and written to <out>/metrics.json): zero-shot accuracy per attribute on images composed from
the Fashion-MNIST *test* split (argmax over the text vectors of one prompt per attribute value; "canonical" uses
`fashion.attribute_phrase`, "ensemble" averages a few phrasings), and image<->caption retrieval among 1000 test
pairs.
"""

from __future__ import annotations

import json
import math
import re
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

from pasta.backends.image_encoder import (  # noqa: E402
    DEFAULT_IMAGE_ENCODER_DIR,
    ImageEncoder,
    ImageEncoderConfig,
)
from pasta.console import progress_bar  # noqa: E402
from pasta.paths import EMBEDDED_DIR  # noqa: E402
from pasta.worlds import fashion  # noqa: E402
from pasta.worlds.fashion_zero_shot import zero_shot_text  # noqa: E402

ATTRS = tuple(fashion.ATTRIBUTE_VALUES)  # column order of the attribute index arrays
ZERO_SHOT_ATTRS = ("garment", "colour", "pattern", "background", "style", "size", "position")


@dataclass
class TrainImageEncoderConfig:
    out: Path = DEFAULT_IMAGE_ENCODER_DIR
    """Where the trained encoder (safetensors + config.json) and metrics.json are exported."""
    checkpoint: Path = EMBEDDED_DIR / "checkpoints_aux" / "image_encoder_last.pt"
    """Full training state for resuming (not committed); the caption bank is cached beside it."""
    steps: int = 1400
    """Total optimizer steps (a resumed run counts from where it stopped); the LR schedule spans them."""
    minutes: float = 1e9
    """Stop cleanly after this many minutes of training in this run (evaluation and export still run)."""
    batch_size: int = 256
    """Images (and their paired captions) per step."""
    bank_size: int = 24_000
    """Captions embedded once with MiniLM; each is paired with freshly composed images many times."""
    extra_negatives: int = 4096
    """Bank captions added to each step's image->text softmax (0 = plain in-batch CLIP)."""
    multi_positive: bool = True
    """Count every caption whose named attributes match an image as a positive (else only its own caption)."""
    modifier_prob: float = 0.05
    """Probability of appending an unrelated prompt modifier (clip-interrogator flavour) to a bank caption, so that
    LMM-style expansions of a prompt stay near its images."""
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 60
    embed_chunk: int = 256
    """Captions per MiniLM call when building the bank."""
    eval_images: int = 2000
    """Composed test-split images for zero-shot accuracy."""
    retrieval_pairs: int = 1000
    """Test (image, caption) pairs for retrieval recall."""
    save_every: int = 100
    seed: int = 0
    threads: int = 1
    """torch threads (the machine's other core is usually busy training the diffusion model)."""


# ------------------------------------------------------------------------------------------------ data


_PLAIN_WORDS = re.compile(r"\b(plain|solid)\b|no pattern")


def attribute_index(attrs: fashion.Attributes) -> np.ndarray:
    """Indices in ATTRS order; the pattern column holds the *visible* pattern (sketch and neon draw none)."""
    idx = attrs.index()
    idx["pattern"] = fashion.PATTERNS.index(attrs.visible_pattern)
    return np.array([idx[a] for a in ATTRS], np.int64)


def make_caption(rng: np.random.Generator, attrs: fashion.Attributes) -> tuple[str, np.ndarray]:
    """A caption and the boolean mask (ATTRS order) of the attributes it actually names."""
    mention = fashion.sample_mention(rng, attrs)
    text = fashion.caption(attrs, rng, mention=mention)
    named = dict(mention)
    if attrs.visible_pattern == "plain":  # the caption says "plain" only sometimes: look
        named["pattern"] = mention["pattern"] and bool(_PLAIN_WORDS.search(text.replace("plain white backdrop", "")))
    return text, np.array([named[a] for a in ATTRS], bool)


def compatible(image_idx: torch.Tensor, caption_idx: torch.Tensor, caption_named: torch.Tensor) -> torch.Tensor:
    """[B, K] bool: caption k names nothing that image b lacks."""
    same = image_idx[:, None, :] == caption_idx[None, :, :]
    return (same | ~caption_named[None, :, :]).all(-1)


def embed_in_chunks(embed, texts: list[str], chunk: int, desc: str) -> np.ndarray:
    """MiniLM over many texts, sorted by length so each chunk pads little; rows come back in input order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), 384), np.float32)
    for start in progress_bar(range(0, len(texts), chunk), desc=desc, leave=False):
        rows = order[start : start + chunk]
        out[rows] = embed([texts[i] for i in rows])
    return out


def build_bank(cfg: TrainImageEncoderConfig, embed) -> dict:
    """Caption bank: text, MiniLM vector, attribute indices of the image it describes, mask of named attributes."""
    cache = cfg.checkpoint.parent / f"image_encoder_bank_{cfg.bank_size}_{cfg.seed}_{cfg.modifier_prob:g}.pt"
    if cache.exists():
        print(f"caption bank from {cache}")
        return torch.load(cache, weights_only=False)
    rng = np.random.default_rng([cfg.seed, 1])
    modifiers = ()
    if cfg.modifier_prob > 0:
        from pasta.candidates.phrase_bank import clip_interrogator_phrases

        modifiers = clip_interrogator_phrases().get("flavors", ())
    texts, attrs_list, idx, named = [], [], [], []
    for _ in range(cfg.bank_size):
        attrs = fashion.sample_attributes(rng, fashion.CLASSES[int(rng.integers(len(fashion.CLASSES)))])
        text, mask = make_caption(rng, attrs)
        if modifiers and rng.random() < cfg.modifier_prob:
            text += ", " + modifiers[int(rng.integers(len(modifiers)))]
        texts.append(text)
        attrs_list.append(attrs)
        idx.append(attribute_index(attrs))
        named.append(mask)
    t0 = time.time()
    emb = embed_in_chunks(embed, texts, cfg.embed_chunk, "embed caption bank")
    print(f"embedded {len(texts)} bank captions in {time.time() - t0:.0f} s")
    bank = {
        "texts": texts,
        "attrs": attrs_list,
        "emb": torch.from_numpy(emb),
        "idx": torch.from_numpy(np.stack(idx)),
        "named": torch.from_numpy(np.stack(named)),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bank, cache)
    return bank


def class_index(labels: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(labels == c) for c in range(len(fashion.CLASSES))]


def compose_batch(
    rng: np.random.Generator, images: np.ndarray, by_class: list[np.ndarray], attrs_list: list[fashion.Attributes]
) -> torch.Tensor:
    """Compose one image per attribute set from a random garment of its class; [-1, 1] tensor [N,3,32,32]."""
    out = np.empty((len(attrs_list), 32, 32, 3), np.uint8)
    for k, attrs in enumerate(attrs_list):
        pool = by_class[fashion.CLASSES.index(attrs.garment)]
        out[k] = fashion.compose(images[pool[int(rng.integers(len(pool)))]], attrs, rng)
    return to_tensor(out)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def compose_test_set(images: np.ndarray, labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, list]:
    """n images from held-out garments (the test split); one in four shows a held-out (garment, colour, pattern)."""
    rng = np.random.default_rng([seed, 2])
    pick = rng.choice(len(images), size=n, replace=len(images) < n)
    out, attrs_list = np.empty((n, 32, 32, 3), np.uint8), []
    for k, i in enumerate(pick):
        attrs = fashion.sample_attributes(rng, fashion.CLASSES[labels[i]], held_out=k % 4 == 0)
        out[k] = fashion.compose(images[i], attrs, rng)
        attrs_list.append(attrs)
    return out, attrs_list


# ------------------------------------------------------------------------------------------ evaluation


@torch.inference_mode()
def encode_images(model: ImageEncoder, images: np.ndarray, batch: int = 500) -> np.ndarray:
    return torch.cat([model(to_tensor(images[i : i + batch])) for i in range(0, len(images), batch)]).numpy()


def evaluate(model: ImageEncoder, embed, images: np.ndarray, labels: np.ndarray, cfg: TrainImageEncoderConfig) -> dict:
    """Zero-shot accuracy per attribute and retrieval recall, on test-split garments."""
    model.eval()
    test_images, test_attrs = compose_test_set(images, labels, max(cfg.eval_images, cfg.retrieval_pairs), cfg.seed)
    z = encode_images(model, test_images)
    idx = np.stack([attribute_index(a) for a in test_attrs])
    filled = np.array([a.style in ("photo", "flat") for a in test_attrs])
    held = np.array([k % 4 == 0 for k in range(len(test_attrs))])
    n = cfg.eval_images
    zero_shot: dict[str, dict] = {}
    for mode in ("canonical", "ensemble"):
        acc = {}
        for attribute in ZERO_SHOT_ATTRS:
            col = ATTRS.index(attribute)
            pred = (z[:n] @ zero_shot_text(embed, attribute, ensemble=mode == "ensemble").T).argmax(1)
            keep = filled[:n] if attribute == "pattern" else np.ones(n, bool)  # sketch/neon show no pattern
            acc[attribute] = float((pred[keep] == idx[:n, col][keep]).mean())
            if attribute in ("garment", "colour", "pattern"):
                sub = keep & held[:n]
                acc[f"{attribute}_held_out_triples"] = float((pred[sub] == idx[:n, col][sub]).mean())
        zero_shot[mode] = acc

    m = cfg.retrieval_pairs
    rng = np.random.default_rng([cfg.seed, 3])
    captions, named = zip(*(make_caption(rng, a) for a in test_attrs[:m]))
    t = embed_in_chunks(embed, list(captions), cfg.embed_chunk, "embed test captions")
    sim = z[:m] @ t.T
    diag = sim[np.arange(m), np.arange(m)][:, None]
    rank_i2t = (sim > diag).sum(1)  # captions scoring above the image's own caption
    rank_t2i = (sim.T > diag).sum(1)
    compat = compatible(torch.from_numpy(idx[:m]), torch.from_numpy(idx[:m]), torch.from_numpy(np.stack(named)))
    top = sim.argmax(1)
    retrieval = {
        "pairs": m,
        "image_to_caption_recall@1": float((rank_i2t < 1).mean()),
        "image_to_caption_recall@5": float((rank_i2t < 5).mean()),
        "caption_to_image_recall@1": float((rank_t2i < 1).mean()),
        "caption_to_image_recall@5": float((rank_t2i < 5).mean()),
        "image_to_caption_top1_compatible": float(compat[np.arange(m), top].float().mean()),
        "note": "recall counts only each image's own caption; most captions name a subset of attributes, so other "
        "captions often fit an image equally well (top1_compatible: the best caption names nothing the image lacks)",
    }
    return {
        "zero_shot": zero_shot,
        "retrieval": retrieval,
        "eval_images": n,
        "eval_set": "Fashion-MNIST test-split garments composed with random attributes; 1 in 4 with a held-out "
        "(garment, colour, pattern) triple; pattern scored on photo/flat images only",
    }


def print_metrics(metrics: dict) -> None:
    zs = metrics["zero_shot"]
    print(f"\nzero-shot accuracy on {metrics['eval_images']} composed test-split images")
    print(f"{'attribute':<12} {'canonical':>10} {'ensemble':>10}")
    for attribute in ZERO_SHOT_ATTRS:
        print(f"{attribute:<12} {zs['canonical'][attribute]:>10.3f} {zs['ensemble'][attribute]:>10.3f}")
    r = metrics["retrieval"]
    print(
        f"retrieval among {r['pairs']} test pairs: image->caption R@1 {r['image_to_caption_recall@1']:.3f} "
        f"R@5 {r['image_to_caption_recall@5']:.3f}; caption->image R@1 {r['caption_to_image_recall@1']:.3f} "
        f"R@5 {r['caption_to_image_recall@5']:.3f}; top caption compatible {r['image_to_caption_top1_compatible']:.3f}"
    )


# --------------------------------------------------------------------------------------------- training


def lr_at(cfg: TrainImageEncoderConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def contrastive_loss(
    model: ImageEncoder, z: torch.Tensor, batch: torch.Tensor, extra: torch.Tensor, bank: dict, multi_positive: bool
) -> torch.Tensor:
    """Symmetric soft-target InfoNCE: image->text over the batch's captions plus `extra` bank captions,
    text->image over the batch's images."""
    cols = torch.cat([batch, extra])
    text = bank["emb"][cols]
    scale = model.scale()
    if multi_positive:
        pos = compatible(bank["idx"][batch], bank["idx"][cols], bank["named"][cols]).float()
    else:
        pos = torch.zeros(len(batch), len(cols))
    pos[torch.arange(len(batch)), torch.arange(len(batch))] = 1.0  # each image's own caption
    logits = scale * z @ text.T
    loss_i2t = -(pos / pos.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    pos_t2i = pos[:, : len(batch)].T
    loss_t2i = -(pos_t2i / pos_t2i.sum(1, keepdim=True) * F.log_softmax(logits[:, : len(batch)].T, 1)).sum(1).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def export(model: ImageEncoder, out: Path, extra: dict) -> None:
    """Write weights atomically (a half-written folder never replaces a good one), then the metrics."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    (tmp / "metrics.json").write_text(json.dumps(extra, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(
    cfg: TrainImageEncoderConfig,
    train_data: tuple[np.ndarray, np.ndarray] | None = None,
    test_data: tuple[np.ndarray, np.ndarray] | None = None,
    text_model=None,
) -> dict:
    """Train, evaluate, export; returns the metrics. `train_data`/`test_data`/`text_model` let tests inject small
    stand-ins (defaults: Fashion-MNIST train/test splits, the shared MiniLM)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    started = time.time()
    images, labels = train_data if train_data is not None else fashion.load_fashion_mnist("train")
    test_images, test_labels = test_data if test_data is not None else fashion.load_fashion_mnist("test")
    if text_model is None:
        from pasta.backends.minilm import shared_minilm

        text_model = shared_minilm()
    embed = text_model.embed
    by_class = class_index(labels)
    if any(len(p) == 0 for p in by_class):
        raise ValueError("training data need at least one image of every class")
    bank = build_bank(cfg, embed)

    model = ImageEncoder(ImageEncoderConfig()).to(memory_format=torch.channels_last)
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    step, rng, train_seconds = 0, np.random.default_rng([cfg.seed, 4]), 0.0
    if cfg.checkpoint.exists():
        state = torch.load(cfg.checkpoint, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, rng, train_seconds = state["step"], state["rng"], state.get("train_seconds", 0.0)
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed from {cfg.checkpoint} at step {step}")
    print(f"image encoder parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")

    def save() -> None:
        cfg.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "rng": rng,
            "torch_rng": torch.get_rng_state(),
            "train_seconds": train_seconds,
        }
        torch.save(state, cfg.checkpoint.with_suffix(".tmp"))
        cfg.checkpoint.with_suffix(".tmp").replace(cfg.checkpoint)

    n_bank = len(bank["texts"])
    start, losses = time.time(), []
    bar = progress_bar(total=cfg.steps, initial=step, desc="train image encoder")
    model.train()
    while step < cfg.steps and time.time() - start < cfg.minutes * 60:
        t_step = time.time()
        batch = torch.from_numpy(rng.choice(n_bank, size=min(cfg.batch_size, n_bank), replace=False))
        extra = torch.from_numpy(rng.integers(0, n_bank, cfg.extra_negatives))
        x = compose_batch(rng, images, by_class, [bank["attrs"][i] for i in batch.tolist()])
        z = model(x.contiguous(memory_format=torch.channels_last))
        loss = contrastive_loss(model, z, batch, extra, bank, cfg.multi_positive)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, math.log(100.0))
        step += 1
        train_seconds += time.time() - t_step
        losses.append(loss.item())
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", scale=f"{model.scale().item():.1f}")
        if step % cfg.save_every == 0:
            save()
    bar.close()
    save()

    t0 = time.time()
    metrics = evaluate(model, embed, test_images, test_labels, cfg)
    metrics["train"] = {
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "threads": cfg.threads,
        "wall_seconds_this_run": round(time.time() - started, 1),
        "eval_seconds": round(time.time() - t0, 1),
        "final_loss": float(np.mean(losses[-50:])) if losses else None,
        "logit_scale": model.scale().item(),
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
    main(tyro.cli(TrainImageEncoderConfig))
