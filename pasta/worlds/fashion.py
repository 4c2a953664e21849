"""The attribute world of the embedded tier: Fashion-MNIST garments composed with colour, pattern, background,
size/position and style, and captions that name them in many phrasings.

Why: no text-to-image weights can be installed offline, so the project trains its own small model. Composing
real garment shapes with attributes gives images that prompt expansions can move along ("make it red",
"add stripes", "at sunset", "as a neon sign"), and planted user types can prefer.

Everything here is a pure function of (source image, attributes, rng), so data, evaluation prompts and
simulated users are reproducible from a seed.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

IMAGE_SIZE = 32

CLASSES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
CLASS_WORDS = {
    "t-shirt": ("t-shirt", "tee", "t-shirt top", "short-sleeved top"),
    "trousers": ("trousers", "pants", "pair of trousers", "slacks"),
    "pullover": ("pullover", "sweater", "jumper", "knit sweater"),
    "dress": ("dress", "gown", "summer dress", "frock"),
    "coat": ("coat", "jacket", "overcoat", "winter coat"),
    "sandal": ("sandal", "sandals", "summer sandal", "strappy sandal"),
    "shirt": ("shirt", "button-up shirt", "blouse", "long-sleeved shirt"),
    "sneaker": ("sneaker", "trainer", "running shoe", "sports shoe"),
    "bag": ("bag", "handbag", "purse", "tote bag"),
    "ankle boot": ("ankle boot", "boot", "leather boot", "short boot"),
}

COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (245, 215, 40),
    "green": (50, 165, 60),
    "blue": (40, 90, 225),
    "purple": (140, 60, 190),
    "pink": (250, 135, 185),
    "brown": (130, 80, 40),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "tangerine"),
    "yellow": ("yellow", "golden yellow", "lemon yellow"),
    "green": ("green", "emerald green", "leaf green"),
    "blue": ("blue", "royal blue", "cobalt blue"),
    "purple": ("purple", "violet"),
    "pink": ("pink", "rose pink"),
    "brown": ("brown", "chocolate brown", "tan brown"),
    "white": ("white", "snow white"),
    "black": ("black", "jet black"),
}

PATTERNS = ("plain", "striped", "dotted", "checked")
PATTERN_ADJECTIVES = {
    "plain": ("plain", "solid", "solid-colour"),
    "striped": ("striped", "stripy", "pinstriped"),
    "dotted": ("polka-dot", "dotted", "spotted"),
    "checked": ("checked", "checkered", "plaid", "gingham"),
}
PATTERN_NOUNS = {
    "plain": ("no pattern", "a plain finish"),
    "striped": ("stripes", "horizontal stripes"),
    "dotted": ("polka dots", "dots"),
    "checked": ("a check pattern", "checks", "a plaid pattern"),
}

BACKGROUNDS = ("white", "black", "grey", "beige", "sky", "grass", "sunset")
BACKGROUND_PHRASES = {
    "white": ("on a white background", "on a plain white backdrop", "in a white studio"),
    "black": ("on a black background", "against a dark backdrop", "on black"),
    "grey": ("on a grey background", "against a grey wall", "on neutral grey"),
    "beige": ("on a beige background", "on a cream backdrop", "against sand-coloured paper"),
    "sky": ("against a blue sky", "under a clear sky", "with sky in the background"),
    "grass": ("on green grass", "in a meadow", "on a lawn"),
    "sunset": ("at sunset", "against a sunset sky", "in golden evening light"),
}

STYLES = ("photo", "flat", "sketch", "neon")
STYLE_PREFIXES = {
    "photo": ("a photo of", "a product photo of", "a photograph of", "a studio shot of"),
    "flat": ("a flat illustration of", "flat vector art of", "a minimalist flat drawing of", "a flat icon of"),
    "sketch": ("a pencil sketch of", "a line drawing of", "a sketch of", "an outline drawing of"),
    "neon": ("a neon sign of", "a glowing neon outline of", "a neon light drawing of", "neon art of"),
}
STYLE_SUFFIXES = {
    "photo": ("photograph", "product photography", "realistic photo"),
    "flat": ("flat design", "vector illustration", "flat colours"),
    "sketch": ("pencil sketch", "line art", "hand-drawn outline"),
    "neon": ("neon glow", "glowing neon lights", "neon style"),
}

SIZES = ("large", "small")
SIZE_WORDS = {"large": ("large", "big", "close-up of a"), "small": ("small", "tiny", "little")}
POSITIONS = ("center", "left", "right")
POSITION_PHRASES = {
    "center": ("in the center", "centered"),
    "left": ("on the left", "on the left side"),
    "right": ("on the right", "on the right side"),
}

ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {
    "garment": CLASSES,
    "colour": tuple(COLOURS),
    "pattern": PATTERNS,
    "background": BACKGROUNDS,
    "style": STYLES,
    "size": SIZES,
    "position": POSITIONS,
}

# Combinations a person would struggle to see: the composer never renders them.
_CLASHES = {("white", "white"), ("black", "black")}


@dataclass(frozen=True)
class Attributes:
    """One composed image's attributes; every field takes a value from ATTRIBUTE_VALUES."""

    garment: str
    colour: str
    pattern: str
    background: str
    style: str
    size: str
    position: str

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in ATTRIBUTE_VALUES[f.name]:
                raise ValueError(f"{f.name}={value!r} is not one of {ATTRIBUTE_VALUES[f.name]}")

    def index(self) -> dict[str, int]:
        return {f.name: ATTRIBUTE_VALUES[f.name].index(getattr(self, f.name)) for f in fields(self)}

    @property
    def visible_pattern(self) -> str:
        """Patterns are drawn only on filled styles; outlines (sketch, neon) show none."""
        return self.pattern if self.style in ("photo", "flat") else "plain"


