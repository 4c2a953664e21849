"""The embedded image encoder and `EmbeddedEmbedder`: real tiny training runs, save/load, the Embedder contract,
and (when shipped weights and Fashion-MNIST are here) the shipped encoder's zero-shot accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_scripts import load_script, small_data
from PIL import Image

from pasta.backends.image_encoder import (
    DEFAULT_IMAGE_ENCODER_DIR,
    EmbeddedEmbedder,
    ImageEncoder,
    ImageEncoderConfig,
    pil_to_tensor,
)
from pasta.contracts import Embedder
from pasta.worlds import fashion
from pasta.worlds.fashion_zero_shot import attribute_prompts, zero_shot_text


@pytest.fixture(scope="module")
def random_encoder_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("encoder")
    ImageEncoder().save(folder)
    return folder


def test_encoder_outputs_unit_norm_vectors_in_text_space():
    model = ImageEncoder().eval()
    z = model(torch.rand(5, 3, 32, 32) * 2 - 1)
    assert z.shape == (5, 384)
    assert torch.allclose(z.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert 0 < model.scale().item() <= 100


def test_save_load_round_trip_is_exact_and_small(tmp_path):
    model = ImageEncoder(ImageEncoderConfig(blocks=(1, 1, 2, 2))).eval()
    model.save(tmp_path)
    again = ImageEncoder.load(tmp_path)
    assert again.config == model.config
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(model(x), again(x))
    assert (tmp_path / "model.safetensors").stat().st_size < 5 * 2**20


def test_missing_weights_name_the_training_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_image_encoder.py"):
        ImageEncoder.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train_image_encoder.py"):
        EmbeddedEmbedder(tmp_path)


def test_embedder_contract(random_encoder_dir, minilm):
    emb = EmbeddedEmbedder(random_encoder_dir, text_model=minilm)
    assert isinstance(emb, Embedder) and emb.dim == 384
    t = emb.text(["a red dress", "a neon sign of a sneaker at sunset"])
    assert t.dtype == np.float32 and t.shape == (2, 384)
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    images = [
        Image.new("RGB", (32, 32), (200, 30, 30)),
        Image.new("L", (28, 28), 128),
        Image.new("RGBA", (256, 256), (0, 0, 255, 128)),
        Image.new("RGB", (100, 60), (10, 200, 10)).convert("P"),
        Image.new("I;16", (7, 9)),
    ]
    v = emb.image(images)
    assert v.dtype == np.float32 and v.shape == (5, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert emb.image([]).shape == (0, 384) and emb.text([]).shape == (0, 384)
    with pytest.raises(TypeError):
        emb.image(images[0])
    with pytest.raises(TypeError):
        emb.text("a red dress")


def test_image_of_display_size_embeds_like_its_pixels(random_encoder_dir):
    """The app shows 32x32 images upscaled (nearest) to 256: box resizing must give back the same pixels."""
    emb = EmbeddedEmbedder(random_encoder_dir)
    rng = np.random.default_rng(0)
    small = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    big = small.resize((256, 256), Image.NEAREST)
    assert torch.equal(pil_to_tensor([small]), pil_to_tensor([big]))
    assert np.allclose(emb.image([small]), emb.image([big]), atol=1e-6)
    pixels = pil_to_tensor([small])
    assert np.allclose(emb.image_tensor(pixels).numpy(), emb.image([small]), atol=1e-6)


def test_zero_shot_prompts_start_with_the_canonical_phrase(minilm):
    for attribute, values in fashion.ATTRIBUTE_VALUES.items():
        for value in values:
            prompts = attribute_prompts(attribute, value)
            assert prompts[0] == fashion.attribute_phrase(attribute, value) and len(prompts) == len(set(prompts))
    w = zero_shot_text(minilm.embed, "colour")
    assert w.shape == (10, 384) and np.allclose(np.linalg.norm(w, axis=1), 1, atol=1e-5)


def test_captions_know_which_attributes_they_name():
    train = load_script("train_image_encoder")
    rng = np.random.default_rng(3)
    for _ in range(300):
        attrs = fashion.sample_attributes(rng, "dress")
        text, named = train.make_caption(rng, attrs)
        col = dict(zip(train.ATTRS, named))
        if col["colour"]:
            assert any(w in text for w in fashion.COLOUR_WORDS[attrs.colour])
        if col["pattern"] and attrs.visible_pattern != "plain":
            words = fashion.PATTERN_ADJECTIVES[attrs.visible_pattern] + fashion.PATTERN_NOUNS[attrs.visible_pattern]
            assert any(w in text for w in words)
    # compatibility: a caption naming only the garment fits every image of that garment
    a = fashion.Attributes("dress", "red", "striped", "grass", "photo", "large", "center")
    b = fashion.Attributes("dress", "blue", "plain", "sky", "flat", "small", "left")
    c = fashion.Attributes("bag", "red", "striped", "grass", "photo", "large", "center")
    idx = torch.from_numpy(np.stack([train.attribute_index(x) for x in (a, b, c)]))
    only_garment = torch.tensor([[k == 0 for k in range(len(train.ATTRS))]] * 3)
    compat = train.compatible(idx, idx, only_garment)
    assert compat.tolist() == [[True, True, False], [True, True, False], [False, False, True]]


def tiny_config(train, tmp_path: Path, steps: int):
    return train.TrainImageEncoderConfig(
        out=tmp_path / "out",
        checkpoint=tmp_path / "aux" / "last.pt",
        steps=steps,
        batch_size=8,
        bank_size=32,
        extra_negatives=16,
        modifier_prob=0.0,
        warmup_steps=1,
        eval_images=16,
        retrieval_pairs=16,
        embed_chunk=16,
        save_every=1,
        threads=1,
    )


def test_tiny_training_run_exports_loads_and_resumes(tmp_path, minilm):
    train = load_script("train_image_encoder")
    data = small_data("train", 100), small_data("test", 50)
    metrics = train.main(tiny_config(train, tmp_path, steps=2), *data, text_model=minilm)
    out = tmp_path / "out"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["train"]["steps"] == 2
    for mode in ("canonical", "ensemble"):
        for attribute in ("garment", "colour", "pattern", "background", "style"):
            assert 0.0 <= saved["zero_shot"][mode][attribute] <= 1.0
    assert {"image_to_caption_recall@1", "image_to_caption_recall@5"} <= saved["retrieval"].keys()
    assert metrics["zero_shot"] == saved["zero_shot"]
    emb = EmbeddedEmbedder(out, text_model=minilm)
    assert emb.image([Image.new("RGB", (32, 32))]).shape == (1, 384)
    # resuming continues from the checkpoint (and reuses the cached caption bank)
    again = train.main(tiny_config(train, tmp_path, steps=3), *data, text_model=minilm)
    assert again["train"]["steps"] == 3


@pytest.mark.fashion_mnist
@pytest.mark.skipif(not (DEFAULT_IMAGE_ENCODER_DIR / "model.safetensors").exists(), reason="no shipped image encoder")
def test_shipped_encoder_zero_shot_accuracy(minilm):
    images, labels = fashion.load_fashion_mnist("test")
    rng = np.random.default_rng(7)
    pick = rng.choice(len(images), 200, replace=False)
    attrs = [fashion.sample_attributes(rng, fashion.CLASSES[labels[i]]) for i in pick]
    pil = [Image.fromarray(fashion.compose(images[i], a, rng)) for i, a in zip(pick, attrs)]
    emb = EmbeddedEmbedder(text_model=minilm)
    z = emb.image(pil)
    for attribute, floor in (("garment", 0.6), ("colour", 0.9), ("background", 0.8)):
        pred = (z @ zero_shot_text(emb.text, attribute).T).argmax(1)
        truth = np.array([fashion.ATTRIBUTE_VALUES[attribute].index(getattr(a, attribute)) for a in attrs])
        assert (pred == truth).mean() > floor, attribute
    # text and images share the space: a caption is nearer its own image than a random other one, mostly
    t = emb.text([fashion.caption(a, rng, mention={k: True for k in fashion.ATTRIBUTE_VALUES}) for a in attrs])
    sim = z @ t.T
    assert (np.diag(sim) > sim.mean(0)).mean() > 0.9
