"""The garment world's prompt-following task: prompts whose attributes are known, split so that training never
sees the evaluation's (garment, colour, pattern) triples, and the preference pairs the alignment reward learns from.

Training prompts name the same five attributes as the evaluation prompts (garment, colour, pattern, background,
style; photo or flat, large, centred) but only (garment, colour, pattern) triples the held-out set never uses, in
the evaluation phrasing half of the time and in the caption generator's phrasings otherwise. So an adapter is
measured on prompts it never saw, of the same kind.

Preference pairs (Lee et al. 2023 label (prompt, image) pairs as aligned or not, with prompts that differ from the
truth in one word): real Fashion-MNIST garments composed with attributes (`fashion.compose`), so the truth is known;
each image gets its true caption and perturbed captions, each with one requested attribute swapped, in the same
phrasing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from pasta.worlds import fashion
from pasta.worlds.fashion_judge import DEFAULT_CLASSIFIER_DIR, label_indices

REQUESTED = ("garment", "colour", "pattern", "background", "style")


def evaluation_style_prompt(attrs: fashion.Attributes) -> str:
    """The phrasing of `fashion.evaluation_prompts` for any attributes."""
    bg = fashion.BACKGROUND_PHRASES[attrs.background][0].removeprefix("on ").removeprefix("against ")
    return (
        f"{fashion.STYLE_SUFFIXES[attrs.style][1]}: {attrs.colour} {attrs.garment} with "
        f"{fashion.PATTERN_NOUNS[attrs.pattern][0]}, {bg}"
    )


def full_caption(attrs: fashion.Attributes, rng: np.random.Generator) -> str:
    """A caption naming all five requested attributes, in one of the caption generator's phrasings."""
    mention = {a: a in REQUESTED for a in fashion.ATTRIBUTE_VALUES}
    return fashion.caption(attrs, rng, mention=mention)


def training_attributes(rng: np.random.Generator, garments: tuple[str, ...] = ()) -> fashion.Attributes:
    """Attributes like the evaluation prompts' (photo/flat, large, centred, a visible pattern), training triple."""
    while True:
        garment = str(rng.choice(garments or fashion.CLASSES))
        colour = str(rng.choice(list(fashion.COLOURS)))
        pattern = str(rng.choice(fashion.PATTERNS[1:]))
        background = str(rng.choice(fashion.BACKGROUNDS))
        style = str(rng.choice(("photo", "flat")))
        if (colour, background) in {("white", "white"), ("black", "black")}:
            continue
        if not fashion.is_held_out(garment, colour, pattern):
            return fashion.Attributes(garment, colour, pattern, background, style, "large", "center")


def training_prompts(n: int, seed: int = 0, garments: tuple[str, ...] = ()) -> list[tuple[str, fashion.Attributes]]:
    fashion.check_garments(garments)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        attrs = training_attributes(rng, garments)
        text = evaluation_style_prompt(attrs) if rng.random() < 0.5 else full_caption(attrs, rng)
        out.append((text, attrs))
    return out


def perturb(attrs: fashion.Attributes, attribute: str, rng: np.random.Generator) -> fashion.Attributes:
    """The same attributes with `attribute` swapped for another value (a pattern swap changes what is visible)."""
    options = [v for v in fashion.ATTRIBUTE_VALUES[attribute] if v != getattr(attrs, attribute)]
    return replace(attrs, **{attribute: str(rng.choice(options))})


def _caption(attrs: fashion.Attributes, eval_phrasing: bool, phrasing_seed: int) -> str:
    if eval_phrasing:
        return evaluation_style_prompt(attrs)
    return full_caption(attrs, np.random.default_rng(phrasing_seed))


