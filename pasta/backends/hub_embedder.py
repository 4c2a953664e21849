"""Hub-tier image-text embedder: a CLIP or SigLIP model by id or local folder (transformers AutoModel).

Both towers project into one space, so a prompt and an image compare by dot product once each is normalised to
unit length; the user model and the Q-network only ever see these vectors.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from PIL import Image

from pasta.backends.hub_t2i import cannot_load, default_dtype

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


def _embedding(output) -> torch.Tensor:
    """transformers 5.x returns an output object from `get_*_features` (the projected vector is its
    `pooler_output`); older versions return the tensor itself."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy().astype(np.float32)


class HubEmbedder:
    """`Embedder` over a CLIP-style dual encoder: `text` and `image` give unit-norm float32 [N, dim]."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        dtype: torch.dtype | None = None,
        batch_size: int = 32,
    ) -> None:
        from transformers import AutoModel, AutoProcessor

        self.model_name = str(model)
        self.device = torch.device(device)
        self.dtype = dtype or default_dtype(self.device)
        self.batch_size = batch_size
        try:
            self.processor = AutoProcessor.from_pretrained(self.model_name)
            self.model = AutoModel.from_pretrained(self.model_name, dtype=self.dtype)
        except OSError as error:
            raise OSError(cannot_load("image-text embedder", self.model_name, error)) from error
        if not (hasattr(self.model, "get_text_features") and hasattr(self.model, "get_image_features")):
            raise TypeError(f"{self.model_name!r} is a {type(self.model).__name__}, not a CLIP/SigLIP dual encoder")
        self.model.to(self.device).eval()
        # SigLIP was trained on text padded to the full length; CLIP pads to the longest text in the batch.
        self._text_padding = "max_length" if "siglip" in self.model.config.model_type else True
        self._lock = threading.Lock()  # a fast tokenizer's padding settings are shared state
        self.dim = int(self.text([""]).shape[1])

    @torch.no_grad()
    def text(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not a single string")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            with self._lock:
                inputs = self.processor(
                    text=list(texts[start : start + self.batch_size]),
                    padding=self._text_padding,
                    truncation=True,
                    return_tensors="pt",
                )
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            out.append(_unit(_embedding(self.model.get_text_features(**inputs))))
        return np.concatenate(out)

    @torch.no_grad()
    def image(self, images: list[Image.Image]) -> np.ndarray:
        if isinstance(images, Image.Image):
            raise TypeError("images must be a list of PIL images, not a single image")
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            with self._lock:
                pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.device, self.dtype)
            out.append(_unit(_embedding(self.model.get_image_features(pixel_values=pixels))))
        return np.concatenate(out)
