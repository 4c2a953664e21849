"""The independent judge of the emoji world: a supervised CNN trained only on real composed scenes (never on
generated images; models/train_emoji_judge.py) that names the subject(s), the scene, the style, how many subjects
there are, where a single one stands and which one of a pair is on the left. `pasta eval t2i --world emoji` reads
generated images with it.

Subjects are one softmax over every concept with a soft target (1 for one subject; 1/2 each for a pair), so its
top-2 names both of a pair; `left` is a second softmax over concepts, trained on pairs only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pasta.paths import EMBEDDED_DIR
from pasta.weights import load_model, save_model
from pasta.worlds.emoji_scenes import POSITIONS, SCENES, SIZES, STYLES, SceneSpec
from pasta.worlds.judge_net import judge_body

DEFAULT_JUDGE_DIR = EMBEDDED_DIR / "emoji_judge"
TRAIN_SCRIPT = "python models/train_emoji_judge.py"


@dataclass
class EmojiJudgeConfig:
    subjects: list[str] = field(default_factory=list)
    """Concept names in output order (`EmojiWorld.concepts`)."""
    channels: tuple[int, ...] = (24, 48, 96, 192)
    """Width per stage; each stage halves the side (64 -> 4 px)."""
    hidden: int = 512
    dropout: float = 0.2
    image_size: int = 64

    def heads(self) -> dict[str, int]:
        return {
            "subject": len(self.subjects),
            "left": len(self.subjects),
            "scene": len(SCENES),
            "style": len(STYLES),
            "count": 2,
            "position": len(POSITIONS),
            "size": len(SIZES),
        }


class EmojiJudge(nn.Module):
    """uint8 [N,H,W,3] or float [N,3,64,64] in [-1, 1] -> {head: logits}."""

    def __init__(self, config: EmojiJudgeConfig) -> None:
        super().__init__()
        self.config = config
        self.features, self.trunk = judge_body(config.channels, config.image_size, config.hidden, config.dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(config.hidden, n) for name, n in config.heads().items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(self.features(x))
        return {name: head(h) for name, head in self.heads.items()}

    @staticmethod
    def as_tensor(images: np.ndarray) -> torch.Tensor:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 [N,H,W,3], got {images.dtype} {images.shape}")
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

    @torch.inference_mode()
    def predict_proba(self, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Softmax per head, float32 [N, n]."""
        was_training = self.training
        self.eval()
        x = self.as_tensor(images)
        chunks = [self(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        self.train(was_training)
        return {
            name: torch.cat([c[name] for c in chunks]).softmax(-1).numpy().astype(np.float32)
            if chunks
            else np.zeros((0, n), np.float32)
            for name, n in self.config.heads().items()
        }

    def save(self, folder) -> None:
        save_model(self, self.config, folder, dtype=torch.float16)

    @classmethod
    def load(cls, folder=None, device: str = "cpu") -> EmojiJudge:
        return load_model(
            cls,
            EmojiJudgeConfig,
            folder or DEFAULT_JUDGE_DIR,
            how_to_train=TRAIN_SCRIPT,
            what="emoji judge",
            device=device,
        )


def targets(specs: list[SceneSpec], subjects: list[str]) -> dict[str, torch.Tensor]:
    """Training targets of composed scenes: soft subject distributions, class indices elsewhere (-100 where a head
    does not apply: `left` for single subjects, `position` and `size` for pairs)."""
    index = {name: i for i, name in enumerate(subjects)}
    subject = torch.zeros(len(specs), len(subjects))
    left, position, size = [], [], []
    for row, spec in enumerate(specs):
        for name in spec.subjects:
            subject[row, index[name]] += 1 / len(spec.subjects)
        pair = len(spec.subjects) == 2
        left.append(index[spec.subjects[0]] if pair and spec.subjects[0] != spec.subjects[1] else -100)
        position.append(-100 if pair else POSITIONS.index(spec.position))
        size.append(-100 if pair else SIZES.index(spec.size))
    return {
        "subject": subject,
        "left": torch.tensor(left),
        "position": torch.tensor(position),
        "size": torch.tensor(size),
        "scene": torch.tensor([SCENES.index(s.scene) for s in specs]),
        "style": torch.tensor([STYLES.index(s.style) for s in specs]),
        "count": torch.tensor([len(s.subjects) - 1 for s in specs]),
    }


def loss(
    logits: dict[str, torch.Tensor], target: dict[str, torch.Tensor], label_smoothing: float = 0.05
) -> torch.Tensor:
    """Cross-entropy summed over heads (a soft target for subjects; heads that do not apply are ignored)."""
    total = torch.nn.functional.cross_entropy(logits["subject"], target["subject"])
    for name in ("left", "scene", "style", "count", "position", "size"):
        if (target[name] != -100).any():
            total = total + torch.nn.functional.cross_entropy(
                logits[name], target[name], ignore_index=-100, label_smoothing=label_smoothing
            )
    return total


def read_scenes(judge: EmojiJudge, images: np.ndarray, specs: list[SceneSpec], k: int = 5) -> dict[str, np.ndarray]:
    """Per image, booleans of what the judge reads as the spec says: subject top-1 and top-k (single subjects),
    both subjects in the top-k and the left one on the left (pairs of two different subjects), scene, style; and
    what it read (`*_read`: indices into the subjects, SCENES, STYLES)."""
    proba = judge.predict_proba(images)
    index = {name: i for i, name in enumerate(judge.config.subjects)}
    order = np.argsort(-proba["subject"], axis=1)[:, :k]
    single = np.array([len(s.subjects) == 1 for s in specs])
    first = np.array([index[s.subjects[0]] for s in specs])
    second = np.array([index[s.subjects[-1]] for s in specs])
    return {
        "subject_read": order[:, 0],
        "scene_read": proba["scene"].argmax(1),
        "style_read": proba["style"].argmax(1),
        "single": single,
        "pair": np.array([len(s.subjects) == 2 and s.subjects[0] != s.subjects[1] for s in specs]),
        "subject_top1": order[:, 0] == first,
        "subject_topk": (order == first[:, None]).any(1),
        "both_present": (order == first[:, None]).any(1) & (order == second[:, None]).any(1),
        "left_right": proba["left"].argmax(1) == first,
        "scene": proba["scene"].argmax(1) == np.array([SCENES.index(s.scene) for s in specs]),
        "style": proba["style"].argmax(1) == np.array([STYLES.index(s.style) for s in specs]),
    }


def summarize_reading(read: dict[str, np.ndarray]) -> dict[str, float | None]:
    """The shares `read_scenes` found right: subjects over single-subject scenes, pairs over pairs of two different
    subjects (None where there are none), scene and style over all."""
    single, pair = read["single"], read["pair"]
    return {
        "subject_top1": float(read["subject_top1"][single].mean()) if single.any() else None,
        "subject_top5": float(read["subject_topk"][single].mean()) if single.any() else None,
        "scene": float(read["scene"].mean()),
        "style": float(read["style"].mean()),
        "pairs_both_present": float(read["both_present"][pair].mean()) if pair.any() else None,
        "pairs_left_right": float(read["left_right"][pair].mean()) if pair.any() else None,
    }
