"""Scenes composed from real emoji artwork, with captions: the training images of the emoji world (issue 18).

A scene is one or two subjects (`pasta.worlds.emoji_art`), each with a size (big, small) and a position (left, centre,
right), on a scene background (plain colours, sky, night sky with stars, sunset, grass, beach, water, snow, indoor),
in a style (the artwork itself, a flat single colour, an outline sketch, a neon glow, pixel art). Everything is
drawn with numpy and PIL from a seed, so a (spec, seed) pair always gives the same pixels, and the caption names
what is in the picture in one of many phrasings ("a castle at sunset", "two cats on the grass", "a neon rocket on a
night sky", "a small red apple on the left").

Held out for evaluation, as in the garment world: whole (subject, scene, style) combinations (`is_held_out`) and
some phrasings (`EVAL_TEMPLATES`), so that a model is scored on combinations and wordings it never saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

SCENES = ("plain", "sky", "night", "sunset", "grass", "beach", "water", "snow", "indoor")
SCENE_PHRASES = {
    "plain": ("on a plain background", "on a {colour} background"),
    "sky": ("in the sky", "against a blue sky"),
    "night": ("on a night sky", "at night under the stars"),
    "sunset": ("at sunset", "against a sunset sky"),
    "grass": ("on the grass", "in a green meadow"),
    "beach": ("on the beach", "on a sandy beach by the sea"),
    "water": ("in the water", "on the water"),
    "snow": ("in the snow", "on a snowy field"),
    "indoor": ("in a room", "indoors by a wall"),
}
STYLES = ("artwork", "flat", "outline", "neon", "pixel")
STYLE_PHRASES = {
    "flat": ("a flat {colour} silhouette of {the}", "in flat {colour}"),
    "outline": ("an outline sketch of {the}", "as a line drawing"),
    "neon": ("a neon {bare}", "glowing in neon"),
    "pixel": ("a pixel art {bare}", "in pixel art"),
}
"""Per style: a form that replaces the subject phrase ({the}: with its article, {bare}: without), and a suffix."""
PLAIN_COLOURS = {
    "white": (240, 240, 236),
    "grey": (150, 150, 150),
    "black": (24, 24, 28),
    "red": (200, 40, 40),
    "blue": (40, 80, 200),
    "yellow": (235, 205, 60),
    "green": (60, 160, 80),
    "pink": (235, 150, 190),
}
SIZES = ("big", "small")
POSITIONS = ("centre", "left", "right")
TEMPLATES = ("{subject} {scene}{style}", "a picture of {subject} {scene}{style}", "{subject}, {scene}{style}")
EVAL_TEMPLATES = ("an image showing {subject} {scene}{style}", "{scene}: {subject}{style}")
"""Phrasings never used in training, for the held-out phrasing evaluation."""
HELD_OUT_SHARE = 0.1


@dataclass(frozen=True)
class SceneSpec:
    subjects: tuple[str, ...]
    """One or two subject names (`pasta.worlds.emoji_art.Emoji.name`); the same name twice draws two of it."""
    scene: str
    style: str
    size: str = "big"
    position: str = "centre"
    colour: str = "white"
    """The plain background's colour, or the flat style's colour."""


def is_held_out(subject: str, scene: str, style: str) -> bool:
    """Whether a (subject, scene, style) combination belongs to the evaluation split (about HELD_OUT_SHARE)."""
    digest = hashlib.sha1(f"{subject}|{scene}|{style}".encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < HELD_OUT_SHARE


def sample_spec(rng: np.random.Generator, names: list[str], split: str = "train", max_tries: int = 100) -> SceneSpec:
    """A random scene of the split ("train" or "eval"): one subject (75 %) or two (two of a kind half the time)."""
    for _ in range(max_tries):
        first = names[int(rng.integers(len(names)))]
        scene, style = SCENES[int(rng.integers(len(SCENES)))], STYLES[int(rng.integers(len(STYLES)))]
        if is_held_out(first, scene, style) != (split == "eval"):
            continue
        if scene == "plain" and style == "flat":  # one colour names both: the subject would vanish
            continue
        subjects = (first,)
        if rng.random() < 0.25:
            subjects = (first, first if rng.random() < 0.5 else names[int(rng.integers(len(names)))])
        position = "centre" if len(subjects) == 2 else POSITIONS[int(rng.integers(3))]
        return SceneSpec(
            subjects,
            scene,
            style,
            SIZES[int(rng.integers(2))] if len(subjects) == 1 else "small",
            position,
            list(PLAIN_COLOURS)[int(rng.integers(len(PLAIN_COLOURS)))],
        )
    raise ValueError(f"no {split} combination found in {max_tries} tries")


def background(scene: str, colour: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """The scene behind the subjects, float RGB [size, size, 3] in 0..255."""
    y = np.linspace(0, 1, size)[:, None, None]

    def vertical(top, bottom):
        return np.broadcast_to(np.array(top) * (1 - y) + np.array(bottom) * y, (size, size, 3)).copy()

    if scene == "plain":
        return np.broadcast_to(np.array(PLAIN_COLOURS[colour], float), (size, size, 3)).copy()
    if scene == "sky":
        return vertical((90, 150, 235), (200, 225, 250))
    if scene == "night":
        out = vertical((8, 12, 40), (30, 40, 90))
        stars = rng.random((size, size)) < 0.012
        out[stars] = 245
        return out
    if scene == "sunset":
        return vertical((120, 60, 140), (250, 160, 60))
    ground = {
        "grass": ((150, 200, 240), (70, 160, 70)),
        "beach": ((140, 200, 240), (235, 210, 150)),
        "water": ((170, 210, 240), (40, 110, 180)),
        "snow": ((190, 205, 225), (245, 248, 252)),
        "indoor": ((215, 195, 170), (150, 110, 80)),
    }[scene]
    horizon = int(size * (0.55 if scene != "indoor" else 0.7))
    out = vertical(ground[0], ground[0])
    out[horizon:] = vertical(ground[1], np.array(ground[1]) * 0.8)[horizon:]
    return out


def stylise(art: Image.Image, style: str, colour: str, ink: tuple[int, int, int] = (30, 30, 30)) -> Image.Image:
    """The RGBA artwork in a style; the alpha channel stays the subject's shape (neon adds a glow around it).
    `ink` is the outline sketch's colour (light on dark scenes)."""
    if style == "artwork":
        return art
    alpha = art.getchannel("A")
    if style == "flat":
        return Image.merge("RGBA", (*Image.new("RGB", art.size, PLAIN_COLOURS[colour]).split(), alpha))
    if style == "pixel":
        small = art.resize((art.width // 8, art.height // 8), Image.BOX)
        return small.resize(art.size, Image.NEAREST)
    edges = alpha.filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 40 else 0)
    edges = edges.filter(ImageFilter.MaxFilter(5))
    if style == "outline":
        return Image.merge("RGBA", (*Image.new("RGB", art.size, ink).split(), edges))
    glow = edges.filter(ImageFilter.GaussianBlur(6)).point(lambda v: min(255, v * 3))
    rgb = Image.new("RGB", art.size, (80, 255, 230))
    return Image.merge("RGBA", (*rgb.split(), Image.fromarray(np.maximum(np.asarray(glow), np.asarray(edges)))))


def compose(spec: SceneSpec, artwork: dict[str, Image.Image], size: int = 64, seed: int = 0) -> np.ndarray:
    """The scene as uint8 RGB [size, size, 3]: `artwork` maps subject names to their RGBA bitmaps."""
    rng = np.random.default_rng(seed)
    scene = background(spec.scene, spec.colour, size, rng)
    ink = (235, 235, 235) if scene.mean() < 100 else (30, 30, 30)  # an outline must show on a dark scene
    canvas = Image.fromarray(scene.astype(np.uint8))
    n = len(spec.subjects)
    side = int(size * (0.78 if spec.size == "big" and n == 1 else 0.46))
    for i, name in enumerate(spec.subjects):
        art = stylise(artwork[name], spec.style, spec.colour, ink).resize((side, side * 128 // 136), Image.LANCZOS)
        if n == 2:
            x = int(size * (0.27 if i == 0 else 0.73)) - side // 2
        else:
            x = {"left": int(size * 0.3), "centre": size // 2, "right": int(size * 0.7)}[spec.position] - side // 2
        x = min(max(x, 0), size - side)
        y = (size - art.height) // 2 + int(rng.integers(-2, 3))
        canvas.paste(art, (x, min(max(y, 0), size - art.height)), art)
    return np.asarray(canvas)


def caption(
    spec: SceneSpec, rng: np.random.Generator, split: str = "train", templates: tuple[str, ...] | None = None
) -> str:
    """One phrasing of what the scene shows; the eval split also uses EVAL_TEMPLATES, which training never does
    (`templates` names the phrasings to choose from instead)."""
    templates = templates or TEMPLATES + (EVAL_TEMPLATES if split == "eval" else ())
    a, b = spec.subjects[0], spec.subjects[-1]
    if len(spec.subjects) == 2:
        the = bare = f"two {plural(a)}" if a == b else f"{article(a)} {a} and {article(b)} {b}"
    else:
        where = {"centre": "", "left": " on the left", "right": " on the right"}[spec.position]
        small = "small " if spec.size == "small" and not a.startswith("small ") else ""
        bare = f"{small}{a}{where}"
        the = f"{article(bare)} {bare}"
    subject, style = the, ""
    if spec.style in STYLE_PHRASES:
        prefix, suffix = STYLE_PHRASES[spec.style]
        if len(spec.subjects) == 1 and rng.random() < 0.5:
            subject = prefix.format(the=the, bare=bare, colour=spec.colour)
        else:
            style = ", " + suffix.format(colour=spec.colour)
    scene = SCENE_PHRASES[spec.scene][int(rng.integers(2))].format(colour=spec.colour)
    text = templates[int(rng.integers(len(templates)))].format(subject=subject, scene=scene, style=style)
    return " ".join(text.split())


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def plural(name: str) -> str:
    if name.endswith(("s", "sh", "ch", "x")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"
