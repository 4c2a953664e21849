"""The garment world behind the `World` interface: ten Fashion-MNIST garments in colours, patterns, backgrounds and
styles (`pasta.worlds.fashion`), 32 px."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from pasta.worlds import fashion
from pasta.worlds.fashion_edits import fashion_edits
from pasta.worlds.world import WorldCard, named_phrases, phrase_key


class FashionWorld:
    name = "fashion"
    image_size = fashion.IMAGE_SIZE
    attribute_axes = {
        a: tuple(fashion.ATTRIBUTE_VALUES[a]) for a in ("garment", "colour", "pattern", "background", "style")
    }
    category_axes = {
        "rephrase": (),
        "detail": ("colour", "pattern"),
        "style": ("style",),
        "subject": ("garment",),
        "creative": ("background",),
    }

    def canonical_caption(self, values: dict[str, str]) -> str:
        """E.g. "a photo of a red striped dress against a blue sky"."""
        p = values["pattern"]
        pattern = f" {fashion.PATTERN_ADJECTIVES[p][0]}" if p != "plain" else ""
        article = "an" if values["colour"][0] in "aeiou" else "a"
        return (
            f"{fashion.STYLE_PREFIXES[values['style']][0]} {article} {values['colour']}{pattern} {values['garment']} "
            f"{fashion.BACKGROUND_PHRASES[values['background']][0]}"
        )

    @cached_property
    def _data(self) -> tuple[np.ndarray, np.ndarray]:
        return fashion.load_fashion_mnist("train")  # needs Debian's dataset-fashion-mnist: only training reads it

    def training_batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
        images, labels = self._data
        batch, captions = [], []
        for i in rng.integers(0, len(images), n):
            attrs = fashion.sample_attributes(rng, fashion.CLASSES[labels[i]])
            batch.append(fashion.compose(images[i], attrs, rng))
            captions.append(fashion.caption(attrs, rng))
        return np.stack(batch), captions

    def card(self) -> WorldCard:
        return WorldCard(
            summary=(
                "The offline model draws ten garments (t-shirts, trousers, pullovers, dresses, coats, sandals, "
                "shirts, sneakers, bags and ankle boots) in a colour and pattern, on a background, as a photo, "
                "flat, sketch or neon; anything else becomes one of them."
            ),
            examples=(
                "a red striped dress on the grass",
                "a blue sneaker at sunset",
                "a neon yellow bag",
                "a black checked coat",
            ),
            instead="it will draw garments in the colours and settings your words suggest",
        )

    @cached_property
    def _phrases(self) -> dict[str, str]:
        return {
            phrase_key(word): garment for garment, words in fashion.CLASS_WORDS.items() for word in (garment, *words)
        }

    def drawable(self, prompt: str) -> list[str]:
        return named_phrases(prompt, self._phrases)

    def edits(self, prompt: str, category: str, rng: np.random.Generator, k: int) -> list[str]:
        return fashion_edits(prompt, category, rng, k)
