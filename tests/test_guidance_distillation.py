"""Distilled guidance: models/distill_guidance.py end to end on a tiny teacher, and how `EmbeddedTextToImage` samples
with the adapter (one forward a step), refuses one of other weights, and falls back to classifier-free guidance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from model_scripts import load_script, tiny_unet

from pasta.align.adapters import LoraSettings, add_lora, save_adapter
from pasta.backends.embedded_t2i import (
    GUIDANCE_ADAPTER_DIR,
    EmbeddedT2IConfig,
    EmbeddedTextToImage,
    build_train_scheduler,
    weights_fingerprint,
)
from pasta.config import Settings, SettingsError

PROMPTS = ["a red dress", "a blue coat on grass"]


def teacher_dir(folder: Path, guidance_scale: float) -> Path:
    torch.manual_seed(0)
    tiny_unet().save_pretrained(folder / "unet")
    build_train_scheduler().save_pretrained(folder / "scheduler")
    EmbeddedT2IConfig(image_size=32, patch_size=2, num_inference_steps=3, guidance_scale=guidance_scale).save(folder)
    return folder


def untrained_adapter(teacher: Path, out: Path, guidance_scale: float, fingerprint: str | None = None) -> Path:
    """A fresh guidance LoRA (B = 0: the student is the teacher's conditional output), carded for `guidance_scale`."""
    from diffusers import UNet2DConditionModel

    distill = load_script("distill_guidance")
    unet = UNet2DConditionModel.from_pretrained(teacher / "unet")
    model = add_lora(unet, LoraSettings(rank=4, alpha=4.0, targets=distill.GUIDANCE_LORA_TARGETS))
    card = {
        "guidance_scale": guidance_scale,
        "base_model": {"unet_sha256_16": fingerprint or weights_fingerprint(teacher / "unet")},
    }
    return save_adapter(model, out, card)


def test_with_an_untrained_adapter_at_guidance_1_one_forward_gives_what_guidance_gives(tmp_path, minilm):
    """At w = 1 guidance is the conditional output alone, which an adapter with B = 0 leaves unchanged: the
    single-forward path (adapter merged into the weights) must reproduce the two-row path exactly."""
    teacher = teacher_dir(tmp_path / "t2i", guidance_scale=1.0)
    untrained_adapter(teacher, teacher / GUIDANCE_ADAPTER_DIR, guidance_scale=1.0)
    fast = EmbeddedTextToImage(teacher, text=minilm, bfloat16=False)
    slow = EmbeddedTextToImage(teacher, text=minilm, bfloat16=False, guidance="cfg")
    assert (fast.guidance, slow.guidance) == ("distilled", "cfg")
    a, b = fast.sample_tensor(PROMPTS, [3, 4], 2), slow.sample_tensor(PROMPTS, [3, 4], 2)
    assert a.shape == (4, 3, 32, 32)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_an_adapter_of_other_weights_or_another_scale_is_not_used(tmp_path, minilm):
    teacher = teacher_dir(tmp_path / "t2i", guidance_scale=2.0)
    adapter = teacher / GUIDANCE_ADAPTER_DIR
    with pytest.raises(FileNotFoundError, match="distill_guidance.py"):
        EmbeddedTextToImage(teacher, text=minilm, guidance="distilled")
    assert EmbeddedTextToImage(teacher, text=minilm).guidance == "cfg"  # auto without an adapter: guidance
    with pytest.raises(ValueError, match="guidance must be one of"):
        EmbeddedTextToImage(teacher, text=minilm, guidance="fast")

    untrained_adapter(teacher, adapter, guidance_scale=2.0, fingerprint="0" * 16)
    with pytest.warns(UserWarning, match="distilled from other weights"):
        assert EmbeddedTextToImage(teacher, text=minilm).guidance == "cfg"
    with pytest.raises(ValueError, match="distilled from other weights"):
        EmbeddedTextToImage(teacher, text=minilm, guidance="distilled")

    untrained_adapter(teacher, adapter, guidance_scale=3.0)
    with pytest.warns(UserWarning, match="distilled at guidance 3.0, the sampler uses 2.0"):
        assert EmbeddedTextToImage(teacher, text=minilm).guidance == "cfg"

    untrained_adapter(teacher, adapter, guidance_scale=2.0)
    model = EmbeddedTextToImage(teacher, text=minilm)
    assert model.guidance == "distilled"
    alignment = tmp_path / "aligned"
    untrained_adapter(teacher, alignment, guidance_scale=2.0)  # any LoRA on these weights stands in for one
    model.load_adapter(alignment)
    assert model.guidance == "cfg"  # an alignment adapter was measured under classifier-free guidance


def test_the_setting_is_checked():
    assert Settings(guidance="cfg").guidance == "cfg"
    with pytest.raises(SettingsError, match="guidance='fast' is not allowed"):
        Settings(guidance="fast")


@pytest.mark.fashion_mnist
def test_distillation_writes_a_run_folder_resumes_and_leaves_the_teacher_alone(tmp_path, capsys, minilm):
    distill = load_script("distill_guidance")
    teacher = teacher_dir(tmp_path / "t2i", guidance_scale=2.0)
    before = weights_fingerprint(teacher / "unet")
    settings = dict(
        teacher=teacher,
        out=tmp_path / "adapter",
        checkpoint=tmp_path / "run" / "last.pt",
        rank=4,
        batch_size=2,
        save_every=1,
        warmup_steps=1,
        threads=1,
    )
    distill.main(distill.DistillGuidanceConfig(steps=2, **settings))
    card = json.loads((tmp_path / "adapter" / "model_card.json").read_text())
    assert card["steps"] == 2 and card["guidance_scale"] == 2.0 and card["base_model"]["unet_sha256_16"] == before
    distill.main(distill.DistillGuidanceConfig(steps=3, **settings))
    assert "at step 2" in capsys.readouterr().out
    assert json.loads((tmp_path / "adapter" / "model_card.json").read_text())["steps"] == 3
    assert weights_fingerprint(teacher / "unet") == before and not (teacher / GUIDANCE_ADAPTER_DIR).exists()
    with pytest.raises(ValueError, match="at rank 4, not .* at rank 8"):  # a checkpoint resumes only its own run
        distill.main(distill.DistillGuidanceConfig(steps=4, **{**settings, "rank": 8}))

    model = EmbeddedTextToImage(teacher, text=minilm, guidance="distilled", guidance_adapter=tmp_path / "adapter")
    assert model.guidance == "distilled"
    assert model.sample_tensor(PROMPTS, [0, 1], 1).shape == (2, 3, 32, 32)


def test_the_learning_rate_warms_up_then_decays_to_a_tenth():
    distill = load_script("distill_guidance")
    cfg = distill.DistillGuidanceConfig(lr=1e-3, warmup_steps=10, steps=100)
    rates = [distill.learning_rate(cfg, step) for step in range(101)]
    assert rates[0] == pytest.approx(1e-4) and max(rates) == pytest.approx(rates[9], rel=0.01)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])) and rates[100] == pytest.approx(1e-4)
