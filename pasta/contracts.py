"""The contracts between the parts (the project's design notes, "Contracts"; summarised in the README's "How it fits
together"): everything between the models works on vectors and images, so the same core runs on the embedded tier
and the hub tier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

# PASTA paper sizes: L_C = 25 candidates in 5 categories, slates of L = 4, M = 4 images per prompt, H = 5 turns.
CATEGORIES: tuple[str, ...] = ("rephrase", "detail", "style", "subject", "creative")
CATEGORY_DESCRIPTIONS = {
    "rephrase": "the same idea in other words",
    "detail": "the same subject with added concrete detail (colour, pattern, material, size)",
    "style": "the same subject in a different visual style or medium",
    "subject": "a related but different subject",
    "creative": "a bolder idea: new setting, mood or scene",
}


@dataclass(frozen=True)
class Candidate:
    """One proposed prompt expansion: the full prompt to render and the category it came from."""

    text: str
    category: str
    source: str = ""
    """Which generator produced it (e.g. "lmm", "retrieval"), for logs and debugging."""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"category={self.category!r} is not one of {CATEGORIES}")


@runtime_checkable
class Embedder(Protocol):
    """Text and images in one unit-norm space of `dim` dimensions."""

    dim: int

    def text(self, texts: list[str]) -> np.ndarray:
        """float32 [N, dim], unit norm."""
        ...

    def image(self, images: list[Image.Image]) -> np.ndarray:
        """float32 [N, dim], unit norm, comparable with `text` by dot product."""
        ...


@runtime_checkable
class TextToImage(Protocol):
    name: str

    def generate(self, prompts: list[str], seeds: list[int], n_per_prompt: int = 4) -> list[list[Image.Image]]:
        """n_per_prompt images for each prompt; prompt i's images depend only on (prompt i, seeds[i])."""
        ...

    def load_adapter(self, path: str) -> None:
        """Attach a LoRA adapter saved with peft's `save_pretrained` (the aligned model)."""
        ...


@runtime_checkable
class CandidateGenerator(Protocol):
    name: str

    def propose(self, history: list[str], n: int = 25) -> list[Candidate]:
        """n candidates, n // len(CATEGORIES) per category, for the prompt history (initial prompt first, the
        prompt chosen in each later turn after it). Never raises on malformed model output: repairs, dedupes,
        drops near-copies of the current prompt and tops up from a fallback."""
        ...
