"""Build the emoji world's training data: scenes composed from real Noto Color Emoji artwork, with captions.

    python models/build_emoji_data.py --n 50000 --out data/emoji_world/train.parquet    # + a preview grid PNG
    python models/build_emoji_data.py --n 2000 --split eval --out data/emoji_world/eval.parquet

One row per image: the PNG bytes (RGB, --size px), the caption, the scene's spec (subjects, scene, style, size,
position, colour) and the subjects' Unicode groups. The same --seed gives the same bytes. The train split never
holds a held-out (subject, scene, style) combination and never uses an evaluation phrasing; the eval split holds
only held-out combinations and may use them (`pasta.worlds.emoji_scenes`). Needs Debian's fonts-noto-color-emoji and
unicode-data (unicode-cldr-core adds keywords).
"""

from __future__ import annotations

import io
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tyro
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pasta.console import progress_bar  # noqa: E402
from pasta.tools.preview_grid import save_preview_grid  # noqa: E402
from pasta.worlds.emoji_art import EmojiFont, subjects  # noqa: E402
from pasta.worlds.emoji_scenes import caption, compose, sample_spec  # noqa: E402


@dataclass
class BuildEmojiDataConfig:
    out: Path = Path("data/emoji_world/train.parquet")
    """Parquet file to write (a preview PNG of the first 64 rows goes beside it)."""
    n: int = 50_000
    """Rows (composed scenes) to write."""
    split: str = "train"
    """"train": never a held-out combination or phrasing; "eval": only held-out combinations."""
    size: int = 64
    """Side of the images in pixels (issue 18: at least 48, preferably 64)."""
    seed: int = 0
    rows_per_group: int = 2048
    """Parquet row-group size (rows composed and written at a time)."""


SCHEMA = pa.schema(
    [
        ("image_png", pa.binary()),
        ("caption", pa.string()),
        ("subjects", pa.list_(pa.string())),
        ("groups", pa.list_(pa.string())),
        ("scene", pa.string()),
        ("style", pa.string()),
        ("size", pa.string()),
        ("position", pa.string()),
        ("colour", pa.string()),
    ]
)


def build(cfg: BuildEmojiDataConfig, progress: bool = True) -> dict:
    if cfg.split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {cfg.split!r}")
    if cfg.n <= 0 or cfg.size < 16:
        raise ValueError(f"n must be positive and size at least 16, got n={cfg.n}, size={cfg.size}")
    font = EmojiFont()
    concepts = {e.name: e for e in subjects(font)}
    names = list(concepts)
    artwork: dict[str, Image.Image] = {}
    rng = np.random.default_rng(cfg.seed)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out.with_name(cfg.out.name + ".tmp")
    preview, written = [], 0
    with (
        pq.ParquetWriter(tmp, SCHEMA) as writer,
        progress_bar(total=cfg.n, disable=not progress, desc="build emoji data") as bar,
    ):
        while written < cfg.n:
            rows = []
            for _ in range(min(cfg.rows_per_group, cfg.n - written)):
                spec = sample_spec(rng, names, cfg.split)
                for name in spec.subjects:
                    if name not in artwork:
                        artwork[name] = font.image(concepts[name].sequence)
                pixels = compose(spec, artwork, cfg.size, int(rng.integers(2**31)))
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, format="PNG")
                rows.append(
                    {
                        "image_png": png.getvalue(),
                        "caption": caption(spec, rng, cfg.split),
                        "subjects": list(spec.subjects),
                        "groups": [concepts[s].group for s in spec.subjects],
                        "scene": spec.scene,
                        "style": spec.style,
                        "size": spec.size,
                        "position": spec.position,
                        "colour": spec.colour,
                    }
                )
            writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
            preview += [r["image_png"] for r in rows[: 64 - len(preview)]]
            written += len(rows)
            bar.update(len(rows))
    tmp.replace(cfg.out)
    preview_path = save_preview_grid(preview, cfg.out.with_suffix(".preview.png"), scale=2)
    return {**asdict(cfg), "out": str(cfg.out), "preview": str(preview_path), "rows": cfg.n, "concepts": len(names)}


def main(cfg: BuildEmojiDataConfig) -> None:
    info = build(cfg)
    print(
        f"wrote {info['rows']} rows ({info['concepts']} subject concepts) to {info['out']} and a preview to "
        f"{info['preview']}"
    )


if __name__ == "__main__":
    main(tyro.cli(BuildEmojiDataConfig))