def is_held_out(garment: str, colour: str, pattern: str) -> bool:
    """About one (garment, colour, pattern) triple in eight is never rendered for training: evaluation prompts
    use exactly these, so the model is measured on combinations it has not seen."""
    key = f"{garment}|{colour}|{pattern}"
    return sum((i + 1) * ord(c) for i, c in enumerate(key)) % 8 == 0


def held_out_triples() -> list[tuple[str, str, str]]:
    return [(g, c, p) for g in CLASSES for c in COLOURS for p in PATTERNS if p != "plain" and is_held_out(g, c, p)]


def sample_attributes(rng: np.random.Generator, garment: str, *, held_out: bool = False) -> Attributes:
    """Draw attributes uniformly for a garment, rejecting clashes and (unless held_out) held-out triples."""
    while True:
        colour = str(rng.choice(list(COLOURS)))
        pattern = str(rng.choice(PATTERNS))
        background = str(rng.choice(BACKGROUNDS))
        style = str(rng.choice(STYLES))
        size = str(rng.choice(SIZES, p=[0.7, 0.3]))
        position = "center" if size == "large" else str(rng.choice(POSITIONS))
        attrs = Attributes(garment, colour, pattern, background, style, size, position)
        if (colour, background) in _CLASHES:
            continue
        triple_held = attrs.visible_pattern != "plain" and is_held_out(garment, colour, attrs.visible_pattern)
        if triple_held == held_out:
            return attrs


# ----------------------------------------------------------------------------------------------- images


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get("PASTA_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from Debian's `dataset-fashion-mnist` (idx files): uint8 images [N,28,28], labels [N]."""
    prefix = {"train": "train", "test": "t10k"}[split]
    root = fashion_mnist_dir()
    images_path, labels_path = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    if not images_path.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {root}: install it with `apt-get install dataset-fashion-mnist` "
            "or set PASTA_FASHION_MNIST_DIR to a folder holding the idx .gz files"
        )
    with gzip.open(images_path) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(labels_path) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels.astype(np.int64)


