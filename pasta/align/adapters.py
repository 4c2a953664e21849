"""LoRA adapters on the UNet's attention projections (peft), saved with a model card, loaded by path.

An adapter folder is what peft's `PeftModel.save_pretrained` writes (adapter_config.json,
adapter_model.safetensors), so `EmbeddedTextToImage.load_adapter` and `HubTextToImage.load_adapter` attach it,
plus `model_card.json` (method, reward, steps, KL, base model fingerprint, metrics) and a README.md that says the
same for people. LoRA weights are kept and saved in fp32: reloading reproduces the outputs exactly.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
CARD_NAME = "model_card.json"


@dataclass
class LoraSettings:
    """LoRA as in the DPOK reference (rank 4 on the attention projections, Gaussian A, zero B)."""

    rank: int = 4
    """LoRA rank r."""
    alpha: float = 4.0
    """LoRA scale numerator (the update is alpha / r * B A)."""
    targets: tuple[str, ...] = LORA_TARGETS
    """Module names (suffixes) that get LoRA: the attention projections."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha}")
        if not self.targets:
            raise ValueError("LoRA needs at least one target module")


def add_lora(unet, settings: LoraSettings | None = None):
    """Wrap `unet` in a peft model with fresh LoRA layers (B = 0, so the output equals the base at first).

    The base weights stay frozen; only LoRA parameters train, in fp32. The UNet is modified in place (peft injects
    the layers), so deep-copy it first when the plain base is needed too, or use `with model.disable_adapter()`.
    """
    from peft import LoraConfig, get_peft_model

    settings = settings or LoraSettings()
    config = LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, init_lora_weights="gaussian", target_modules=list(settings.targets)
    )
    unet.requires_grad_(False)
    try:
        model = get_peft_model(unet, config)
    except ValueError as error:
        raise ValueError(f"cannot put LoRA on {list(settings.targets)}: {error}") from error
    for name, param in model.named_parameters():
        if "lora_" in name:
            param.data = param.data.float()
    return model


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def save_adapter(model, folder: str | Path, card: dict, readme_text: str | None = None) -> Path:
    """Write the LoRA weights (peft format) and the model card (JSON + README.md: `readme_text`, or an aligned
    adapter's card) to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    card = {
        "format": "peft LoRA on UNet2DConditionModel attention projections",
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **card,
    }
    (folder / CARD_NAME).write_text(json.dumps(card, indent=2, default=str) + "\n")
    (folder / "README.md").write_text(readme_text if readme_text is not None else readme(card))
    return folder


def read_card(folder: str | Path) -> dict:
    path = Path(folder) / CARD_NAME
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no {CARD_NAME}: not an adapter written by `pasta align`")
    return json.loads(path.read_text())


def load_adapter(base_unet, folder: str | Path):
    """The base UNet with the saved adapter attached (inference: LoRA weights frozen)."""
    from peft import PeftModel

    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a LoRA adapter folder (no adapter_config.json)")
    return PeftModel.from_pretrained(base_unet, str(folder)).eval()


def readme(card: dict) -> str:
    """The model card for people: what the adapter is, how it was trained, what it measured."""
    lines = [f"# PASTA aligned adapter: {card.get('method', '?')}", ""]
    lines.append(card.get("summary", ""))
    lines.append("")
    lines.append("| field | value |")
    lines.append("| --- | --- |")
    for key in (
        "method",
        "reward",
        "reward_held_out_accuracy",
        "steps",
        "images_seen",
        "kl",
        "train_seconds",
        "threads",
        "prompts",
        "base_model",
    ):
        if key in card:
            value = card[key]
            if isinstance(value, float):
                value = f"{value:.4g}"
            elif isinstance(value, dict):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            lines.append(f"| {key} | {value} |")
    if "metrics" in card:
        lines += ["", "## Training metrics", "", "```json", json.dumps(card["metrics"], indent=2, default=str), "```"]
    if "config" in card:
        lines += ["", "## Config", "", "```json", json.dumps(card["config"], indent=2, default=str), "```"]
    lines += [
        "",
        "Load it with `EmbeddedTextToImage(adapter=<this folder>)`, `pasta app --adapter <this folder>`, or",
        "compare it with the base model with `pasta eval align --adapters <this folder>`.",
        "",
    ]
    return "\n".join(lines)
