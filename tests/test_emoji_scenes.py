"""Scenes composed from real emoji artwork: reproducible pixels, captions that name what is drawn, held-out
combinations and phrasings kept out of training, and the Parquet builder."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from model_scripts import load_script
from PIL import Image

from pasta.worlds.emoji_art import EmojiFont, subjects
from pasta.worlds.emoji_scenes import (
    EVAL_TEMPLATES,
    SCENES,
    STYLES,
    SceneSpec,
    caption,
    compose,
    is_held_out,
    sample_spec,
)

pytestmark = pytest.mark.emoji_data


@pytest.fixture(scope="module")
def world():
    font = EmojiFont()
    concepts = {e.name: e for e in subjects(font)}
    return font, concepts


def art(world, *names):
    font, concepts = world
    return {n: font.image(concepts[n].sequence) for n in names}


def test_every_scene_and_style_composes_reproducibly(world):
    for scene in SCENES:
        for style in STYLES:
            spec = SceneSpec(("castle",), scene, style, "big", "centre", "blue")
            a, b = compose(spec, art(world, "castle"), 64, seed=3), compose(spec, art(world, "castle"), 64, seed=3)
            assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    plain = compose(SceneSpec(("castle",), "plain", "artwork", colour="white"), art(world, "castle"), 64)
    assert (plain[0, 0] == (240, 240, 236)).all() and plain[32, 32].tolist() != [240, 240, 236]


def test_position_and_size_move_and_scale_the_subject(world):
    drawn = {}
    for size, position in (("big", "centre"), ("small", "left"), ("small", "right")):
        pixels = compose(
            SceneSpec(("red apple",), "plain", "artwork", size, position, "white"), art(world, "red apple"), 64
        )
        mask = np.abs(pixels.astype(int) - (240, 240, 236)).sum(-1) > 30
        drawn[(size, position)] = (mask.mean(), np.nonzero(mask)[1].mean())
    assert drawn[("big", "centre")][0] > 2 * drawn[("small", "left")][0]
    assert drawn[("small", "left")][1] < 28 < 36 < drawn[("small", "right")][1]


def test_captions_name_subjects_scene_style_and_count():
    rng = np.random.default_rng(0)
    text = caption(SceneSpec(("cat face", "cat face"), "grass", "artwork", "small"), rng)
    assert "two cat faces" in text and ("grass" in text or "meadow" in text)
    texts = {caption(SceneSpec(("rocket",), "night", "neon"), np.random.default_rng(i)) for i in range(20)}
    assert all("rocket" in t and "neon" in t and ("night" in t or "stars" in t) for t in texts) and len(texts) > 2
    text = caption(SceneSpec(("small airplane",), "sky", "artwork", "small", "left"), rng)
    assert "small small" not in text and "on the left" in text


def test_held_out_combinations_and_phrasings_stay_out_of_training(world):
    names = list(world[1])
    rng = np.random.default_rng(1)
    train = [sample_spec(rng, names, "train") for _ in range(400)]
    held = [sample_spec(rng, names, "eval") for _ in range(100)]
    assert not any(is_held_out(s.subjects[0], s.scene, s.style) for s in train)
    assert all(is_held_out(s.subjects[0], s.scene, s.style) for s in held)
    starts = tuple(t.split("{")[0] for t in EVAL_TEMPLATES if not t.startswith("{"))
    assert not any(caption(s, rng, "train").startswith(starts) for s in train)
    assert any(caption(s, rng, "eval").startswith(starts) for s in held)
    assert sum(len(s.subjects) == 2 for s in train) > 50


def test_the_builder_writes_reproducible_parquet_with_a_preview(tmp_path):
    build = load_script("build_emoji_data")
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    info = build.build(build.BuildEmojiDataConfig(out=a, n=24, rows_per_group=10), progress=False)
    build.build(build.BuildEmojiDataConfig(out=b, n=24, rows_per_group=10), progress=False)
    assert a.read_bytes() == b.read_bytes() and info["concepts"] >= 1000
    rows = pq.read_table(a).to_pylist()
    assert len(rows) == 24 and all(r["caption"] and r["subjects"] for r in rows)
    assert np.asarray(Image.open(io.BytesIO(rows[0]["image_png"]))).shape == (64, 64, 3)
    assert Image.open(info["preview"]).size == (8 * 64 * 2, 3 * 64 * 2)
    with pytest.raises(ValueError, match="split must be 'train' or 'eval'"):
        build.build(build.BuildEmojiDataConfig(out=tmp_path / "c.parquet", split="test"), progress=False)
    assert not (tmp_path / "c.parquet").exists()
