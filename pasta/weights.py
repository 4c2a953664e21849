"""Saving and loading the project's small models in one layout: `model.safetensors` (the state dict) beside
`config.json` (the dataclass that rebuilds the architecture), written atomically so that a crash mid-save never
leaves a folder that loads the wrong weights."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
Config = TypeVar("Config")


def save_model(model: nn.Module, config: Any, folder: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """Write `model`'s weights (optionally cast, e.g. float16 to halve a committed file) and its config dataclass."""
    return save_weights(model, folder, asdict(config), dtype=dtype)


def save_weights(model: nn.Module, folder: str | Path, config: dict, *, dtype: torch.dtype | None = None) -> Path:
    """Write `model`'s state dict and `config` (what rebuilds it, plus e.g. training metrics) as JSON."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
    (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    for extra in folder.glob("*") if folder.is_dir() else ():  # keep what else lives there (metrics, a README)
        if extra.name not in (WEIGHTS_NAME, CONFIG_NAME):
            shutil.copy2(extra, tmp / extra.name) if extra.is_file() else shutil.copytree(extra, tmp / extra.name)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def read_config(config_cls: type[Config], folder: str | Path) -> Config:
    """The config dataclass saved in `folder`; lists become tuples where the field's default is a tuple."""
    data = json.loads((Path(folder) / CONFIG_NAME).read_text())
    defaults = {f.name: f.default for f in fields(config_cls)}
    return config_cls(
        **{k: tuple(v) if isinstance(defaults.get(k), tuple) and isinstance(v, list) else v for k, v in data.items()}
    )


def load_model(
    model_cls: type[nn.Module],
    config_cls: type,
    folder: str | Path,
    *,
    how_to_train: str,
    what: str = "",
    device: str = "cpu",
) -> nn.Module:
    """`model_cls(config)` with the weights in `folder`, in float32 and eval mode; a clear error when the folder
    lacks them, saying how to make them."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / WEIGHTS_NAME).exists() or not (folder / CONFIG_NAME).exists():
        raise FileNotFoundError(
            f"no {what or model_cls.__name__} weights at {folder} (need {WEIGHTS_NAME} and {CONFIG_NAME}): "
            f"train them with `{how_to_train}` or pass the folder that has them"
        )
    model = model_cls(read_config(config_cls, folder))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(folder / WEIGHTS_NAME)).items()}
    model.load_state_dict(state)
    return model.to(device).eval()


def weights_files(folder: str | Path, legacy: str | None = None) -> tuple[Path, Path] | None:
    """(weights, config) of `folder` in the shared layout, else in an older `<legacy>.safetensors` + `<legacy>.json`
    pair (how the user model and Q-network were saved before), else None."""
    folder = Path(folder)
    for weights, config in ((WEIGHTS_NAME, CONFIG_NAME), (f"{legacy}.safetensors", f"{legacy}.json") if legacy else ()):
        if (folder / weights).exists() and (folder / config).exists():
            return folder / weights, folder / config
    return None


def read_weights(folder: str | Path, *, what: str, how_to_train: str, legacy: str | None = None) -> tuple[dict, dict]:
    """(float32 state dict, config dict) of a folder written by `save_weights` (or in the `legacy` layout)."""
    from safetensors.torch import load_file

    files = weights_files(folder, legacy)
    if files is None:
        raise FileNotFoundError(
            f"no {what} in {folder} (need {WEIGHTS_NAME} and {CONFIG_NAME}): train one with "
            f"`{how_to_train}` or pass the folder that has it"
        )
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(files[0])).items()}
    return state, json.loads(files[1].read_text())
