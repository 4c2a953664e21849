"""The independent judge of the embedded tier: a supervised CNN with one head per attribute of the Fashion-MNIST
attribute world (models/train_attribute_classifier.py), used by `pasta eval t2i` to measure how often a generated
image shows what its prompt asked for.

Why separate from the image encoder: a model scored by its own embedder can learn to please that embedder. This
network shares no weights, no architecture (BatchNorm, ReLU, max pooling, a flattened spatial map) and no
objective (plain supervised cross-entropy) with the contrastive encoder, and never sees text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pasta.paths import EMBEDDED_DIR
from pasta.weights import load_model, save_model
from pasta.worlds import fashion
from pasta.worlds.judge_net import judge_body

DEFAULT_CLASSIFIER_DIR = EMBEDDED_DIR / "attribute_classifier"
TRAIN_SCRIPT = "python models/train_attribute_classifier.py"


@dataclass
class AttributeClassifierConfig:
    """Architecture and label names, saved beside the weights as config.json."""

    channels: tuple[int, ...] = (32, 64, 128)
    """Width of each stage (two 3x3 convs, then 2x2 max pooling: 32 -> 16 -> 8 -> 4 pixels)."""
    hidden: int = 256
    """Shared fully connected layer on the flattened 4x4 map (keeps where things are: size, position)."""
    dropout: float = 0.2
    image_size: int = 32
    heads: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in fashion.ATTRIBUTE_VALUES.items()}
    )
    """Attribute -> value names, in output order (pattern is the *visible* pattern)."""


class AttributeClassifier(nn.Module):
    """[N,3,32,32] in [-1, 1] -> {attribute: logits [N, n_values]}."""

    def __init__(self, config: AttributeClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AttributeClassifierConfig()
        self.features, self.trunk = judge_body(config.channels, config.image_size, config.hidden, config.dropout)
        self.heads = nn.ModuleDict(
            {name: nn.Linear(config.hidden, len(values)) for name, values in config.heads.items()}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(self.features(x))
        return {name: head(h) for name, head in self.heads.items()}

    # ------------------------------------------------------------------------------------------ inference

    def _as_tensor(self, images) -> torch.Tensor:
        size = self.config.image_size
        if isinstance(images, list):
            from pasta.backends.image_encoder import pil_to_tensor

            if images and not isinstance(images[0], Image.Image):
                images = np.stack(images)
            else:
                return pil_to_tensor(images, size)
        if isinstance(images, np.ndarray):
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
                raise ValueError(f"numpy images must be uint8 [N,H,W,3], got {images.dtype} {images.shape}")
            images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        elif isinstance(images, torch.Tensor):
            if images.dtype == torch.uint8:  # [N,H,W,3] like the numpy form
                images = images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            if images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(f"tensor images must be [N,3,H,W] in [-1, 1], got {tuple(images.shape)}")
        else:
            raise TypeError(f"unsupported images type {type(images).__name__}")
        images = images.float()
        if images.shape[-2:] != (size, size):
            images = F.adaptive_avg_pool2d(images, size)
        return images

    @torch.inference_mode()
    def predict_proba(self, images, batch_size: int = 512) -> dict[str, np.ndarray]:
        """Softmax per attribute: {attribute: float32 [N, n_values]}. Accepts uint8 [N,H,W,3] (numpy or tensor),
        float tensors [N,3,H,W] in [-1, 1], or a list of PIL images."""
        was_training = self.training
        self.eval()
        x = self._as_tensor(images)
        device = next(self.parameters()).device
        chunks = [self(x[i : i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
        self.train(was_training)
        out = {}
        for name, values in self.config.heads.items():
            logits = torch.cat([c[name] for c in chunks]) if chunks else torch.zeros((0, len(values)))
            out[name] = logits.softmax(-1).cpu().numpy().astype(np.float32)
        return out

    def predict(self, images, batch_size: int = 512) -> dict[str, np.ndarray]:
        """{attribute: int64 [N] value indices} (into fashion.ATTRIBUTE_VALUES[attribute])."""
        return {name: p.argmax(-1).astype(np.int64) for name, p in self.predict_proba(images, batch_size).items()}

    # ----------------------------------------------------------------------------------------- save / load

    def save(self, folder: str | Path) -> None:
        save_model(self, self.config, folder)

    @classmethod
    def load(cls, folder: str | Path | None = None, device: str = "cpu") -> AttributeClassifier:
        return load_model(
            cls,
            AttributeClassifierConfig,
            folder or DEFAULT_CLASSIFIER_DIR,
            how_to_train=TRAIN_SCRIPT,
            what="attribute classifier",
            device=device,
        )


def label_indices(attrs: fashion.Attributes) -> dict[str, int]:
    """Training/evaluation labels of one composed image: the pattern head predicts the *visible* pattern."""
    idx = attrs.index()
    idx["pattern"] = fashion.PATTERNS.index(attrs.visible_pattern)
    return idx
