"""What a world is to the rest of the project: the things its embedded model can draw, its training images with
their captions, and the words a person reads about it.

A world is a small, fully described picture domain the embedded tier is trained on (garments from Fashion-MNIST;
scenes of emoji artwork). The app (the `world` setting) and the text-to-image trainer ask for one by name
(`pasta.worlds.load_world`) and talk to it through `World`; the retrieval generator proposes the world's own edits
(`World.edits`); the simulator enumerates an `AttributeWorld`'s tuples (the garment world is one; the emoji world
is not yet). Not yet through it: the alignment prompts and rewards and the garment evaluation, which still read
`pasta.worlds.fashion` directly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

WORLD_NAMES = ("fashion", "emoji")


@dataclass(frozen=True)
class WorldCard:
    """What the offline model draws, in words a person reads under the prompt box."""

    summary: str
    examples: tuple[str, ...]
    """Prompts the model draws well: the page offers them as clickable examples."""
    instead: str
    """What the model draws when a prompt names nothing it knows, said politely after "so"."""


class World(Protocol):
    name: str
    image_size: int
    """Side of the training images (and of the generated ones) in pixels."""

    def training_batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
        """n training images (uint8 [n, S, S, 3]) and their captions, never from the held-out split."""
        ...

    def card(self) -> WorldCard: ...

    def drawable(self, prompt: str) -> list[str]:
        """The world's things that `prompt` names (empty when it names none: the model will draw something else)."""
        ...

    def edits(self, prompt: str, category: str, rng: np.random.Generator, k: int) -> list[str]:
        """Edited prompts of one candidate category ("rephrase": the same picture in other words of this world;
        "detail", "style", "subject", "creative") that this world's model can draw, in random order, at least k
        where the world has that many (rephrase may have none). Raises ValueError for an unknown category."""
        ...


class AttributeWorld(World, Protocol):
    """A world small enough to enumerate: every combination of its attribute values is a thing it draws, with one
    canonical caption. The simulator's users live on these tuples (`user_sim.world.EmbeddingWorld`)."""

    attribute_axes: dict[str, tuple[str, ...]]
    """Axis -> its values, in a fixed order (tuples index into them)."""
    category_axes: dict[str, tuple[str, ...]]
    """Candidate category -> the axes its edits change (rephrase: none, the same tuple in other words)."""

    def canonical_caption(self, values: dict[str, str]) -> str:
        """The caption of one tuple (axis -> value)."""
        ...


def phrase_key(text: str) -> str:
    """Lower-case words joined by single spaces: how `named_phrases` compares ("T-shirt" -> "t shirt")."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def named_phrases(prompt: str, phrases: dict[str, str], longest: int = 4) -> list[str]:
    """The values of `phrases` (`phrase_key`s -> thing) whose keys occur in `prompt` as whole words, longest first
    and without overlaps ("a hot dog" names a hot dog, not a dog), in the prompt's order; plurals ending in -s or
    -es match too."""
    words = phrase_key(prompt).split()
    found, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            key = " ".join(words[i : i + n])
            for variant in (key, key[:-1] if key.endswith("s") else None, key[:-2] if key.endswith("es") else None):
                if variant and variant in phrases:
                    found.append(phrases[variant])
                    i += n - 1
                    break
            else:
                continue
            break
        i += 1
    return list(dict.fromkeys(found))
