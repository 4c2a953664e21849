"""A preview of a data set: its first images (PNG bytes) in a grid of 8 per row, enlarged so that pixels show."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def save_preview_grid(pngs: list[bytes], path: Path, scale: int) -> Path:
    """Write the images as a grid, 8 per row (the last row padded with black), each pixel `scale` x `scale`."""
    tiles = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in pngs]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 8)
    grid = np.concatenate([np.concatenate(tiles[r : r + 8], 1) for r in range(0, len(tiles), 8)], 0)
    Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST).save(path)
    return path
