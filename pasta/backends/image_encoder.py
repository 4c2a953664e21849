"""The embedded tier's image tower: a small CNN trained contrastively into the frozen MiniLM text space
(models/train_image_encoder.py), so that `Embedder.image` and `Embedder.text` share one 384-d space.

Why a project-trained CNN: no CLIP weights can be installed offline, and the embedded images live in a small
attribute world (Fashion-MNIST garments with colour, pattern, background and style) that a ~1M-parameter network
learns in minutes on a CPU. The text side stays all-MiniLM-L6-v2, untouched, so candidate prompts, the phrase bank
and user models keep one vector space whichever tower made a vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pasta.backends.minilm import TEXT_DIM, MiniLM, shared_minilm
from pasta.paths import EMBEDDED_DIR
from pasta.weights import load_model, save_model

DEFAULT_IMAGE_ENCODER_DIR = EMBEDDED_DIR / "image_encoder"
TRAIN_SCRIPT = "python models/train_image_encoder.py"


@dataclass
class ImageEncoderConfig:
    """Architecture, saved beside the weights as config.json."""

    channels: tuple[int, ...] = (32, 64, 128, 192)
    """Width of each stage; stages after the first halve the resolution (32, 16, 8, 4 pixels)."""
    blocks: tuple[int, ...] = (1, 2, 2, 2)
    """Conv blocks per stage; blocks after a stage's first are residual."""
    downsample: str = "conv"
    """How stages after the first halve the resolution: "conv" (3x3 stride-2 convolution, which can carry fine
    patterns such as 2-pixel stripes into channels) or "avgpool" (which averages them away)."""
    groups: int = 8
    """GroupNorm groups (batch-independent, so one image embeds the same alone or in a batch)."""
    embed_dim: int = TEXT_DIM
    """Output dimension: MiniLM's 384."""
    image_size: int = 32
    """Input side in pixels; `EmbeddedEmbedder.image` resizes to it."""
    init_logit_scale: float = field(default=math.log(20.0))
    """Initial log of the contrastive temperature's inverse (learned)."""


def _conv_block(c_in: int, c_out: int, groups: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(groups, c_out), nn.SiLU())


class _Residual(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ImageEncoder(nn.Module):
    """[N,3,32,32] images in [-1, 1] -> unit-norm [N,384] vectors in MiniLM space."""

    def __init__(self, config: ImageEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ImageEncoderConfig()
        if len(config.channels) != len(config.blocks):
            raise ValueError("channels and blocks need one entry per stage")
        if config.downsample not in ("conv", "avgpool"):
            raise ValueError(f"downsample must be 'conv' or 'avgpool', got {config.downsample!r}")
        layers: list[nn.Module] = []
        c_in = 3
        for stage, (c_out, n_blocks) in enumerate(zip(config.channels, config.blocks)):
            stride = 1
            if stage > 0 and config.downsample == "avgpool":
                layers.append(nn.AvgPool2d(2))
            elif stage > 0:
                stride = 2
            layers.append(_conv_block(c_in, c_out, config.groups, stride))
            layers.extend(_Residual(_conv_block(c_out, c_out, config.groups)) for _ in range(n_blocks - 1))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, config.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.init_logit_scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).mean(dim=(2, 3))
        return F.normalize(self.proj(h), dim=-1)

    def scale(self) -> torch.Tensor:
        """exp(logit_scale), clamped at 100 as in CLIP so the softmax cannot collapse."""
        return self.logit_scale.exp().clamp(max=100.0)

    def save(self, folder: str | Path) -> None:
        save_model(self, self.config, folder)

    @classmethod
    def load(cls, folder: str | Path | None = None, device: str = "cpu") -> ImageEncoder:
        return load_model(
            cls,
            ImageEncoderConfig,
            folder or DEFAULT_IMAGE_ENCODER_DIR,
            how_to_train=TRAIN_SCRIPT,
            what="image encoder",
            device=device,
        )


def pil_to_tensor(images: list[Image.Image], size: int = 32) -> torch.Tensor:
    """Any PIL images (any size or mode) -> [N,3,size,size] in [-1, 1]. Box filtering averages whole pixels, so an
    image upscaled nearest-neighbour for display (as the app shows them) comes back exactly to its 32x32 pixels."""
    if isinstance(images, Image.Image):
        raise TypeError("images must be a list of PIL images, not a single image")
    arrays = []
    for image in images:
        if not isinstance(image, Image.Image):
            raise TypeError(f"expected PIL images, got {type(image).__name__}")
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BOX)
        arrays.append(np.asarray(rgb, dtype=np.uint8))
    if not arrays:
        return torch.zeros((0, 3, size, size))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class EmbeddedEmbedder:
    """`Embedder` for the embedded tier: MiniLM's pooled sentence embedding for text, the trained CNN for images."""

    name = "embedded"
    dim = TEXT_DIM

    def __init__(
        self,
        encoder_dir: str | Path | None = None,
        *,
        text_model: MiniLM | None = None,
        encoder: ImageEncoder | None = None,
        device: str = "cpu",
        batch_size: int = 256,
    ) -> None:
        self.encoder = encoder.eval() if encoder is not None else ImageEncoder.load(encoder_dir, device)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._minilm = text_model  # loaded on first use: image-only callers never pay for MiniLM

    @property
    def minilm(self) -> MiniLM:
        if self._minilm is None:
            self._minilm = shared_minilm(str(self.device))
        return self._minilm

    def text(self, texts: list[str]) -> np.ndarray:
        """float32 [N,384], unit norm (MiniLM's own normalised pooled embedding)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("texts must be strings")
        return np.ascontiguousarray(self.minilm.embed(list(texts)), dtype=np.float32)

    @torch.inference_mode()
    def image_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N,3,32,32] in [-1, 1] (e.g. `EmbeddedTextToImage.sample_tensor`) -> unit-norm [N,384] tensor."""
        size = self.encoder.config.image_size
        if pixels.shape[-2:] != (size, size):
            pixels = F.adaptive_avg_pool2d(pixels, size)
        step = self.batch_size
        outs = [self.encoder(pixels[i : i + step].to(self.device)) for i in range(0, len(pixels), step)]
        return torch.cat(outs) if outs else torch.zeros((0, self.dim))

    def image(self, images: list[Image.Image]) -> np.ndarray:
        """float32 [N,384], unit norm; images of any size and mode are box-resized to 32x32 RGB first."""
        pixels = pil_to_tensor(images, self.encoder.config.image_size)
        return np.ascontiguousarray(self.image_tensor(pixels).cpu().numpy(), dtype=np.float32)
