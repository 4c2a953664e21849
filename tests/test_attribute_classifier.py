"""The attribute classifier (the judge of `pasta eval t2i`) and the evaluation itself: input forms, save/load,
a real tiny training run, the shipped classifier's accuracy (when its weights and Fashion-MNIST are here), and
`pasta eval t2i` end to end on a tiny randomly initialised diffusion model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from model_scripts import load_script, small_data
from PIL import Image

from pasta.worlds import fashion
from pasta.worlds.fashion_judge import DEFAULT_CLASSIFIER_DIR, AttributeClassifier


@pytest.fixture(scope="module")
def random_classifier_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("classifier")
    AttributeClassifier().save(folder)
    return folder


def test_predict_accepts_every_image_form(random_classifier_dir):
    clf = AttributeClassifier.load(random_classifier_dir)
    rng = np.random.default_rng(0)
    uint8 = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    as_float = torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 127.5 - 1
    forms = [
        uint8,
        torch.from_numpy(uint8),
        as_float,
        [Image.fromarray(u) for u in uint8],
        [Image.fromarray(u).resize((256, 256), Image.NEAREST) for u in uint8],
        list(uint8),
    ]
    results = [clf.predict(f) for f in forms]
    for pred in results:
        assert pred.keys() == fashion.ATTRIBUTE_VALUES.keys()
        for name, values in fashion.ATTRIBUTE_VALUES.items():
            assert pred[name].shape == (6,) and pred[name].dtype == np.int64
            assert ((pred[name] >= 0) & (pred[name] < len(values))).all()
        for name in pred:  # the same pixels in any form give the same answer
            assert np.array_equal(pred[name], results[0][name])
    proba = clf.predict_proba(uint8)
    assert np.allclose(proba["colour"].sum(1), 1, atol=1e-5) and proba["garment"].shape == (6, 10)
    big = torch.rand(2, 3, 64, 64) * 2 - 1  # other sizes are area-resized
    assert clf.predict(big)["style"].shape == (2,)
    with pytest.raises(ValueError):
        clf.predict(rng.random((2, 32, 32, 3)))
    with pytest.raises(TypeError):
        clf.predict("an image")


def test_save_load_round_trip_is_exact_and_small(tmp_path):
    clf = AttributeClassifier().eval()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    clf.save(tmp_path)
    again = AttributeClassifier.load(tmp_path)
    for name, p in clf.predict_proba(x).items():
        assert np.array_equal(p, again.predict_proba(x)[name])
    assert (tmp_path / "model.safetensors").stat().st_size < 5 * 2**20


def test_missing_weights_name_the_training_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_attribute_classifier.py"):
        AttributeClassifier.load(tmp_path)


def test_augmentation_is_light_and_reproducible():
    train = load_script("train_attribute_classifier")
    rng = np.random.default_rng(0)
    garments, labels = small_data("test", 20)
    composed = np.stack(
        [
            fashion.compose(g, fashion.sample_attributes(rng, fashion.CLASSES[int(y)]), rng)
            for g, y in zip(garments[:16], labels[:16])
        ]
    )
    x = torch.from_numpy(composed).permute(0, 3, 1, 2).float() / 127.5 - 1  # real images: blur barely moves them
    a = train.augment(x, torch.Generator().manual_seed(0))
    b = train.augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= -1 and a.max() <= 1
    assert (a - x).abs().mean() < 0.15


def test_tiny_training_run_exports_loads_and_resumes(tmp_path):
    train = load_script("train_attribute_classifier")
    cfg = train.TrainAttributeClassifierConfig(
        out=tmp_path / "out",
        checkpoint=tmp_path / "aux" / "last.pt",
        steps=2,
        batch_size=8,
        warmup_steps=1,
        eval_images=16,
        eval_prompt_images=8,
        save_every=1,
    )
    data = small_data("train", 100), small_data("test", 50)
    metrics = train.main(cfg, *data)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["train"]["steps"] == 2
    for key in ("test_accuracy", "evaluation_prompt_accuracy"):
        assert saved[key].keys() == fashion.ATTRIBUTE_VALUES.keys()
        assert all(0 <= v <= 1 for v in saved[key].values())
    assert metrics["test_accuracy"] == saved["test_accuracy"]
    assert AttributeClassifier.load(tmp_path / "out").predict(np.zeros((1, 32, 32, 3), np.uint8))["colour"].shape == (
        1,
    )
    cfg.steps = 3
    assert train.main(cfg, *data)["train"]["steps"] == 3


@pytest.mark.fashion_mnist
@pytest.mark.skipif(not (DEFAULT_CLASSIFIER_DIR / "model.safetensors").exists(), reason="no shipped classifier")
def test_shipped_classifier_reads_composed_test_images():
    images, labels = fashion.load_fashion_mnist("test")
    rng = np.random.default_rng(11)
    pick = rng.choice(len(images), 300, replace=False)
    attrs = [fashion.sample_attributes(rng, fashion.CLASSES[labels[i]]) for i in pick]
    batch = np.stack([fashion.compose(images[i], a, rng) for i, a in zip(pick, attrs)])
    pred = AttributeClassifier.load().predict(batch)
    for attribute, floor in (("garment", 0.75), ("colour", 0.9), ("background", 0.9), ("style", 0.9)):
        truth = np.array([fashion.ATTRIBUTE_VALUES[attribute].index(getattr(a, attribute)) for a in attrs])
        assert (pred[attribute] == truth).mean() > floor, attribute
    truth = np.array([fashion.PATTERNS.index(a.visible_pattern) for a in attrs])
    assert (pred["pattern"] == truth).mean() > 0.85


# ------------------------------------------------------------------------------------------- eval t2i


@pytest.fixture(scope="module")
def tiny_t2i_dir(tmp_path_factory) -> Path:
    """A randomly initialised embedded diffusion model in the layout models/train_t2i.py's `export` writes."""
    from pasta.backends.embedded_t2i import EmbeddedT2IConfig, build_train_scheduler, build_unet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("t2i")
    build_unet().to(torch.float16).save_pretrained(folder / "unet")
    build_train_scheduler().save_pretrained(folder / "scheduler")
    EmbeddedT2IConfig(num_inference_steps=2).save(folder)
    return folder


