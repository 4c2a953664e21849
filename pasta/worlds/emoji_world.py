"""The emoji world behind the `World` interface: scenes of one or two of 1,191 emoji subjects on nine scenes in five
styles (`pasta.worlds.emoji_art`, `pasta.worlds.emoji_scenes`), 64 px. Needs Debian's fonts-noto-color-emoji and
unicode-data (unicode-cldr-core adds keywords)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
from PIL import Image

from pasta.worlds.emoji_art import Emoji, EmojiFont, subjects
from pasta.worlds.emoji_edits import SCENE, EmojiEdits
from pasta.worlds.emoji_scenes import PLAIN_COLOURS, SceneSpec, caption, compose, sample_spec
from pasta.worlds.world import WorldCard, named_phrases, phrase_key

IMAGE_SIZE = 64
NOT_SUBJECT_WORDS = frozenset(
    {
        "sunset",
        "beach",
        "snow",
        "grass",
        "sky",
        "night",
        "water",
        "room",
        "meadow",
        "stars",
        "sea",
        "field",
        "wall",
        "background",
        "indoors",
        "left",
        "right",
        "centre",
        "center",
        "middle",
        "small",
        "big",
        "large",
        "tiny",
        "neon",
        "pixel",
        "outline",
        "sketch",
        "flat",
        "silhouette",
        "glowing",
        "two",
        "pair",
        *PLAIN_COLOURS,
    }
)
"""Words that name a scene, a layout, a style or a colour (`pasta.worlds.emoji_scenes`), never a subject: "a castle at
sunset" is a castle on a sunset sky, not the emoji called "sunset"; "on the left" is not a leftwards hand."""


class EmojiWorld:
    name = "emoji"
    image_size = IMAGE_SIZE

    def __init__(self, font: EmojiFont | None = None) -> None:
        self._font = font
        self._artwork: dict[str, Image.Image] = {}

    @cached_property
    def font(self) -> EmojiFont:
        return self._font or EmojiFont()

    @cached_property
    def concepts(self) -> dict[str, Emoji]:
        """Subject name -> emoji, in Unicode's order."""
        return {e.name: e for e in subjects(self.font)}

    def artwork(self, names) -> dict[str, Image.Image]:
        """The RGBA artwork of the named subjects (read from the font once each)."""
        for name in names:
            if name not in self._artwork:
                self._artwork[name] = self.font.image(self.concepts[name].sequence)
        return self._artwork

    def scenes(self, rng: np.random.Generator, n: int, split: str = "train") -> tuple[np.ndarray, list[SceneSpec]]:
        """n composed scenes of a split ("train", or "eval": held-out combinations only) and their specs."""
        names = list(self.concepts)
        specs = [sample_spec(rng, names, split) for _ in range(n)]
        images = [compose(s, self.artwork(s.subjects), self.image_size, int(rng.integers(2**31))) for s in specs]
        return np.stack(images), specs

    def training_batch(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[str]]:
        images, specs = self.scenes(rng, n)
        return images, [caption(spec, rng, "train") for spec in specs]

    def card(self) -> WorldCard:
        return WorldCard(
            summary=(
                f"The offline model draws {len(self.concepts):,} everyday things from emoji artwork (animals, "
                "food, plants, places, vehicles, objects, people at work) alone or in pairs, on a plain colour, "
                "sky, night, sunset, grass, beach, water, snow or indoors, as the artwork, flat, an outline, "
                "neon or pixel art."
            ),
            examples=(
                "a castle at sunset",
                "two cats on the grass",
                "a neon rocket on a night sky",
                "a small red apple on the left",
                "a pixel art sailboat on the water",
            ),
            instead="it will draw the emoji things whose names are closest to your words",
        )

    @cached_property
    def _phrases(self) -> dict[str, str]:
        """Names first; a CLDR keyword names a subject only when it names no other (e.g. "kitty" but not "face")."""
        by_keyword: dict[str, set[str]] = {}
        for e in self.concepts.values():
            for keyword in e.keywords:
                by_keyword.setdefault(phrase_key(keyword), set()).add(e.name)
        phrases = {k: next(iter(v)) for k, v in by_keyword.items() if len(v) == 1}
        phrases.update({phrase_key(name): name for name in self.concepts})
        return {k: v for k, v in phrases.items() if k not in NOT_SUBJECT_WORDS}

    def drawable(self, prompt: str) -> list[str]:
        """The subjects `prompt` names (scene and style words are not subjects: "under the stars" is a night sky)."""
        return named_phrases(SCENE.sub(" ", prompt), self._phrases)

    @cached_property
    def _edits(self) -> EmojiEdits:
        return EmojiEdits({name: e.subgroup for name, e in self.concepts.items()}, self._phrases)

    def edits(self, prompt: str, category: str, rng: np.random.Generator, k: int) -> list[str]:
        return self._edits.edits(prompt, category, rng, k)
