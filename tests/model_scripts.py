"""Helpers shared by the tests of the models/ training scripts: import a script, and a few real garments."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from pasta.worlds import fashion

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """Import a training script from models/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "models" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def have_fashion_mnist() -> bool:
    return (fashion.fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz").exists()


def small_data(split: str, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A few real garments of every class, or garment-like blobs when Fashion-MNIST is not installed."""
    if have_fashion_mnist():
        images, labels = fashion.load_fashion_mnist(split)
        keep = np.concatenate([np.flatnonzero(labels == c)[: n // 10] for c in range(10)])
        return images[keep], labels[keep]
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:28, 0:28]
    images = np.stack(
        [
            (((y - 14) / rng.uniform(5, 13)) ** 2 + ((x - 14) / rng.uniform(5, 13)) ** 2 < 1) * rng.integers(120, 255)
            for _ in range(n)
        ]
    ).astype(np.uint8)
    return images, np.arange(n) % 10


def tiny_unet():
    """A randomly initialised UNet built like `embedded_t2i.build_unet` with small channels (12 in and out: a 2x2
    space-to-depth view of an RGB image)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=12,
        out_channels=12,
        block_out_channels=(32, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        cross_attention_dim=384,
        attention_head_dim=8,
        class_embed_type="projection",
        projection_class_embeddings_input_dim=384,
        norm_num_groups=8,
    )