def _resize(gray: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a [28,28] float image to [size,size] (separable, numpy only)."""
    src = np.linspace(0, gray.shape[0] - 1, size)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, gray.shape[0] - 1)
    w = (src - i0)[:, None]
    rows = gray[i0] * (1 - w) + gray[i1] * w
    cols = rows[:, i0] * (1 - w.T) + rows[:, i1] * w.T
    return cols


def _background(name: str, rng: np.random.Generator) -> np.ndarray:
    n = IMAGE_SIZE
    t = np.linspace(0.0, 1.0, n)[:, None, None]
    flat = {"white": (238, 238, 238), "black": (14, 14, 18), "grey": (128, 128, 132), "beige": (226, 206, 170)}
    if name in flat:
        img = np.broadcast_to(np.array(flat[name], np.float32), (n, n, 3)).copy()
    elif name == "sky":
        img = (np.array([95, 160, 235]) * (1 - t) + np.array([190, 225, 250]) * t) * np.ones((1, n, 1))
    elif name == "sunset":
        img = (np.array([250, 170, 70]) * (1 - t) + np.array([120, 50, 120]) * t) * np.ones((1, n, 1))
    else:  # grass: sky above a green field
        img = (np.array([150, 200, 240]) * (1 - t) + np.array([175, 215, 245]) * t) * np.ones((1, n, 1))
        horizon = n * 0.55
        img[int(horizon) :] = np.array([60, 140, 55]) + rng.normal(0, 8, (n - int(horizon), n, 1))
    return img.astype(np.float32)


def _pattern_mask(pattern: str, n: int, phase: tuple[int, int]) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n]
    y, x = y + phase[0], x + phase[1]
    if pattern == "striped":
        return ((y // 2) % 2 == 0).astype(np.float32)
    if pattern == "dotted":
        return ((x % 5 < 2) & (y % 5 < 2)).astype(np.float32)
    if pattern == "checked":
        return (((x // 3) + (y // 3)) % 2 == 0).astype(np.float32)
    return np.zeros((n, n), np.float32)


def _edges(mask: np.ndarray) -> np.ndarray:
    """One-pixel outline of a binary mask (mask minus its 4-neighbour erosion)."""
    m = mask > 0.5
    inner = m.copy()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return (m & ~inner).astype(np.float32)


def _blur(img: np.ndarray) -> np.ndarray:
    k = np.array([1, 4, 6, 4, 1], np.float32) / 16
    pad = np.pad(img, ((2, 2), (2, 2)), mode="constant")
    rows = sum(k[i] * pad[i : i + img.shape[0], :] for i in range(5))
    return sum(k[i] * rows[:, i : i + img.shape[1]] for i in range(5))


def compose(garment_image: np.ndarray, attrs: Attributes, rng: np.random.Generator) -> np.ndarray:
    """Render one garment (uint8 [28,28]) with its attributes as uint8 RGB [32,32,3]."""
    n = IMAGE_SIZE
    canvas = _background(attrs.background, rng)
    side = 30 if attrs.size == "large" else 19
    shape = _resize(garment_image.astype(np.float32) / 255.0, side)
    top = (n - side) // 2 + int(rng.integers(-1, 2))
    left = {"center": (n - side) // 2, "left": 1, "right": n - side - 1}[attrs.position] + int(rng.integers(-1, 2))
    top, left = int(np.clip(top, 0, n - side)), int(np.clip(left, 0, n - side))
    intensity = np.zeros((n, n), np.float32)
    intensity[top : top + side, left : left + side] = shape
    mask = (intensity > 0.12).astype(np.float32)

    colour = np.array(COLOURS[attrs.colour], np.float32)
    dark = colour.mean() < 90
    accent = colour * 0.35 + 255 * 0.65 if dark else colour * 0.45
    pattern = _pattern_mask(attrs.visible_pattern, n, (int(rng.integers(0, 6)), int(rng.integers(0, 6))))
    fill = colour[None, None] * (1 - pattern[..., None]) + accent[None, None] * pattern[..., None]

    if attrs.style == "photo":
        shade = 0.6 + 0.4 * np.clip(intensity / max(intensity.max(), 1e-6), 0, 1)
        shadow = np.roll(np.roll(mask, 1, 0), 1, 1) * (1 - mask)
        canvas *= 1 - 0.35 * shadow[..., None]
        out = canvas * (1 - mask[..., None]) + fill * shade[..., None] * mask[..., None]
        out += rng.normal(0, 3.0, out.shape)
    elif attrs.style == "flat":
        out = canvas * (1 - mask[..., None]) + fill * mask[..., None]
    elif attrs.style == "sketch":
        paper = canvas * 0.55 + 255 * 0.45
        edges = _edges(mask)
        hatch = mask * ((np.add.outer(np.arange(n), np.arange(n)) % 4) == 0)
        ink = np.clip(edges + 0.5 * hatch, 0, 1)[..., None]
        out = paper * (1 - ink) + colour[None, None] * ink
    else:  # neon
        dim = canvas * 0.22
        edges = _edges(mask)
        glow = np.clip(_blur(edges) * 2.2, 0, 1)[..., None]
        bright = np.clip(colour * 1.15 + 40, 0, 255)[None, None]
        out = dim * (1 - glow) + bright * glow
        out = out * (1 - edges[..., None]) + np.clip(bright + 60, 0, 255) * edges[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------- captions


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def sample_mention(rng: np.random.Generator, attrs: Attributes) -> dict[str, bool]:
    """Which attributes a caption names (the garment almost always); callers that must know what a caption says,
    such as the image encoder's trainer, draw it here and pass it to `caption`."""
    return {
        "garment": rng.random() < 0.95,
        "colour": rng.random() < 0.85,
        "pattern": rng.random() < 0.75,
        "background": rng.random() < 0.65,
        "style": rng.random() < 0.7,
        "size": rng.random() < 0.3,
        "position": attrs.position != "center" and rng.random() < 0.5,
    }


def caption(attrs: Attributes, rng: np.random.Generator, *, mention: dict[str, bool] | None = None) -> str:
    """A caption naming the attributes in `mention` (default: a random subset, garment almost always), in one of
    many phrasings, so that free text lands near training captions in MiniLM space."""
    if mention is None:
        mention = sample_mention(rng, attrs)
    pattern = attrs.visible_pattern
    noun = _pick(rng, CLASS_WORDS[attrs.garment]) if mention["garment"] else _pick(rng, ("garment", "item", "thing"))
    colour = _pick(rng, COLOUR_WORDS[attrs.colour]) if mention["colour"] else ""
    size = _pick(rng, SIZE_WORDS[attrs.size]) if mention.get("size") else ""
    say_pattern = mention["pattern"] and (pattern != "plain" or rng.random() < 0.3)
    if say_pattern and rng.random() < 0.6:
        subject = " ".join(w for w in (size, colour, _pick(rng, PATTERN_ADJECTIVES[pattern]), noun) if w)
    elif say_pattern:
        subject = " ".join(w for w in (size, colour, noun) if w) + " with " + _pick(rng, PATTERN_NOUNS[pattern])
    else:
        subject = " ".join(w for w in (size, colour, noun) if w)
    if not subject.startswith(("close-up", "a ")):
        subject = ("an " if subject[0] in "aeiou" else "a ") + subject

    parts = [subject]
    if mention.get("position"):
        parts.append(_pick(rng, POSITION_PHRASES[attrs.position]))
    if mention["background"]:
        parts.append(_pick(rng, BACKGROUND_PHRASES[attrs.background]))
    text = " ".join(parts)
    if mention["style"]:
        if rng.random() < 0.5:
            text = _pick(rng, STYLE_PREFIXES[attrs.style]) + " " + text.removeprefix("a ").removeprefix("an ")
            text = text.replace(" of close-up of a", " of a close-up")
        else:
            text = text + ", " + _pick(rng, STYLE_SUFFIXES[attrs.style])
    return text


def attribute_phrase(attribute: str, value: str) -> str:
    """The canonical short phrase for one attribute value (zero-shot prompts, simulated-user preferences)."""
    return {
        "garment": lambda v: f"a {v}",
        "colour": lambda v: f"a {v} garment",
        "pattern": lambda v: f"a {PATTERN_ADJECTIVES[v][0]} garment",
        "background": lambda v: f"a garment {BACKGROUND_PHRASES[v][0]}",
        "style": lambda v: f"{STYLE_PREFIXES[v][0]} a garment",
        "size": lambda v: f"a {v} garment",
        "position": lambda v: f"a garment {POSITION_PHRASES[v][0]}",
    }[attribute](value)


def check_garments(garments: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(garments) - set(CLASSES))
    if unknown:
        raise ValueError(f"unknown garment(s) {unknown}; choose from {list(CLASSES)}")
    return garments


def evaluation_prompts(n: int, seed: int = 1234, garments: tuple[str, ...] = ()) -> list[tuple[str, Attributes]]:
    """Held-out prompts: (garment, colour, pattern) triples never rendered for training, every attribute named,
    in a phrasing the caption generator does not use; only the triples of `garments` when given."""
    check_garments(garments)
    rng = np.random.default_rng(seed)
    triples = [t for t in held_out_triples() if not garments or t[0] in garments]
    out = []
    for i in range(n):
        g, c, p = triples[i % len(triples)]
        style = str(rng.choice(("photo", "flat")))
        while True:
            background = str(rng.choice(BACKGROUNDS))
            if (c, background) not in _CLASHES:
                break
        attrs = Attributes(g, c, p, background, style, "large", "center")
        bg = BACKGROUND_PHRASES[background][0].removeprefix("on ").removeprefix("against ")
        text = f"{STYLE_SUFFIXES[style][1]}: {c} {g} with {PATTERN_NOUNS[p][0]}, {bg}"
        out.append((text, attrs))
    return out
