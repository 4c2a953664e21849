"""Prompt sets for alignment: training prompts from the attribute world, disjoint from the held-out evaluation
prompts (`fashion.evaluation_prompts`), and `--prompts` parsing.

Training prompts name the same five attributes as the evaluation prompts (garment, colour, pattern, background,
style; photo or flat, large, centred) but only (garment, colour, pattern) triples the held-out set never uses, in
the evaluation phrasing half of the time and in the caption generator's phrasings otherwise. So an adapter is
measured on prompts it never saw, of the same kind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pasta.worlds import fashion

REQUESTED = ("garment", "colour", "pattern", "background", "style")
MAX_PROMPTS = 100_000


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


def parse_garments(text: str) -> tuple[str, ...]:
    """'coat,shirt' -> ('coat', 'shirt'); the names are checked against the world's garments."""
    garments = tuple(g.strip() for g in text.split(",") if g.strip())
    if not garments:
        raise ValueError(f"garments {text!r}: empty; choose from {list(fashion.CLASSES)}")
    return fashion.check_garments(garments)


def load_prompts(spec: str | Path) -> list[str]:
    """`train:N` (N training prompts, seed 0), `train:N:SEED`, `eval:N` (the held-out evaluation prompts), each
    optionally restricted to some garments with a trailing `@coat,shirt` (`train:256@coat,shirt,pullover`), or a
    text file with one prompt per line (blank lines and lines starting with # are skipped)."""
    spec = str(spec)
    kind, _, rest = spec.partition(":")
    if kind in ("train", "eval") and rest and not Path(spec).exists():
        rest, _, garment_list = rest.partition("@")
        garments = parse_garments(garment_list) if garment_list else ()
        parts = rest.split(":")
        try:
            n, seed = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        except ValueError:
            raise ValueError(
                f"--prompts {spec!r}: expected {kind}:N or {kind}:N:SEED with integers, optionally @garment,garment"
            ) from None
        if not 1 <= n <= MAX_PROMPTS:
            raise ValueError(f"--prompts {spec!r}: N must be between 1 and {MAX_PROMPTS}")
        if kind == "train":
            return [text for text, _ in training_prompts(n, seed, garments)]
        return [text for text, _ in fashion.evaluation_prompts(n, seed=1234 + seed, garments=garments)]
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--prompts {spec!r} is neither train:N, eval:N nor a text file")
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"--prompts file {path} has no prompts")
    return prompts
