"""`pasta render`: render a prompt set (or every tuple of the simulated world) into an image bank: Parquet shards of
PNG images with their text and image embeddings, on this machine or on Ray actors (CPU or GPU workers).

Why a bank: image-level simulation and alignment rollouts read the same images many times; rendering them once,
in bulk and in parallel, costs far less than rendering them where they are read. Each shard is a task: a worker
loads the text-to-image model and the embedder once (through the `TextToImage` and `Embedder` contracts, so either
tier renders) and renders every shard it is sent. A shard is written when it is complete (to a temporary name,
then renamed), so a stopped run resumes where it stopped and never leaves half a shard; `_manifest.json` records
what the bank holds, and a rerun with other prompts or settings into the same folder is refused.

Read it back with `pyarrow.parquet.read_table(folder)` (files starting with "_" are not data): one row per image,
columns prompt_index, prompt, seed, image_index, png, text_embedding, image_embedding.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from pasta.config import Settings
from pasta.executors import ExecutorConfig, Scale, chunked, map_chunks

MANIFEST = "_manifest.json"
"""Leading underscore: pyarrow's dataset reader skips it."""


@dataclass
class RenderBankConfig:
    out: Path
    """Folder of the bank (created; an unfinished bank there is resumed)."""
    prompts: Path | None = None
    """Prompt file: one prompt per line (# starts a comment), or a .parquet file with a `prompt` column."""
    world_tuples: bool = False
    """Render every tuple of the simulated world (its 11,200 canonical garment captions) instead of a file."""
    limit: int | None = None
    """Only the first N prompts."""
    images_per_prompt: int = 4
    shard_size: int = 32
    """Prompts per shard: one file and one task each."""
    batch_size: int = 8
    """Prompts per call to the model inside a shard."""
    seed: int = 0
    """Prompt i is rendered with seed + i: the same bank whatever ran it, and wherever a run resumed."""
    tier: Literal["auto", "embedded", "hub"] = "embedded"
    world: Literal["fashion", "emoji"] = "fashion"
    t2i_model_dir: str = ""
    """Embedded tier: the diffusion weights (default: the world's shipped ones)."""
    t2i_model: str = ""
    """Hub tier: a diffusers pipeline id or folder (default: the app's)."""
    adapter: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus_per_worker: float = 0.0
    """Ray: GPUs each worker reserves (e.g. 1 on GPU nodes; 0.5 puts two workers on one GPU)."""
    scale: Scale = field(default_factory=ExecutorConfig)


def read_prompts(cfg: RenderBankConfig) -> list[str]:
    if cfg.world_tuples == (cfg.prompts is not None):
        raise ValueError("give exactly one of --prompts FILE or --world-tuples")
    if cfg.world_tuples:
        from user_sim.world import EmbeddingWorld

        prompts = EmbeddingWorld().captions
    elif not Path(cfg.prompts).is_file():
        raise FileNotFoundError(f"no prompt file at {cfg.prompts}")
    elif str(cfg.prompts).endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(cfg.prompts)
        if "prompt" not in table.column_names:
            raise ValueError(f"{cfg.prompts} has no `prompt` column (it has {', '.join(table.column_names)})")
        prompts = [str(p) for p in table.column("prompt").to_pylist() if p]
    else:
        lines = (line.strip() for line in Path(cfg.prompts).read_text(encoding="utf-8").splitlines())
        prompts = [line for line in lines if line and not line.startswith("#")]
    prompts = prompts[: cfg.limit] if cfg.limit is not None else prompts
    if not prompts:
        raise ValueError(f"no prompts to render in {cfg.prompts or 'the world'}")
    return prompts


def model_settings(cfg: RenderBankConfig) -> Settings:
    overrides = {"tier": cfg.tier, "world": cfg.world, "device": cfg.device, "adapter": cfg.adapter}
    overrides |= {k: v for k, v in (("t2i_model_dir", cfg.t2i_model_dir), ("t2i_model", cfg.t2i_model)) if v}
    return Settings.from_env(**overrides)


