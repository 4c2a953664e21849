"""What a world is to the rest of the project: the things its embedded model can draw, its training images with
their captions, and the words a person reads about it.

A world is a small, fully described picture domain the embedded tier is trained on (garments from Fashion-MNIST;
scenes of emoji artwork). The app (the `world` setting) and the text-to-image trainer ask for one by name
(`pasta.worlds.load_world`) and talk to it through `World`; the retrieval generator proposes the world's own edits
(`World.edits`); the simulator enumerates an `AttributeWorld`'s tuples (the garment world is one; the emoji world
is not yet); alignment and `pasta eval t2i` take a world's prompts, preference pairs and judge from its
`PromptTask` (`pasta.worlds.load_prompt_task`; the garment world has one, the emoji world's evaluation is its own
tool and its alignment task is still to come).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


class AttributeJudge(Protocol):
    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 images [n, S, S, 3] -> attribute -> the index of the value read in each image."""
        ...


class PromptTask(Protocol):
    """A world's prompt-following task, what `pasta.align` and `pasta eval t2i` need: prompts whose attributes are
    known (training prompts never use the held-out evaluation's combinations), preference pairs for the alignment
    reward, and an independent judge that reads the requested attributes back from an image."""

    world: str
    requested: tuple[str, ...]
    """The attributes every evaluation prompt names, in the judge's order."""
    attribute_values: dict[str, tuple[str, ...]]
    """Requested attribute -> its values (the judge's labels index into them)."""
    subject_axis: str
    """The attribute a prompt set can be restricted to (`--prompts eval:32@a,b`)."""
    accuracy_targets: dict[str, tuple[str, float]]
    """Target name -> (attribute, least share of generated images the judge must read it in)."""
    splits: dict[str, str]
    """Where the reward's training and held-out images come from, in words (for metrics files)."""
    default_judge_dir: Path

    def training_prompts(self, n: int, seed: int = 0, subjects: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
        """n (prompt, attributes) pairs for training, never a held-out combination."""
        ...

    def evaluation_prompts(self, n: int, seed: int = 1234, subjects: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
        """n held-out (prompt, attributes) pairs, in a phrasing training captions do not use."""
        ...

    def check_subjects(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """`names` when each is a value of `subject_axis`; else ValueError listing the values."""
        ...

    def requested_indices(self, attributes: Any) -> dict[str, int]:
        """The judge's label of each requested attribute of a prompt's attributes."""
        ...

    def preference_data(
        self,
        n: int,
        split: str,
        negatives: int,
        seed: int,
        eval_like: float = 0.5,
        augment: float = 0.0,
        held_out_share: float = 0.0,
    ) -> dict:
        """Real images of the world with their true caption first and `negatives` captions with one requested
        attribute swapped each: {"images", "captions", "swapped", "held_out_triple"}."""
        ...

    def real_images(self, prompts: list[tuple[str, Any]], seed: int = 0) -> np.ndarray | None:
        """One real image of the world per prompt with its attributes (what a perfect model draws); None when the
        world's data is not installed."""
        ...

    def colour_pairs(self, colour: str, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
        """The same real images in `colour` and in another colour; None when the data is not installed."""
        ...

    def judge(self, folder: str | Path | None = None) -> AttributeJudge: ...


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