def test_eval_t2i_writes_metrics_and_contact_sheet(tiny_t2i_dir, random_classifier_dir, tmp_path, minilm, capsys):
    from pasta.tools.eval_t2i import main
    from pasta.worlds.fashion_task import REQUESTED

    out = tmp_path / "eval"
    argv = [
        "--model-dir",
        str(tiny_t2i_dir),
        "--classifier-dir",
        str(random_classifier_dir),
        "--n-prompts",
        "2",
        "--images-per-prompt",
        "1",
        "--out-dir",
        str(out),
        "--seed",
        "3",
        "--repeats",
        "1",
        "--threads",
        "1",
        "--sampling-steps",
        "2",
        "--sampler",
        "dpm-solver++",
    ]
    assert main(argv) == 0
    assert "per image" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_prompts"] == 2 and metrics["n_images"] == 2
    assert metrics["sampling"]["num_inference_steps"] == 2 and metrics["sampling"]["sampler"] == "dpm-solver++"
    for attribute in REQUESTED:
        assert 0 <= metrics["accuracy"][attribute] <= 1
        assert 0 <= metrics["prompt_majority_accuracy"][attribute] <= 1
    assert set(metrics["targets"]) == {"class_accuracy", "colour_accuracy", "pattern_accuracy", "turn_seconds"}
    for target in metrics["targets"].values():
        assert {"value", "target", "pass"} <= target.keys()
    assert metrics["turn_seconds"]["images"] == 16 and metrics["turn_seconds"]["median"] > 0
    assert [p["prompt"] for p in metrics["prompts"]] == [t for t, _ in fashion.evaluation_prompts(2)]
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width >= 80 and sheet.height >= 80


def test_eval_t2i_reports_missing_weights(tmp_path, capsys):
    from pasta.tools.eval_t2i import main

    out = ["--out-dir", str(tmp_path / "out"), "--threads", "1"]
    assert main(["--model-dir", str(tmp_path / "none"), "--classifier-dir", str(tmp_path / "none"), *out]) == 2
    assert "train_t2i.py" in capsys.readouterr().err
    assert main(["--classifier-dir", str(tmp_path / "none"), *out]) == 2  # the shipped model, no judge
    assert "train_attribute_classifier.py" in capsys.readouterr().err
