"""`pasta render` writes an image bank that reads back as one table, resumes where it stopped, refuses to mix two
banks in one folder, and renders the same bank on Ray actors as in this process (Ray tests skip with the reason
where `ray` is not installed)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pasta.executors import ExecutorConfig
from pasta.tools.render_bank import RenderBankConfig, render_bank, shard_path

PROMPTS = ["a red dress", "a blue striped coat", "# a comment line", "", "a black bag on the beach"]


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def config(out, prompts, **kw) -> RenderBankConfig:
    return RenderBankConfig(out=out, prompts=prompts, images_per_prompt=2, shard_size=2, **kw)


def rows(folder) -> list[dict]:
    table = pq.read_table(folder).sort_by([("prompt_index", "ascending"), ("image_index", "ascending")])
    return table.to_pylist()


def test_a_bank_holds_every_image_with_its_embeddings_and_resumes(tmp_path, prompt_file):
    out = tmp_path / "bank"
    first = render_bank(config(out, prompt_file))
    assert (first["prompts"], first["shards"], first["images_rendered"]) == (3, 2, 6)
    bank = rows(out)
    assert [(r["prompt"], r["image_index"]) for r in bank] == [
        (p, k) for p in ("a red dress", "a blue striped coat", "a black bag on the beach") for k in range(2)
    ]
    assert [r["seed"] for r in bank[::2]] == [0, 1, 2]
    image = Image.open(io.BytesIO(bank[0]["png"]))
    assert image.mode == "RGB" and image.size[0] >= 32
    for r in bank:
        for key in ("text_embedding", "image_embedding"):
            assert len(r[key]) == 384 and abs(np.linalg.norm(r[key]) - 1) < 1e-3

    shard_path(out, 1).unlink()  # as if the run had stopped before its last shard
    again = render_bank(config(out, prompt_file))
    assert (again["shards_rendered"], again["shards_already_there"]) == (1, 1)
    assert rows(out) == bank  # the same seeds give the same images

    with pytest.raises(ValueError, match="holds another bank.*images_per_prompt"):
        render_bank(RenderBankConfig(out=out, prompts=prompt_file, images_per_prompt=1, shard_size=2))


def test_bad_prompt_sources_say_what_is_wrong(tmp_path, prompt_file):
    with pytest.raises(ValueError, match="exactly one of --prompts FILE or --world-tuples"):
        render_bank(RenderBankConfig(out=tmp_path / "a"))
    with pytest.raises(FileNotFoundError, match="no prompt file"):
        render_bank(RenderBankConfig(out=tmp_path / "a", prompts=tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    with pytest.raises(ValueError, match="no prompts to render"):
        render_bank(RenderBankConfig(out=tmp_path / "a", prompts=empty))
    assert not (tmp_path / "a" / "part-00000.parquet").exists()


def test_ray_renders_the_same_bank(tmp_path, prompt_file):
    ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install -e ".[scale]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        render_bank(config(tmp_path / "ray", prompt_file, scale=ExecutorConfig("ray", workers=2)))
    finally:
        ray.shutdown()
    render_bank(config(tmp_path / "local", prompt_file))
    on_ray, local = rows(tmp_path / "ray"), rows(tmp_path / "local")
    assert [(r["prompt"], r["seed"], r["image_index"]) for r in on_ray] == [
        (r["prompt"], r["seed"], r["image_index"]) for r in local
    ]
    for a, b in zip(on_ray, local, strict=True):
        pixels = [np.asarray(Image.open(io.BytesIO(r["png"])), np.int16) for r in (a, b)]
        assert np.abs(pixels[0] - pixels[1]).mean() < 1.0  # one thread per worker here: sums may round apart
        np.testing.assert_allclose(a["image_embedding"], b["image_embedding"], atol=0.02)
