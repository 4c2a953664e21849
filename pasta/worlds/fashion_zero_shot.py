"""Zero-shot reading of the garment world's attributes in the MiniLM space: phrasings per attribute value and their
mean text vectors, against which an image embedding (`pasta.backends.image_encoder`) is classified."""

from __future__ import annotations

import numpy as np

from pasta.worlds import fashion


def attribute_prompts(attribute: str, value: str) -> list[str]:
    """Phrasings of one attribute value for zero-shot classification, the canonical `fashion.attribute_phrase`
    first; averaging their embeddings (prompt ensembling, as CLIP does) smooths over any one wording."""
    canonical = fashion.attribute_phrase(attribute, value)
    extra: list[str] = {
        "garment": lambda: [f"a {w}" for w in fashion.CLASS_WORDS[value]] + [f"a photo of a {value}"],
        "colour": lambda: [f"a {w} {n}" for w in fashion.COLOUR_WORDS[value] for n in ("garment", "item")],
        "pattern": lambda: (
            [f"a {w} garment" for w in fashion.PATTERN_ADJECTIVES[value]]
            + [f"a garment with {w}" for w in fashion.PATTERN_NOUNS[value]]
        ),
        "background": lambda: [f"a garment {p}" for p in fashion.BACKGROUND_PHRASES[value]],
        "style": lambda: (
            [f"{p} a garment" for p in fashion.STYLE_PREFIXES[value]]
            + [f"a garment, {s}" for s in fashion.STYLE_SUFFIXES[value]]
        ),
        "size": lambda: [
            f"a {w} garment" if not w.endswith(" a") else f"{w} garment" for w in fashion.SIZE_WORDS[value]
        ],
        "position": lambda: [f"a garment {p}" for p in fashion.POSITION_PHRASES[value]],
    }[attribute]()
    return list(dict.fromkeys([canonical, *extra]))


def zero_shot_text(embed_text, attribute: str, ensemble: bool = True) -> np.ndarray:
    """[V, D] unit-norm text vectors, one per value of `attribute` (order of fashion.ATTRIBUTE_VALUES);
    `embed_text` is any `Embedder.text`."""
    rows = []
    for value in fashion.ATTRIBUTE_VALUES[attribute]:
        prompts = attribute_prompts(attribute, value) if ensemble else [fashion.attribute_phrase(attribute, value)]
        v = np.asarray(embed_text(prompts), np.float32).mean(axis=0)
        rows.append(v / max(float(np.linalg.norm(v)), 1e-8))
    return np.stack(rows)