def _degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32)
    if rng.random() < 0.5:
        k = np.array([1, 2, 1], np.float32) / 4
        x = sum(k[i] * np.roll(x, i - 1, 0) for i in range(3))
        x = sum(k[i] * np.roll(x, i - 1, 1) for i in range(3))
    x = x + rng.normal(0, rng.uniform(2, 20), x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def preference_data(
    n: int,
    split: str,
    negatives: int,
    seed: int,
    eval_like: float = 0.5,
    augment: float = 0.0,
    held_out_share: float = 0.0,
) -> dict:
    """uint8 images [n,32,32,3], captions [n][1 + negatives] (true caption first), the swapped attribute of each
    negative, and whether the image shows a held-out (garment, colour, pattern) triple."""
    images_src, labels = fashion.load_fashion_mnist(split)
    rng = np.random.default_rng(seed)
    images, captions, swapped, held_out_triple = [], [], [], []
    for i in rng.choice(len(images_src), n, replace=n > len(images_src)):
        garment = fashion.CLASSES[labels[i]]
        held = rng.random() < held_out_share
        if rng.random() < eval_like:
            while True:
                a = training_attributes(rng)
                attrs = replace(a, garment=garment)
                is_held = fashion.is_held_out(garment, attrs.colour, attrs.pattern)
                if is_held == held:
                    break
        else:
            attrs = fashion.sample_attributes(rng, garment, held_out=held)
        image = fashion.compose(images_src[i], attrs, rng)
        if rng.random() < augment:
            image = _degrade(image, rng)
        shown = replace(attrs, pattern=attrs.visible_pattern)  # a caption names what is visible
        eval_phrasing, phrasing_seed = bool(rng.random() < 0.5), int(rng.integers(1 << 31))
        which = list(rng.choice(REQUESTED, negatives, replace=False))
        row = [_caption(shown, eval_phrasing, phrasing_seed)]
        row += [_caption(perturb(shown, a, rng), eval_phrasing, phrasing_seed) for a in which]
        images.append(image)
        captions.append(row)
        swapped.append(which)
        held_out_triple.append(shown.pattern != "plain" and fashion.is_held_out(garment, shown.colour, shown.pattern))
    return {
        "images": np.stack(images),
        "captions": captions,
        "swapped": swapped,
        "held_out_triple": np.array(held_out_triple),
    }


def requested_indices(attrs: fashion.Attributes) -> dict[str, int]:
    """The judge's label of each requested attribute (the pattern as visible)."""
    labels = label_indices(attrs)
    return {a: labels[a] for a in REQUESTED}


def real_images(prompts: list[tuple[str, fashion.Attributes]], seed: int = 0) -> np.ndarray | None:
    """uint8 [n, 32, 32, 3]: a real test-split garment composed with each prompt's attributes (what a perfect
    model could draw); None when Fashion-MNIST is not installed."""
    try:
        images, labels = fashion.load_fashion_mnist("test")
    except FileNotFoundError:
        return None
    rng = np.random.default_rng(seed)
    composed = []
    for _, attrs in prompts:
        pool = np.flatnonzero(labels == fashion.CLASSES.index(attrs.garment))
        composed.append(fashion.compose(images[int(rng.choice(pool))], attrs, rng))
    return np.stack(composed)


def colour_pairs(colour: str, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """Two uint8 stacks [n, 32, 32, 3] of the same test-split garments with the same attributes and noise, in
    `colour` and in another colour; None when Fashion-MNIST is not installed."""
    try:
        images, labels = fashion.load_fashion_mnist("test")
    except FileNotFoundError:
        return None
    rng = np.random.default_rng(seed)
    wanted, other = [], []
    for i in rng.choice(len(images), n_pairs, replace=False):
        attrs = fashion.sample_attributes(rng, fashion.CLASSES[labels[i]])
        instead = str(rng.choice([c for c in fashion.COLOURS if c != colour]))
        state = int(rng.integers(1 << 31))
        for bucket, c in ((wanted, colour), (other, instead)):
            bucket.append(fashion.compose(images[i], replace(attrs, colour=c), np.random.default_rng(state)))
    return np.stack(wanted), np.stack(other)


class FashionTask:
    """The garment world's `PromptTask` (pasta.worlds.world)."""

    world = "fashion"
    requested = REQUESTED
    attribute_values = {a: tuple(fashion.ATTRIBUTE_VALUES[a]) for a in REQUESTED}
    subject_axis = "garment"
    accuracy_targets = {
        "class_accuracy": ("garment", 0.85),
        "colour_accuracy": ("colour", 0.85),
        "pattern_accuracy": ("pattern", 0.70),
    }
    splits = {"train_split": "Fashion-MNIST train", "held_out_split": "Fashion-MNIST test, half held-out triples"}
    default_judge_dir = DEFAULT_CLASSIFIER_DIR

    training_prompts = staticmethod(training_prompts)
    preference_data = staticmethod(preference_data)
    requested_indices = staticmethod(requested_indices)
    real_images = staticmethod(real_images)
    colour_pairs = staticmethod(colour_pairs)

    def evaluation_prompts(
        self, n: int, seed: int = 1234, subjects: tuple[str, ...] = ()
    ) -> list[tuple[str, fashion.Attributes]]:
        return fashion.evaluation_prompts(n, seed=seed, garments=subjects)

    def check_subjects(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return fashion.check_garments(names)

    def judge(self, folder: str | Path | None = None):
        from pasta.worlds.fashion_judge import AttributeClassifier

        return AttributeClassifier.load(folder)