@dataclass
class Renderer:
    """The workload of a bank: (prompt index, prompt, seed) jobs -> one row per image. The models load on a
    worker's first shard and serve all of its later ones."""

    settings: Settings
    images_per_prompt: int
    batch_size: int

    @cached_property
    def models(self):
        from pasta.components import make_embedder, make_text_to_image

        return make_text_to_image(self.settings), make_embedder(self.settings)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "models"}  # workers load their own

    def __call__(self, jobs: list[tuple[int, str, int]]) -> list[dict]:
        t2i, embedder = self.models
        rows = []
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            images = t2i.generate([p for _, p, _ in batch], [s for _, _, s in batch], self.images_per_prompt)
            text = embedder.text([p for _, p, _ in batch])
            flat = [image for per_prompt in images for image in per_prompt]
            seen = embedder.image(flat)
            for j, (index, prompt, seed) in enumerate(batch):
                for k, image in enumerate(images[j]):
                    buffer = io.BytesIO()
                    image.save(buffer, format="PNG")
                    rows.append(
                        {
                            "prompt_index": index,
                            "prompt": prompt,
                            "seed": seed,
                            "image_index": k,
                            "png": buffer.getvalue(),
                            "text_embedding": text[j].tolist(),
                            "image_embedding": seen[j * self.images_per_prompt + k].tolist(),
                        }
                    )
        return rows


def shard_path(out: Path, key: int) -> Path:
    return out / f"part-{key:05d}.parquet"


def write_shard(out: Path, key: int, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = shard_path(out, key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)


def manifest(cfg: RenderBankConfig, prompts: list[str], settings: Settings) -> dict:
    """What makes two runs the same bank: the prompts, their seeds, the shards and the model."""
    model = {k: getattr(settings, k) for k in ("tier", "world", "t2i_model_dir", "t2i_model", "adapter")}
    return {
        "prompts": len(prompts),
        "prompts_sha256": hashlib.sha256("\n".join(prompts).encode()).hexdigest(),
        "images_per_prompt": cfg.images_per_prompt,
        "shard_size": cfg.shard_size,
        "seed": cfg.seed,
        "model": model,
    }


def render_bank(cfg: RenderBankConfig) -> dict:
    if cfg.images_per_prompt < 1 or cfg.shard_size < 1 or cfg.batch_size < 1:
        raise ValueError("images_per_prompt, shard_size and batch_size must be at least 1")
    prompts = read_prompts(cfg)
    settings = model_settings(cfg)
    settings.validate()
    cfg.out.mkdir(parents=True, exist_ok=True)
    expected = manifest(cfg, prompts, settings)
    path = cfg.out / MANIFEST
    if path.exists():
        found = json.loads(path.read_text())
        if found != expected:
            different = sorted(k for k in expected if found.get(k) != expected[k])
            raise ValueError(
                f"{cfg.out} holds another bank (different {', '.join(different)}): resume it with the same "
                "options or render into a new folder"
            )
    else:
        path.write_text(json.dumps(expected, indent=2) + "\n")

    jobs = [(i, prompt, cfg.seed + i) for i, prompt in enumerate(prompts)]
    shards = chunked(jobs, cfg.shard_size)
    todo = [(key, shard) for key, shard in shards if not shard_path(cfg.out, key).exists()]
    workload = Renderer(settings, cfg.images_per_prompt, cfg.batch_size)
    t0 = time.perf_counter()
    for key, rows in map_chunks(workload, todo, cfg.scale, desc="render", gpus_per_worker=cfg.gpus_per_worker):
        write_shard(cfg.out, key, rows)
    seconds = time.perf_counter() - t0
    rendered = sum(len(shard) for _, shard in todo) * cfg.images_per_prompt
    return {
        "prompts": len(prompts),
        "shards": len(shards),
        "shards_rendered": len(todo),
        "shards_already_there": len(shards) - len(todo),
        "images_rendered": rendered,
        "seconds": seconds,
        "images_per_second": rendered / seconds if rendered else None,
        "executor": asdict(cfg.scale),
    }


def main(argv: list[str]) -> int:
    import tyro

    cfg = tyro.cli(RenderBankConfig, args=argv, prog="pasta render")
    r = render_bank(cfg)
    rate = f" ({r['images_per_second']:.1f} images/s)" if r["images_per_second"] else ""
    print(
        f"{r['images_rendered']} images of {r['prompts']} prompts rendered in {r['seconds']:.1f} s{rate} on "
        f"{cfg.scale.executor}; {r['shards_already_there']} of {r['shards']} shards were already there; bank: "
        f"{cfg.out}"
    )
    return 0
