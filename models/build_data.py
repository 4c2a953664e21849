"""Build the embedded model's training data as files: composed images, captions and attributes in Parquet.

    python models/build_data.py --n 20000 --out data/fashion_world/train.parquet     # + a preview grid PNG

The trainers compose the same data on the fly (`pasta.worlds.fashion`: a real Fashion-MNIST garment, random attributes,
a caption naming a random subset of them), so nothing here is needed to train. This writes that stream down, for
looking at, for training elsewhere (a GPU machine), or for another model: one row per image with the PNG bytes,
the caption, every attribute and the source garment's index. The same --seed gives the same bytes; the training
split never holds a held-out (garment, colour, pattern) triple, the `eval` split holds only those (the prompts of
`pasta eval t2i`), drawn on Fashion-MNIST's test garments.
"""

from __future__ import annotations

import io
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tyro
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pasta.console import progress_bar  # noqa: E402
from pasta.tools.preview_grid import save_preview_grid  # noqa: E402
from pasta.worlds import fashion  # noqa: E402


@dataclass
class BuildDataConfig:
    out: Path = Path("data/fashion_world/train.parquet")
    """Parquet file to write (a preview PNG of the first 64 rows goes beside it)."""
    n: int = 20_000
    """Rows (composed images) to write."""
    split: str = "train"
    """"train": training garments, never a held-out triple; "eval": test garments, only held-out triples."""
    seed: int = 0
    rows_per_group: int = 2048
    """Parquet row-group size (rows composed and written at a time)."""


def compose_rows(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator, n: int, held_out: bool):
    """n (png bytes, caption, attributes, source index) rows, in the order the rng draws them."""
    for _ in range(n):
        i = int(rng.integers(len(images)))
        attrs = fashion.sample_attributes(rng, fashion.CLASSES[labels[i]], held_out=held_out)
        pixels = fashion.compose(images[i], attrs, rng)
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG", optimize=False)
        yield png.getvalue(), fashion.caption(attrs, rng), attrs, i


def build(cfg: BuildDataConfig, progress: bool = True) -> dict:
    if cfg.split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {cfg.split!r}")
    if cfg.n <= 0:
        raise ValueError(f"n must be positive, got {cfg.n}")
    images, labels = fashion.load_fashion_mnist("train" if cfg.split == "train" else "test")
    rng = np.random.default_rng(cfg.seed)
    names = [f.name for f in fields(fashion.Attributes)]
    schema = pa.schema(
        [
            ("image_png", pa.binary()),
            ("caption", pa.string()),
            *((name, pa.string()) for name in names),
            ("source_index", pa.int32()),
        ]
    )
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out.with_name(cfg.out.name + ".tmp")
    preview = []
    rows = compose_rows(images, labels, rng, cfg.n, held_out=cfg.split == "eval")
    with (
        pq.ParquetWriter(tmp, schema) as writer,
        progress_bar(total=cfg.n, disable=not progress, desc="build data") as bar,
    ):
        written = 0
        while written < cfg.n:
            group = [next(rows) for _ in range(min(cfg.rows_per_group, cfg.n - written))]
            columns = {
                "image_png": [g[0] for g in group],
                "caption": [g[1] for g in group],
                **{name: [getattr(g[2], name) for g in group] for name in names},
                "source_index": [g[3] for g in group],
            }
            writer.write_table(pa.table(columns, schema=schema))
            preview += [g[0] for g in group[: 64 - len(preview)]]
            written += len(group)
            bar.update(len(group))
    tmp.replace(cfg.out)
    preview_path = save_preview_grid(preview, cfg.out.with_suffix(".preview.png"), scale=3)
    return {**asdict(cfg), "out": str(cfg.out), "preview": str(preview_path), "rows": cfg.n}


def main(cfg: BuildDataConfig) -> None:
    info = build(cfg)
    print(f"wrote {info['rows']} rows to {info['out']} and a preview to {info['preview']}")


if __name__ == "__main__":
    main(tyro.cli(BuildDataConfig))
